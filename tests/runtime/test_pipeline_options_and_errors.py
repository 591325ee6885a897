"""The pipelines' bad input, load errors and loading options (no image parity here: see
test_pipeline_parity.py): clear ValueError / EngineError messages naming the bad value, OpenVINO-only
features, deferred compilation, output types, the class a folder loads as."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge_sched.pipelines import (
    DDIMPipeline, DDPMPipeline, DiffusionPipeline, LatentConsistencyModelPipeline, StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline,
)
from edge_sched.runtime import EngineError
from edge_sched.schedulers import scheduler_class

from .pipeline_runs import load_ours, rename_graph_input, sample_image, square_mask


@pytest.mark.parametrize("kind,how,cls", [("ddpm", "edge-onnx", DDPMPipeline), ("ddim", "edge-onnx", DDIMPipeline),
                                          ("ddim", "edge-openvino", DDIMPipeline)], ids=lambda v: getattr(v, "__name__", v))
def test_diffusion_pipeline_loads_an_unconditional_folder_as_its_class(kind, how, cls, pipeline_folder):
    assert type(DiffusionPipeline.from_pretrained(pipeline_folder(kind, how))) is cls


def test_image_to_image_bad_strength(sd_folders):
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(sd_folders("edge-onnx"))
    init_image = sample_image()
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
            pipe("a cat", image=init_image, strength=bad)
    pipe.scheduler = scheduler_class("DDIMScheduler").from_config(pipe.scheduler.config)
    with pytest.raises(ValueError, match="leaves no step"):
        pipe("a cat", image=init_image, strength=0.0, num_inference_steps=4)


def test_reshape_is_an_openvino_feature(sd_folders):
    with pytest.raises(EngineError, match="OpenVINO feature"):
        load_ours(StableDiffusionPipeline, sd_folders("edge-onnx")).reshape(height=32, width=32)


def test_compile_false_defers_loading_until_compile(sd_folders):
    """from_pretrained(compile=False) -> reshape -> compile(): each graph compiled once, with its final shapes."""
    pipe = StableDiffusionPipeline.from_pretrained(sd_folders("edge-openvino"), compile=False)
    assert pipe.graphs.loaded == []
    pipe.reshape(height=32, width=32)
    assert pipe.graphs.loaded == []
    assert pipe.compile() is pipe
    assert sorted(pipe.graphs.loaded) == ["text_encoder", "unet", "vae_decoder"]  # no VAE encoder for text-to-image
    assert pipe.graphs["unet"].inputs["sample"].shape == (2, 4, 16, 16)


def test_inpaint_bad_input(pipeline_folder, tmp_path):
    pipe = load_ours(StableDiffusionInpaintPipeline, pipeline_folder("inpaint", "edge-onnx"))
    image, mask = sample_image(), square_mask()
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
            pipe("a cat", image=image, mask_image=mask, strength=bad)
    with pytest.raises(ValueError, match="needs an init image and a mask"):
        pipe("a cat", image=image)
    with pytest.raises(ValueError, match="leaves no step"):
        pipe("a cat", image=image, mask_image=mask, strength=0.1, num_inference_steps=4)
    with pytest.raises(ValueError, match="image mode 'CMYK' is not supported"):
        pipe("a cat", image=image.convert("CMYK"), mask_image=mask, num_inference_steps=1)
    with pytest.raises(ValueError, match="padding_mask_crop needs the image and the mask as PIL"):
        pipe("a cat", image=image, mask_image=np.asarray(mask, np.float32) / 255, padding_mask_crop=2)
    with pytest.raises(ValueError, match="padding_mask_crop needs output_type='pil'"):
        pipe("a cat", image=image, mask_image=mask, padding_mask_crop=2, output_type="np")
    with pytest.raises(ValueError, match="cannot spread 2 masks over 3 images"):
        pipe("a cat", image=image, mask_image=[mask, mask], num_images_per_prompt=3, num_inference_steps=1)
    with pytest.raises(ValueError, match="height must be a positive multiple of 8"):
        pipe("a cat", image=image, mask_image=mask, height=20)
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        pipe("a cat", image=image, mask_image=mask, callback_on_step_end=lambda *a: {},
             callback_on_step_end_tensor_inputs=["noise_pred"])
    # a folder without the VAE encoder
    broken = tmp_path / "no-encoder"
    shutil.copytree(pipeline_folder("inpaint", "edge-onnx"), broken)
    shutil.rmtree(broken / "vae_encoder")
    with pytest.raises(ValueError, match="needs the component folder"):
        StableDiffusionInpaintPipeline.from_pretrained(broken)


def test_lcm_output_types(pipeline_folder):
    pipe = load_ours(LatentConsistencyModelPipeline, pipeline_folder("lcm", "edge-onnx"))
    latent = pipe("a cat", num_inference_steps=2, generator=0, output_type="latent").images
    assert latent.shape == (1, 4, 16, 16)
    pil = pipe("a cat", num_inference_steps=2, generator=0).images
    assert pil[0].size == (32, 32)


def test_lcm_bad_input(pipeline_folder, tmp_path):
    folder = pipeline_folder("lcm", "edge-onnx")
    pipe = load_ours(LatentConsistencyModelPipeline, folder)
    with pytest.raises(ValueError, match="height must be a positive multiple of 8"):
        pipe("a cat", height=36)
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        pipe("a cat", callback_on_step_end=lambda *a: {}, callback_on_step_end_tensor_inputs=["noise_pred"])
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe("a cat", num_inference_steps=80)
    pipe.scheduler = scheduler_class("EulerDiscreteScheduler").from_config(pipe.scheduler.config)
    with pytest.raises(ValueError, match="original_inference_steps=10 needs a scheduler"):
        pipe("a cat", original_inference_steps=10)
    pipe.scheduler = scheduler_class("DPMSolverMultistepScheduler").from_config(pipe.scheduler.config)
    with pytest.raises(ValueError, match="returns no denoised sample"):
        pipe("a cat", num_inference_steps=2)

    # a UNet graph without the timestep_cond input (renamed here): a load error naming the input
    broken = tmp_path / "lcm-without-timestep-cond"
    shutil.copytree(folder, broken)
    rename_graph_input(broken, "unet", "timestep_cond", "guidance")
    with pytest.raises(ValueError, match="missing timestep_cond"):
        LatentConsistencyModelPipeline.from_pretrained(broken)
    # a missing component
    shutil.rmtree(broken / "unet")
    with pytest.raises(ValueError, match="needs the component folder"):
        LatentConsistencyModelPipeline.from_pretrained(broken)
    # the graph refuses a feed it does not expect
    with pytest.raises(EngineError, match="timestep_cond"):
        pipe.graph("unet")(sample=np.zeros((1, 4, 16, 16), np.float32), timestep=np.float32(1),
                           encoder_hidden_states=np.zeros((1, 77, 32), np.float32))


def test_sdxl_bad_input(pipeline_folder, tmp_path):
    folder = pipeline_folder("sdxl", "edge-onnx")
    pipe = load_ours(StableDiffusionXLPipeline, folder)
    with pytest.raises(ValueError, match="width must be a positive multiple of 8"):
        pipe("a cat", width=20)
    with pytest.raises(ValueError, match="original_size must be a pair"):
        pipe("a cat", original_size=(32,), num_inference_steps=1)
    with pytest.raises(ValueError, match="pooled_prompt_embeds"):
        pipe(prompt_embeds=np.zeros((1, 77, 64), np.float32), num_inference_steps=1)
    with pytest.raises(ValueError, match="negative_prompt"):
        pipe(["a", "b"], negative_prompt=["x", "y", "z"], num_inference_steps=1)
    with pytest.raises(ValueError, match="clip_skip must be in"):
        pipe("a cat", clip_skip=5, num_inference_steps=1)
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        pipe("a cat", callback_on_step_end=lambda *a: {}, callback_on_step_end_tensor_inputs=["noise_pred"])
    with pytest.raises(ValueError, match="2 generators for 1 images"):
        pipe("a cat", generator=[1, 2], num_inference_steps=1)

    # a UNet config whose added-embedding width does not fit six time ids + the pooled embedding
    broken = tmp_path / "sdxl-bad-config"
    shutil.copytree(folder, broken)
    cfg = json.loads((broken / "unet" / "config.json").read_text())
    cfg["addition_time_embed_dim"] = 16
    (broken / "unet" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="added embedding of 80 values"):
        load_ours(StableDiffusionXLPipeline, broken)("a cat", num_inference_steps=1)
    # no text_encoder_2 / no tokenizer_2
    shutil.rmtree(broken / "text_encoder_2")
    with pytest.raises(ValueError, match="needs the component folder"):
        StableDiffusionXLPipeline.from_pretrained(broken)
    shutil.copytree(folder / "text_encoder_2", broken / "text_encoder_2")
    shutil.rmtree(broken / "tokenizer_2")
    with pytest.raises(ValueError, match="tokenizer_2"):
        StableDiffusionXLPipeline.from_pretrained(broken)
    # a UNet graph without the time_ids input (renamed here): a load error naming it
    shutil.copytree(folder / "tokenizer_2", broken / "tokenizer_2")
    shutil.copytree(folder / "unet", broken / "unet", dirs_exist_ok=True)
    rename_graph_input(broken, "unet", "time_ids", "added_ids")
    with pytest.raises(ValueError, match="missing time_ids"):
        StableDiffusionXLPipeline.from_pretrained(broken)
