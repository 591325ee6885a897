"""The API around the numbers, as diffusers and optimum users call it (issue 16 items 1 and 3): loading
keywords (mapped, accepted or refused, never a TypeError from inside), .to() / .half() / enable_*,
optimum's class names, pipe.components / from_pipe / pipe.unet.config, encode_prompt's order, the
scheduler's config access and JSON repr, load_config, scheduling_utils, edge_sched.utils, the
tokenizer's return_tensors, a diffusers-layout folder's message."""

from __future__ import annotations

import json
import logging
import shutil
import warnings

import numpy as np
import pytest
import torch

import diffusers
import edge_sched
from edge_sched import torch_compat
from edge_sched.pipelines import (
    DiffusionPipeline,
    PipelineLoadError,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
)

from .conftest import IMAGE_PARITY

BOUND = 1e-3


@pytest.fixture(scope="module")
def reference(sd_folders):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        pipe = diffusers.StableDiffusionPipeline.from_pretrained(sd_folders("source"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _image(pipe, seed=2, **call):
    pipe.set_progress_bar_config(disable=True)
    gen = torch.Generator().manual_seed(seed) if isinstance(pipe, diffusers.DiffusionPipeline) else seed
    return np.asarray(pipe("a dog", generator=gen, num_inference_steps=3, output_type="np", **call).images)


def _close(ours, ref, key):
    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY[key].append(diff)
    assert diff <= BOUND, f"{key}: {diff:.3g}"


# ---- item 1: loading keywords ---------------------------------------------------------------------

DIFFUSERS_KEYWORDS = dict(torch_dtype=torch_compat.float32, use_safetensors=True, variant=None, safety_checker=None,
                          requires_safety_checker=False, feature_extractor=None, low_cpu_mem_usage=True,
                          revision=None, local_files_only=True, force_download=False, resume_download=None)


def test_diffusers_loading_keywords_are_accepted_and_give_the_same_image(sd_folders, reference):
    pipe = StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"), **DIFFUSERS_KEYWORDS)
    _close(_image(pipe), _image(reference), "drop-in: diffusers loading keywords")


def test_optimum_onnxruntime_keywords(sd_folders, reference):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    pipe = edge_sched.ORTStableDiffusionPipeline.from_pretrained(
        sd_folders("optimum-onnx"), export=False, provider="CPUExecutionProvider", session_options=options,
        provider_options={}, use_io_binding=False)
    assert isinstance(pipe, StableDiffusionPipeline) and pipe.backend == "onnxruntime"
    assert pipe.graphs["unet"].session.get_session_options().intra_op_num_threads == 1
    _close(_image(pipe), _image(reference), "drop-in: optimum ORT keywords")


def test_optimum_openvino_keywords(sd_folders, reference):
    pipe = edge_sched.OVStableDiffusionPipeline.from_pretrained(
        sd_folders("optimum-openvino"), export=False, device="cpu", compile=False,
        ov_config={"INFERENCE_PRECISION_HINT": "f32"})
    assert pipe.backend == "openvino" and pipe.graphs.loaded == []  # compile=False: nothing compiled yet
    pipe.to("cpu")
    _close(_image(pipe), _image(reference), "drop-in: optimum OV keywords")


def test_scheduler_instance_and_models_as_parts(sd_folders, reference):
    scheduler = edge_sched.EulerDiscreteScheduler.from_pretrained(sd_folders("edge-onnx"), subfolder="scheduler")
    unet = edge_sched.UNet2DConditionModel.from_pretrained(sd_folders("optimum-onnx"), subfolder="unet")
    pipe = StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"), scheduler=scheduler, unet=unet)
    assert pipe.scheduler is scheduler and pipe.unet is unet
    assert pipe.graphs.paths["unet"] == sd_folders("optimum-onnx") / "unet"
    reference.scheduler = diffusers.EulerDiscreteScheduler.from_config(reference.scheduler.config)
    try:
        _close(_image(pipe), _image(reference), "drop-in: scheduler= and unet= parts")
    finally:
        reference.scheduler = diffusers.PNDMScheduler.from_config(reference.scheduler.config)


def test_refused_and_unknown_keywords(sd_folders, caplog):
    with pytest.raises(ValueError, match="custom_pipeline=.*community pipelines"):
        StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"), custom_pipeline="lpw_stable_diffusion")
    with pytest.raises(ValueError, match="quantized at export"):
        StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"), load_in_8bit=True)
    with caplog.at_level(logging.WARNING, logger="edge_sched"):
        StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"), device_map="balanced", not_a_keyword=1)
    assert "device_map" in caplog.text and "not_a_keyword" in caplog.text and "ignored" in caplog.text


def test_diffusers_layout_folder_says_how_to_export(sd_folders):
    for kwargs in ({}, {"export": True}):
        with pytest.raises(PipelineLoadError, match="edge-sched export"):
            DiffusionPipeline.from_pretrained(sd_folders("source"), **kwargs)


def test_variant_and_torch_dtype_pick_fp16_files_where_present(sd_folders, tmp_path, caplog):
    folder = tmp_path / "variants"
    shutil.copytree(sd_folders("edge-onnx"), folder)
    with caplog.at_level(logging.WARNING, logger="edge_sched"):
        plain = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch_compat.float16)
    assert plain.graphs.variant is None and "no fp16 variant" in caplog.text  # warned, runs as exported
    for name in plain.graphs.names:  # stand-in fp16 files (the same graphs): the choice is what is tested
        shutil.copy(folder / name / "model.onnx", folder / name / "model.fp16.onnx")
    pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch_compat.float16)
    assert pipe.graphs.variant == "fp16" and pipe.graphs.graph_path("unet").name == "model.fp16.onnx"
    assert StableDiffusionPipeline.from_pretrained(folder, variant="fp16").graphs.variant == "fp16"
    pipe.to(torch_compat.float32)
    assert pipe.graphs.variant is None and pipe.graphs.loaded == []
    pipe.half()
    assert pipe.graphs.variant == "fp16"


# ---- item 1: device and memory calls ---------------------------------------------------------------

def test_to_enable_disable_calls(sd_folders, reference, caplog):
    pipe = StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"))
    with caplog.at_level(logging.WARNING, logger="edge_sched"):
        assert pipe.to("cpu") is pipe and pipe.to("cuda") is pipe
        assert pipe.to(torch_compat.device("cuda:0"), torch_compat.float32) is pipe
        pipe.enable_attention_slicing()
        pipe.enable_attention_slicing("max")
        pipe.disable_attention_slicing()
        pipe.enable_xformers_memory_efficient_attention()
    assert "CUDA provider" in caplog.text and "attention" in caplog.text
    assert pipe.device == "cpu" and pipe.dtype == np.float32
    pipe.enable_model_cpu_offload()
    assert pipe.graphs.low_memory and pipe.graphs.loaded == []
    image = _image(pipe)
    assert pipe.graphs.loaded == []  # each graph released after its stage
    _close(image, _image(reference), "drop-in: enable_model_cpu_offload")
    pipe.enable_vae_slicing()
    pipe.enable_vae_tiling()
    assert pipe.vae.use_slicing and pipe.vae.use_tiling
    pipe.disable_vae_slicing()
    pipe.disable_vae_tiling()
    assert not pipe.vae.use_slicing and not pipe.vae.use_tiling
    pipe.maybe_free_model_hooks()


# ---- item 3: parts, from_pipe, configs -------------------------------------------------------------

def test_components_build_other_pipelines_as_in_diffusers(sd_folders, reference):
    pipe = StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"))
    assert list(pipe.components) == list(reference.components)
    img2img = StableDiffusionImg2ImgPipeline(**pipe.components)
    inpaint = StableDiffusionInpaintPipeline(**pipe.components)
    for other in (img2img, inpaint, StableDiffusionImg2ImgPipeline.from_pipe(pipe)):
        assert other.graphs is pipe.graphs and other.unet is pipe.unet and other.scheduler is pipe.scheduler
    back = StableDiffusionPipeline.from_pipe(img2img, scheduler=edge_sched.EulerDiscreteScheduler.from_config(
        pipe.scheduler.config))
    assert isinstance(back.scheduler, edge_sched.EulerDiscreteScheduler) and back.vae is pipe.vae
    again = StableDiffusionPipeline(**pipe.components)
    _close(_image(again), _image(reference), "drop-in: Pipeline(**pipe.components)")
    with pytest.raises(TypeError, match="unexpected arguments \\['banana'\\]"):
        StableDiffusionPipeline(**pipe.components, banana=1)


def test_model_configs_as_diffusers(sd_folders, reference):
    pipe = StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"))
    assert pipe.unet.config.sample_size == reference.unet.config.sample_size
    assert pipe.unet.config.in_channels == reference.unet.config.in_channels
    assert pipe.vae.config.scaling_factor == reference.vae.config.scaling_factor
    assert pipe.vae.config.block_out_channels == list(reference.vae.config.block_out_channels)
    assert pipe.text_encoder.config.hidden_size == reference.text_encoder.config.hidden_size
    assert pipe.config._class_name == "StableDiffusionPipeline"
    out = pipe.text_encoder(pipe.tokenizer("a dog", return_tensors="np").input_ids)
    assert out[0].shape == (1, 77, reference.text_encoder.config.hidden_size)


def test_encode_prompt_in_diffusers_positional_order(sd_folders, reference):
    pipe = StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"))
    ours = pipe.encode_prompt("a dog", "cpu", 2, True, "a cat")
    with torch.no_grad():
        ref = reference.encode_prompt("a dog", "cpu", 2, True, "a cat")
    for a, b in zip(ours, ref):
        assert a.shape == tuple(b.shape) and float(np.abs(a - b.numpy()).max()) <= 1e-4


def test_interrupt_property_and_progress_bar(sd_folders):
    pipe = StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"))
    pipe.set_progress_bar_config(disable=True, desc="x")
    with pipe.progress_bar(total=3) as bar:
        bar.update()
    assert list(pipe.progress_bar(iterable=[1, 2])) == [1, 2]
    steps = []

    def stop(p, i, t, kwargs):
        steps.append(i)
        p._interrupt = True
        return kwargs

    pipe("a dog", num_inference_steps=4, callback_on_step_end=stop, output_type="latent")
    assert steps == [0] and pipe.interrupt


# ---- item 3: schedulers -----------------------------------------------------------------------------

def test_scheduler_repr_is_diffusers_json_and_config_attributes_warn(sd_folders):
    ours = edge_sched.DPMSolverMultistepScheduler(use_karras_sigmas=True)
    ref = diffusers.DPMSolverMultistepScheduler(use_karras_sigmas=True)
    name, _, body = repr(ours).partition(" ")
    ref_name, _, ref_body = repr(ref).partition(" ")
    assert name == ref_name and json.loads(body) == json.loads(ref_body)
    with pytest.warns(FutureWarning, match="scheduler.config.num_train_timesteps"):
        assert ours.num_train_timesteps == 1000
    with pytest.raises(AttributeError):
        ours.not_a_field


def test_load_config_returns_dicts_as_diffusers(sd_folders):
    folder = sd_folders("edge-onnx")
    ours = edge_sched.DDIMScheduler.load_config(folder, subfolder="scheduler")
    ref = diffusers.DDIMScheduler.load_config(folder, subfolder="scheduler")
    assert isinstance(ours, dict) and ours == ref
    config, unused = edge_sched.DDIMScheduler.load_config(folder, subfolder="scheduler", return_unused_kwargs=True,
                                                          foo=1)
    ref_config, ref_unused = diffusers.DDIMScheduler.load_config(folder, subfolder="scheduler",
                                                                 return_unused_kwargs=True, foo=1)
    assert (config, unused) == (ref_config, ref_unused)
    assert edge_sched.DDIMScheduler.load_config(folder, subfolder="scheduler", return_commit_hash=True)[1] is None
    scheduler = edge_sched.DDIMScheduler.from_config(config)
    assert scheduler.config.steps_offset == 1


def test_scheduling_utils_and_configuration_utils_paths():
    from diffusers.schedulers import scheduling_utils as ref

    from edge_sched.configuration_utils import ConfigMixin, FrozenDict, register_to_config
    from edge_sched.schedulers import scheduling_utils as ours

    assert [(e.name, e.value) for e in ours.KarrasDiffusionSchedulers] == \
        [(e.name, e.value) for e in ref.KarrasDiffusionSchedulers]
    assert ours.SchedulerOutput is edge_sched.SchedulerOutput
    assert ours.SCHEDULER_CONFIG_NAME == ref.SCHEDULER_CONFIG_NAME
    assert ours.AysSchedules["StableDiffusionXLTimesteps"] == ref.AysSchedules["StableDiffusionXLTimesteps"]

    class MyScheduler(edge_sched.SchedulerMixin, ConfigMixin):
        @register_to_config
        def __init__(self, num_train_timesteps: int = 10, shift: float = 1.0):
            pass

    assert MyScheduler(shift=2.0).config == {"num_train_timesteps": 10, "shift": 2.0} | {
        "_use_default_values": ["num_train_timesteps"]}
    assert isinstance(MyScheduler().config, FrozenDict)


# ---- item 3: utils and tokenizer ---------------------------------------------------------------------

def test_load_image_and_make_image_grid_as_diffusers(tmp_path):
    from PIL import Image

    from diffusers.utils import load_image as ref_load, make_image_grid as ref_grid
    from edge_sched.utils import load_image, make_image_grid

    rng = np.random.default_rng(0)
    path = tmp_path / "x.png"
    Image.fromarray(rng.integers(0, 255, (20, 30, 4), dtype=np.uint8), "RGBA").save(path)
    for source in (str(path), path, Image.open(path)):
        np.testing.assert_array_equal(np.asarray(load_image(source)), np.asarray(ref_load(str(path))))
    gray = load_image(str(path), convert_method=lambda im: im.convert("L"))
    assert gray.mode == "L"
    images = [Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)) for _ in range(6)]
    np.testing.assert_array_equal(np.asarray(make_image_grid(images, 2, 3)), np.asarray(ref_grid(images, 2, 3)))
    np.testing.assert_array_equal(np.asarray(make_image_grid(images, 3, 2, resize=5)),
                                  np.asarray(ref_grid(images, 3, 2, resize=5)))
    with pytest.raises(ValueError, match="Incorrect path or URL"):
        load_image(str(tmp_path / "missing.png"))


def test_tokenizer_return_tensors_np(sd_folders):
    from transformers import CLIPTokenizer as Ref

    pipe = StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"))
    ref = Ref.from_pretrained(sd_folders("edge-onnx") / "tokenizer")
    ours = pipe.tokenizer(["a dog", "the cat"], padding="max_length", max_length=77, truncation=True,
                          return_tensors="np")
    theirs = ref(["a dog", "the cat"], padding="max_length", max_length=77, truncation=True, return_tensors="np")
    np.testing.assert_array_equal(ours.input_ids, theirs.input_ids)
    with pytest.raises(ValueError, match="return_tensors='np'"):
        pipe.tokenizer("a dog", return_tensors="pt")
