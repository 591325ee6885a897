"""StableDiffusionInpaintPipeline: same prompt, image, mask and seed, same image as diffusers' torch pipeline.

Two UNets: a tiny 9-channel inpainting UNet (mask and masked-image latents concatenated) exported
by our export/ (ONNX, OpenVINO) and optimum's ONNX exporter; and a plain 4-channel SD UNet (latent
masking: init latents re-noised each step). Bound (issue 5): max abs pixel difference at most 1e-3.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from edge_sched.pipelines.inpaint import StableDiffusionInpaintPipeline

from .conftest import IMAGE_PARITY
from .conftest_pipelines import (  # noqa: F401 (pipeline_folder is a fixture)
    load_ours, pipeline_folder, sample_image, set_schedulers, torch_generators,
)

BOUND = 1e-3

CASES = [
    ("pndm", "PNDMScheduler", {}, dict(num_inference_steps=4)),
    ("euler-a-strength", "EulerAncestralDiscreteScheduler", {}, dict(num_inference_steps=5, strength=0.7)),
    ("ddim-eta-negative", "DDIMScheduler", {}, dict(num_inference_steps=4, eta=0.6, negative_prompt="dog")),
    ("dpm2m-karras-strength", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True},
     dict(num_inference_steps=6, strength=0.5)),
    ("euler-sigmas", "EulerDiscreteScheduler", {}, dict(sigmas=[14.6, 6.0, 2.0, 0.5])),
]
FOLDERS = ("edge-onnx", "edge-openvino", "optimum-onnx")


@pytest.fixture(scope="module")
def image_and_mask():
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 4:20] = 255
    return sample_image(), Image.fromarray(mask)


def reference_for(source):
    from diffusers import StableDiffusionInpaintPipeline as TorchInpaint

    pipe = TorchInpaint.from_pretrained(source, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.base_scheduler_config = pipe.scheduler.config
    return pipe


@pytest.fixture(scope="module")
def reference(pipeline_folder):
    return reference_for(pipeline_folder("inpaint", "source"))


@pytest.fixture(scope="module")
def reference_4ch(pipeline_folder):
    return reference_for(pipeline_folder("sd", "source"))


@pytest.fixture(scope="module", params=FOLDERS)
def folder_pipe(request, pipeline_folder):
    return request.param, load_ours(StableDiffusionInpaintPipeline, pipeline_folder("inpaint", request.param))


def run_both(reference, pipe, scheduler, overrides, seed, image, mask, prompt="a cat", **kwargs):
    set_schedulers(reference, pipe, scheduler, overrides)
    output_type = kwargs.pop("output_type", "np")
    ref = reference(prompt, image=image, mask_image=mask, generator=torch_generators(seed), output_type=output_type,
                    **kwargs).images
    ours = pipe(prompt, image=image, mask_image=mask, generator=seed, output_type=output_type, **kwargs).images
    if output_type == "pil":
        return np.stack([np.asarray(i, np.float32) / 255 for i in ours]), np.stack([np.asarray(i, np.float32) / 255
                                                                                   for i in ref])
    return np.asarray(ours), np.asarray(ref)


def record(kind, ours, ref):
    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY[f"StableDiffusionInpaintPipeline {kind}"].append(diff)
    return diff


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_inpaint_9_channel_matches_diffusers(case, folder_pipe, reference, image_and_mask):
    kind, pipe = folder_pipe
    _, scheduler, overrides, kwargs = case
    ours, ref = run_both(reference, pipe, scheduler, overrides, 7, *image_and_mask, **kwargs)
    assert ours.shape == ref.shape == (1, 32, 32, 3)
    diff = record(kind, ours, ref)
    assert diff <= BOUND, f"{scheduler} {overrides} {kwargs}: max abs pixel difference {diff:.3g}"
    assert ref.std() > 0.01, "the reference image is flat: the test would prove nothing"


@pytest.mark.parametrize("kind", ["edge-onnx", "edge-openvino"])
@pytest.mark.parametrize("case", CASES[:4], ids=[c[0] for c in CASES[:4]])
def test_inpaint_plain_unet_latent_masking(case, kind, pipeline_folder, reference_4ch, image_and_mask):
    pipe = load_ours(StableDiffusionInpaintPipeline, pipeline_folder("sd", kind))
    _, scheduler, overrides, kwargs = case
    ours, ref = run_both(reference_4ch, pipe, scheduler, overrides, 5, *image_and_mask, **kwargs)
    diff = record(f"{kind} (4-channel UNet)", ours, ref)
    assert diff <= BOUND, f"{scheduler} {kwargs}: {diff:.3g}"


@pytest.mark.parametrize("kind", ["edge-onnx", "edge-openvino"])
def test_batch_with_generator_list(kind, pipeline_folder, reference, image_and_mask):
    """Two prompts x two images, a generator per image (diffusers encodes the one init image with the first)."""
    pipe = load_ours(StableDiffusionInpaintPipeline, pipeline_folder("inpaint", kind))
    ours, ref = run_both(reference, pipe, "EulerAncestralDiscreteScheduler", {}, [1, 2, 3, 4], *image_and_mask,
                         prompt=["a cat", "the dog"], negative_prompt=["dog", "cat"], num_images_per_prompt=2,
                         num_inference_steps=3, strength=0.8)
    assert ours.shape == ref.shape == (4, 32, 32, 3)
    assert record(kind, ours, ref) <= BOUND


def test_padding_mask_crop_numpy_mask_and_latents(pipeline_folder, reference, image_and_mask):
    pipe = load_ours(StableDiffusionInpaintPipeline, pipeline_folder("inpaint", "edge-onnx"))
    image, mask = image_and_mask
    big_image, big_mask = image.resize((48, 40)), mask.resize((48, 40))
    ours, ref = run_both(reference, pipe, "DDIMScheduler", {}, 2, big_image, big_mask, num_inference_steps=3,
                         padding_mask_crop=2, output_type="pil")
    # PIL output: 8-bit, so at most one level apart (recorded apart from the float images)
    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY["StableDiffusionInpaintPipeline edge-onnx (PIL, padding_mask_crop)"].append(diff)
    assert diff <= 1 / 255 + 1e-6
    # a float mask array [H, W] in [0, 1] and given latents
    mask_array = np.asarray(mask, np.float32) / 255
    latents = np.random.default_rng(0).standard_normal((1, 4, 16, 16)).astype(np.float32)
    set_schedulers(reference, pipe, "EulerDiscreteScheduler", {})
    ref = reference("a cat", image=image, mask_image=mask_array, latents=torch.from_numpy(latents),
                    num_inference_steps=3, output_type="np", generator=torch.Generator().manual_seed(9)).images
    ours = pipe("a cat", image=image, mask_image=mask_array, latents=latents, num_inference_steps=3,
                output_type="np", generator=9).images
    assert record("edge-onnx", ours, ref) <= BOUND


def test_bad_input(pipeline_folder, image_and_mask, tmp_path):
    pipe = load_ours(StableDiffusionInpaintPipeline, pipeline_folder("inpaint", "edge-onnx"))
    image, mask = image_and_mask
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
    import shutil

    broken = tmp_path / "no-encoder"
    shutil.copytree(pipeline_folder("inpaint", "edge-onnx"), broken)
    shutil.rmtree(broken / "vae_encoder")
    with pytest.raises(ValueError, match="needs the component folder"):
        StableDiffusionInpaintPipeline.from_pretrained(broken)
