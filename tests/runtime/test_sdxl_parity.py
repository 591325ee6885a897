"""StableDiffusionXLPipeline: same prompt, same seed, same image as diffusers' torch pipeline.

A tiny SDXL (two text encoders, the second with projection; a UNet with ``text_time`` added
conditioning) exported by our export/ (ONNX, OpenVINO) and by optimum's ONNX exporter.
Bound (issue 5): max abs pixel difference at most 1e-3, images in [0, 1].
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from edge_sched.pipelines.sdxl import StableDiffusionXLPipeline

from .conftest import IMAGE_PARITY
from .conftest_pipelines import (  # noqa: F401 (pipeline_folder is a fixture)
    load_ours, load_reference, pipeline_folder, rename_graph_input, set_schedulers, torch_generators,
)

BOUND = 1e-3

MICRO = dict(original_size=(64, 48), crops_coords_top_left=(4, 8), target_size=(32, 40))
CASES = [
    ("euler", "EulerDiscreteScheduler", {}, dict(num_inference_steps=4)),
    ("euler-a-micro", "EulerAncestralDiscreteScheduler", {}, dict(num_inference_steps=4, **MICRO)),
    ("dpm2m-karras-negative", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True},
     dict(num_inference_steps=5, negative_prompt="dog", negative_prompt_2="the cat", guidance_rescale=0.6)),
    ("ddim-eta-negative-sizes", "DDIMScheduler", {}, dict(num_inference_steps=4, eta=0.5, negative_prompt="",
                                                          negative_original_size=(16, 16), negative_target_size=(32, 32))),
    ("euler-sigmas-clip-skip", "EulerDiscreteScheduler", {}, dict(sigmas=[14.6, 6.0, 2.0, 0.5], clip_skip=1)),
    ("unipc-denoising-end", "UniPCMultistepScheduler", {}, dict(num_inference_steps=6, denoising_end=0.6,
                                                                prompt_2="a dog")),
]
FOLDERS = ("edge-onnx", "edge-openvino", "optimum-onnx")


@pytest.fixture(scope="module")
def reference(pipeline_folder):
    from diffusers import StableDiffusionXLPipeline as TorchXL

    # the invisible watermark is not part of the runtime (and its package is not installed)
    return load_reference(TorchXL, pipeline_folder("sdxl", "source"), add_watermarker=False)


@pytest.fixture(scope="module", params=FOLDERS)
def folder_pipe(request, pipeline_folder):
    return request.param, load_ours(StableDiffusionXLPipeline, pipeline_folder("sdxl", request.param))


def run_both(reference, pipe, scheduler, overrides, seed, prompt="a cat and a dog", **kwargs):
    set_schedulers(reference, pipe, scheduler, overrides)
    ref = reference(prompt, generator=torch_generators(seed), output_type="np", **kwargs).images
    ours = pipe(prompt, generator=seed, output_type="np", **kwargs).images
    return np.asarray(ours), np.asarray(ref)


def record(kind, ours, ref):
    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY[f"StableDiffusionXLPipeline {kind}"].append(diff)
    return diff


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_sdxl_matches_diffusers(case, folder_pipe, reference):
    kind, pipe = folder_pipe
    _, scheduler, overrides, kwargs = case
    ours, ref = run_both(reference, pipe, scheduler, overrides, seed=7, **kwargs)
    assert ours.shape == ref.shape == (1, 32, 32, 3)
    diff = record(kind, ours, ref)
    assert diff <= BOUND, f"{scheduler} {overrides} {kwargs}: max abs pixel difference {diff:.3g}"
    assert ref.std() > 0.01, "the reference image is flat: the test would prove nothing"


@pytest.mark.parametrize("kind", ["edge-onnx", "edge-openvino"])
def test_batch_generators_and_distinct_negative_time_ids(kind, pipeline_folder, reference):
    """Two prompts x two images, a generator per image, and negative time ids that differ from the positive
    ones (diffusers tiles the [negative, positive] rows per image; the same rows must reach the UNet)."""
    pipe = load_ours(StableDiffusionXLPipeline, pipeline_folder("sdxl", kind))
    ours, ref = run_both(reference, pipe, "EulerAncestralDiscreteScheduler", {}, seed=[1, 2, 3, 4],
                         prompt=["a cat", "the dog and the cat"], negative_prompt=["dog", "cat"],
                         num_images_per_prompt=2, num_inference_steps=3, guidance_scale=6.0,
                         negative_original_size=(8, 16), negative_target_size=(24, 24))
    assert ours.shape == ref.shape == (4, 32, 32, 3)
    assert record(kind, ours, ref) <= BOUND


def test_embeddings_latents_no_guidance_and_callback(pipeline_folder, reference):
    """Precomputed (pooled) embeddings, given latents, guidance off, and a callback editing add_time_ids."""
    pipe = load_ours(StableDiffusionXLPipeline, pipeline_folder("sdxl", "edge-onnx"))
    with torch.no_grad():
        embeds, _, pooled, _ = reference.encode_prompt("a dog", do_classifier_free_guidance=False)
    ours_embeds, _, ours_pooled, _ = pipe.encode_prompt_xl("a dog", None, 1, False)
    np.testing.assert_allclose(ours_embeds, embeds.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours_pooled, pooled.numpy(), rtol=0, atol=1e-5)
    latents = np.random.default_rng(0).standard_normal((1, 4, 16, 16)).astype(np.float32)
    set_schedulers(reference, pipe, "EulerDiscreteScheduler", {})

    def callback(p, i, t, tensors):
        return {"add_time_ids": tensors["add_time_ids"] * 0.5} if i == 0 else {}

    common = dict(guidance_scale=1.0, num_inference_steps=3, output_type="np", callback_on_step_end=callback,
                  callback_on_step_end_tensor_inputs=["latents", "add_time_ids"])
    ref = reference(prompt_embeds=embeds, pooled_prompt_embeds=pooled, latents=torch.from_numpy(latents),
                    **common).images
    ours = pipe(prompt_embeds=embeds.numpy(), pooled_prompt_embeds=pooled.numpy(), latents=latents, **common).images
    assert record("edge-onnx", ours, ref) <= BOUND


def test_force_zeros_off_encodes_the_empty_prompt(pipeline_folder, reference, tmp_path):
    """With force_zeros_for_empty_prompt false, the negative is the encoded empty prompt (not zeros)."""
    folder = tmp_path / "sdxl-no-zeros"
    shutil.copytree(pipeline_folder("sdxl", "edge-onnx"), folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["force_zeros_for_empty_prompt"] = False
    (folder / "model_index.json").write_text(json.dumps(index))
    pipe = load_ours(StableDiffusionXLPipeline, folder)
    reference.register_to_config(force_zeros_for_empty_prompt=False)
    try:
        ours, ref = run_both(reference, pipe, "EulerDiscreteScheduler", {}, seed=3, num_inference_steps=3)
    finally:
        reference.register_to_config(force_zeros_for_empty_prompt=True)
    assert record("edge-onnx", ours, ref) <= BOUND
    zeros_on = load_ours(StableDiffusionXLPipeline, pipeline_folder("sdxl", "edge-onnx"))
    _, negative, _, _ = zeros_on.encode_prompt_xl("a cat", None, 1, True)
    _, negative_off, _, _ = pipe.encode_prompt_xl("a cat", None, 1, True)
    assert not negative.any() and negative_off.any()


def test_bad_input(pipeline_folder, tmp_path):
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
