"""Same prompt, same seed, same image: edge_sched on exported graphs against diffusers in torch.

Each case runs diffusers' StableDiffusionPipeline (torch, ``torch.Generator().manual_seed(s)``)
and ours (numpy schedulers, ``generator=s`` meaning TorchGenerator(s)) on graphs exported from the
same weights, by our export/ and by optimum's exporters, on ONNX Runtime and OpenVINO (f32).
Bound (issue 5): max abs pixel difference at most 1e-3, images in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import diffusers
from edge_sched.pipelines import StableDiffusionPipeline
from edge_sched.schedulers import scheduler_class

from .conftest import IMAGE_PARITY, SD_FOLDERS

BOUND = 1e-3

# (id, scheduler class, config overrides, call kwargs): ancestral, SDE and custom schedules included
CASES = [
    ("pndm", "PNDMScheduler", {}, dict(num_inference_steps=4)),
    ("ddim-eta", "DDIMScheduler", {}, dict(num_inference_steps=5, eta=0.7)),
    ("euler-a", "EulerAncestralDiscreteScheduler", {}, dict(num_inference_steps=5)),
    ("dpm2m-karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, dict(num_inference_steps=6)),
    ("dpm2m-sde", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, dict(num_inference_steps=5)),
    ("euler-sigmas", "EulerDiscreteScheduler", {}, dict(sigmas=[14.6, 7.0, 3.0, 1.2, 0.4])),
    ("dpm-timesteps", "DPMSolverMultistepScheduler", {}, dict(timesteps=[999, 800, 600, 400, 200, 50])),
    ("heun", "HeunDiscreteScheduler", {}, dict(num_inference_steps=3)),
    ("unipc-trailing", "UniPCMultistepScheduler", {"timestep_spacing": "trailing"}, dict(num_inference_steps=4)),
    ("lms", "LMSDiscreteScheduler", {}, dict(num_inference_steps=5)),
]


def run_both(reference, pipe, scheduler, overrides, seed=0, prompt="a cat and a dog", **kwargs):
    """Both pipelines get ``scheduler`` made from their folder's own scheduler config plus ``overrides``."""
    reference.scheduler = getattr(diffusers, scheduler).from_config(reference.base_scheduler_config, **overrides)
    pipe.scheduler = scheduler_class(scheduler).from_config(pipe.base_scheduler_config, **overrides)
    if isinstance(seed, list):
        torch_gen = [torch.Generator().manual_seed(s) for s in seed]
    else:
        torch_gen = torch.Generator().manual_seed(seed)
    ref = reference(prompt, generator=torch_gen, output_type="np", **kwargs).images
    ours = pipe(prompt, generator=seed, output_type="np", **kwargs).images
    return np.asarray(ours), np.asarray(ref)


@pytest.fixture(scope="module", params=SD_FOLDERS)
def folder_pipe(request, sd_folders):
    return request.param, load(sd_folders(request.param))


def load(folder):
    pipe = StableDiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    pipe.base_scheduler_config = pipe.scheduler.config
    return pipe


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_text_to_image_matches_diffusers(case, folder_pipe, reference_sd):
    kind, pipe = folder_pipe
    _, scheduler, overrides, kwargs = case
    ours, ref = run_both(reference_sd, pipe, scheduler, overrides, seed=7, **kwargs)
    assert ours.shape == ref.shape == (1, 32, 32, 3)
    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY[f"StableDiffusionPipeline {kind}"].append(diff)
    assert diff <= BOUND, f"{scheduler} {overrides} {kwargs}: max abs pixel difference {diff:.3g}"
    assert ref.std() > 0.01, "the reference image is flat: the test would prove nothing"


@pytest.mark.parametrize("kind", ["edge-onnx", "edge-openvino"])
def test_batch_negative_prompt_rescale_and_generator_list(kind, sd_folders, reference_sd):
    """Two prompts x two images each, a negative prompt, guidance rescale, one generator per image."""
    pipe = load(sd_folders(kind))
    ours, ref = run_both(
        reference_sd, pipe, "EulerAncestralDiscreteScheduler", {"timestep_spacing": "trailing",
                                                                  "rescale_betas_zero_snr": True},
        seed=[1, 2, 3, 4], prompt=["a cat", "the dog and the cat"], negative_prompt=["dog", "cat"],
        num_images_per_prompt=2, guidance_scale=5.0, guidance_rescale=0.7, num_inference_steps=4,
    )
    assert ours.shape == ref.shape == (4, 32, 32, 3)
    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY[f"StableDiffusionPipeline {kind}"].append(diff)
    assert diff <= BOUND


def test_no_guidance_and_given_latents(sd_folders, reference_sd):
    pipe = load(sd_folders("edge-onnx"))
    latents = np.random.default_rng(0).standard_normal((1, 4, 16, 16)).astype(np.float32)
    reference_sd.scheduler = diffusers.DDIMScheduler.from_config(reference_sd.base_scheduler_config)
    pipe.scheduler = scheduler_class("DDIMScheduler").from_config(pipe.base_scheduler_config)
    ref = reference_sd("a dog", guidance_scale=1.0, num_inference_steps=3, latents=torch.from_numpy(latents),
                       output_type="np").images
    ours = pipe("a dog", guidance_scale=1.0, num_inference_steps=3, latents=latents, output_type="np").images
    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY["StableDiffusionPipeline edge-onnx"].append(diff)
    assert diff <= BOUND


IMG2IMG_CASES = [
    ("ddim", "DDIMScheduler", {}, dict(num_inference_steps=6, strength=0.6)),
    ("euler-a", "EulerAncestralDiscreteScheduler", {}, dict(num_inference_steps=5, strength=0.8)),
    ("dpm2m-karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, dict(num_inference_steps=6, strength=0.5)),
    ("heun-full", "HeunDiscreteScheduler", {}, dict(num_inference_steps=3, strength=1.0)),
]


@pytest.fixture(scope="module")
def init_image():
    from PIL import Image

    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:32, 0:32] / 31.0
    pixels = np.stack([x, y, 0.5 + 0.3 * np.sin(6 * x * y)], axis=-1) + 0.05 * rng.standard_normal((32, 32, 3))
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def reference_img2img(reference_sd):
    from diffusers import StableDiffusionImg2ImgPipeline as TorchImg2Img

    pipe = TorchImg2Img(**reference_sd.components)
    pipe.set_progress_bar_config(disable=True)
    pipe.base_scheduler_config = reference_sd.base_scheduler_config
    return pipe


@pytest.mark.parametrize("kind", ["edge-onnx", "edge-openvino", "optimum-onnx"])
@pytest.mark.parametrize("case", IMG2IMG_CASES, ids=[c[0] for c in IMG2IMG_CASES])
def test_image_to_image_matches_diffusers(case, kind, sd_folders, reference_img2img, init_image):
    from edge_sched.pipelines import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(sd_folders(kind))
    pipe.set_progress_bar_config(disable=True)
    pipe.base_scheduler_config = pipe.scheduler.config
    _, scheduler, overrides, kwargs = case
    ours, ref = run_both(reference_img2img, pipe, scheduler, overrides, seed=[4, 5], prompt="a cat",
                         image=init_image, num_images_per_prompt=2, **kwargs)
    assert ours.shape == ref.shape == (2, 32, 32, 3)
    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY[f"StableDiffusionImg2ImgPipeline {kind}"].append(diff)
    assert diff <= BOUND, f"{scheduler} {kwargs}: {diff:.3g}"


def test_image_to_image_bad_strength(sd_folders, init_image):
    from edge_sched.pipelines import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(sd_folders("edge-onnx"))
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
            pipe("a cat", image=init_image, strength=bad)
    pipe.scheduler = scheduler_class("DDIMScheduler").from_config(pipe.scheduler.config)
    with pytest.raises(ValueError, match="leaves no step"):
        pipe("a cat", image=init_image, strength=0.0, num_inference_steps=4)


def test_static_batch_one_graphs_run_guidance_as_two_calls(sd_folders, reference_sd):
    """NPU-style graphs: every shape fixed, batch 1. Guidance then runs as two UNet calls per step,
    two prompts' images are encoded and decoded one at a time; the images do not change."""
    static = {
        "text_encoder": {"input_ids": (1, 77)},
        "unet": {"sample": (1, 4, 16, 16), "timestep": (1,), "encoder_hidden_states": (1, 77, 32)},
        "vae_decoder": {"latent_sample": (1, 4, 16, 16)},
    }
    pipe = StableDiffusionPipeline.from_pretrained(sd_folders("edge-openvino"), static_shapes=static)
    pipe.set_progress_bar_config(disable=True)
    pipe.base_scheduler_config = pipe.scheduler.config
    assert pipe.components["unet"].inputs["sample"].shape == (1, 4, 16, 16)
    calls = []
    original = pipe.components["unet"]._run
    pipe.components["unet"]._run = lambda feeds: calls.append(feeds["sample"].shape) or original(feeds)
    ours, ref = run_both(reference_sd, pipe, "EulerAncestralDiscreteScheduler", {}, seed=[8, 9],
                         prompt=["a cat", "a dog"], num_inference_steps=3)
    assert calls and all(shape[0] == 1 for shape in calls) and len(calls) == 3 * 4  # 3 steps x (2 prompts x 2)
    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY["StableDiffusionPipeline edge-openvino static batch 1"].append(diff)
    assert diff <= BOUND


@pytest.mark.parametrize("kind", ["edge-openvino", "optimum-openvino"])
def test_reshape_fixes_shapes_and_keeps_the_image(kind, sd_folders, reference_sd):
    """pipe.reshape(...) (static shapes for a known size, as optimum-intel's): every graph input becomes
    static, the image still matches diffusers, and another size is then a clear error."""
    from edge_sched.runtime import EngineError

    pipe = load(sd_folders(kind))
    assert pipe.reshape(batch_size=2, height=32, width=32, guidance_scale=7.5) is pipe
    unet = pipe.components["unet"]
    assert unet.inputs["sample"].shape == (4, 4, 16, 16)  # 2 prompts x (uncond, cond)
    assert unet.inputs["encoder_hidden_states"].shape == (4, 77, 32)
    assert pipe.components["text_encoder"].inputs["input_ids"].shape == (2, 77)
    assert pipe.components["vae_decoder"].inputs["latent_sample"].shape == (2, 4, 16, 16)
    ours, ref = run_both(reference_sd, pipe, "DPMSolverMultistepScheduler", {}, seed=[3, 4],
                         prompt=["a cat", "a dog"], num_inference_steps=4, height=32, width=32)
    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY[f"StableDiffusionPipeline {kind} reshaped"].append(diff)
    assert diff <= BOUND
    with pytest.raises(EngineError, match="cannot take an array of shape"):
        pipe(["a cat", "a dog"], num_inference_steps=2, height=48, width=48, output_type="np")
    with pytest.raises(ValueError, match="positive integer"):
        pipe.reshape(batch_size=0)


def test_reshape_is_an_openvino_feature(sd_folders):
    from edge_sched.runtime import EngineError

    with pytest.raises(EngineError, match="OpenVINO feature"):
        load(sd_folders("edge-onnx")).reshape(height=32, width=32)


def test_compile_false_defers_loading_until_compile(sd_folders):
    """from_pretrained(compile=False) -> reshape -> compile(): each graph compiled once, with its final shapes."""
    pipe = StableDiffusionPipeline.from_pretrained(sd_folders("edge-openvino"), compile=False)
    assert pipe.components.loaded == []
    pipe.reshape(height=32, width=32)
    assert pipe.components.loaded == []
    assert pipe.compile() is pipe
    assert sorted(pipe.components.loaded) == ["text_encoder", "unet", "vae_decoder"]  # no VAE encoder for text-to-image
    assert pipe.components["unet"].inputs["sample"].shape == (2, 4, 16, 16)
