"""Same call, same seed, same image: our pipelines on exported graphs against diffusers' in torch.

Each case runs diffusers' pipeline (torch, ``torch.Generator().manual_seed(s)``) and ours (numpy schedulers,
``generator=s`` meaning TorchGenerator(s)) on graphs exported from the same tiny random weights
(conftest.py's ``pipeline_folder``), by our export/ and by optimum's exporters, on ONNX Runtime and OpenVINO
(f32). Bound (issue 5): max abs pixel difference at most 1e-3, images in [0, 1]. The folders: "sd" (also
inpainting by latent masking with its 4-channel UNet), "inpaint" (9-channel UNet: mask and masked-image
latents concatenated), "lcm" (guidance embedding -> the graph's ``timestep_cond``), "sdxl" (two text
encoders, ``text_time`` added conditioning), "ddpm" / "ddim" (UNet2DModel, pixel space).
"""

from __future__ import annotations

import json
import shutil
from typing import NamedTuple

import numpy as np
import pytest

import edge_sched.pipelines

from .conftest import SD_FOLDERS
from .pipeline_runs import given_latents, load_ours, record, run_both, sample_image, square_mask

BOUND = 1e-3
FOLDERS = ("edge-onnx", "edge-openvino", "optimum-onnx")
EDGE = ("edge-onnx", "edge-openvino")
ONNX = ("edge-onnx",)

IMAGE, MASK = sample_image(), square_mask()
BIG_IMAGE, BIG_MASK = IMAGE.resize((48, 40)), MASK.resize((48, 40))
MASK_ARRAY = np.asarray(MASK, np.float32) / 255  # a float mask [H, W] in [0, 1]
LATENTS = given_latents()


class Case(NamedTuple):
    id: str
    pipeline: str  # class name, the same in diffusers and edge_sched.pipelines
    kind: str  # pipeline_folder's kind
    hows: tuple  # the folders it runs on
    scheduler: str
    overrides: dict
    call: dict
    seed: int | list | None
    shape: tuple = (1, 32, 32, 3)
    label: str = ""  # appended to the summary key
    bound: float = BOUND
    distinct: bool = False  # distinct generators must give distinct images
    reference_attributes: dict | None = None  # set on diffusers' pipeline for this case only


def _table(prefix, pipeline, kind, hows, rows, seed, shape=(1, 32, 32, 3), label="", **call):
    """One Case per (id, scheduler, overrides, call arguments) row, all on the same folders, seed and base call."""
    return [Case(f"{prefix}-{row_id}", pipeline, kind, hows, scheduler, overrides, {**call, **kwargs}, seed, shape,
                 label)
            for row_id, scheduler, overrides, kwargs in rows]


# (id, scheduler class, config overrides, call kwargs): ancestral, SDE and custom schedules included
SD_ROWS = [
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
IMG2IMG_ROWS = [
    ("ddim", "DDIMScheduler", {}, dict(num_inference_steps=6, strength=0.6)),
    ("euler-a", "EulerAncestralDiscreteScheduler", {}, dict(num_inference_steps=5, strength=0.8)),
    ("dpm2m-karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True},
     dict(num_inference_steps=6, strength=0.5)),
    ("heun-full", "HeunDiscreteScheduler", {}, dict(num_inference_steps=3, strength=1.0)),
]
INPAINT_ROWS = [
    ("pndm", "PNDMScheduler", {}, dict(num_inference_steps=4)),
    ("euler-a-strength", "EulerAncestralDiscreteScheduler", {}, dict(num_inference_steps=5, strength=0.7)),
    ("ddim-eta-negative", "DDIMScheduler", {}, dict(num_inference_steps=4, eta=0.6, negative_prompt="dog")),
    ("dpm2m-karras-strength", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True},
     dict(num_inference_steps=6, strength=0.5)),
    ("euler-sigmas", "EulerDiscreteScheduler", {}, dict(sigmas=[14.6, 6.0, 2.0, 0.5])),
]
# LCMScheduler is stochastic (fresh noise between steps, from the generator)
LCM_ROWS = [
    ("4", "LCMScheduler", {}, dict(num_inference_steps=4)),
    ("original-20", "LCMScheduler", {}, dict(num_inference_steps=3, original_inference_steps=20, guidance_scale=3.0)),
    ("timesteps", "LCMScheduler", {}, dict(timesteps=[899, 599, 299, 99])),
    ("vpred-zero-snr", "LCMScheduler", {"rescale_betas_zero_snr": True, "prediction_type": "v_prediction"},
     dict(num_inference_steps=2, guidance_scale=1.5)),
]
MICRO = dict(original_size=(64, 48), crops_coords_top_left=(4, 8), target_size=(32, 40))
SDXL_ROWS = [
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
# two prompts x two images each, one generator per image, negative prompts
BATCH = dict(seed=[1, 2, 3, 4], shape=(4, 32, 32, 3))

SD, IMG2IMG, INPAINT = "StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline"
LCM, SDXL = "LatentConsistencyModelPipeline", "StableDiffusionXLPipeline"

CASES = [
    *_table("sd", SD, "sd", SD_FOLDERS, SD_ROWS, seed=7, prompt="a cat and a dog"),
    # guidance rescale on a zero-SNR trailing schedule
    Case("sd-batch-negative-rescale", SD, "sd", EDGE, "EulerAncestralDiscreteScheduler",
         {"timestep_spacing": "trailing", "rescale_betas_zero_snr": True},
         dict(prompt=["a cat", "the dog and the cat"], negative_prompt=["dog", "cat"], num_images_per_prompt=2,
              guidance_scale=5.0, guidance_rescale=0.7, num_inference_steps=4), **BATCH),
    Case("sd-no-guidance-latents", SD, "sd", ONNX, "DDIMScheduler", {},
         dict(prompt="a dog", guidance_scale=1.0, num_inference_steps=3, latents=LATENTS), seed=None),
    *_table("img2img", IMG2IMG, "sd", FOLDERS, IMG2IMG_ROWS, seed=[4, 5], shape=(2, 32, 32, 3), prompt="a cat",
            image=IMAGE, num_images_per_prompt=2),
    *_table("inpaint", INPAINT, "inpaint", FOLDERS, INPAINT_ROWS, seed=7, prompt="a cat", image=IMAGE,
            mask_image=MASK),
    *_table("inpaint-4ch", INPAINT, "sd", EDGE, INPAINT_ROWS[:4], seed=5, label=" (4-channel UNet)", prompt="a cat",
            image=IMAGE, mask_image=MASK),
    # diffusers encodes the one init image with the first generator
    Case("inpaint-batch", INPAINT, "inpaint", EDGE, "EulerAncestralDiscreteScheduler", {},
         dict(prompt=["a cat", "the dog"], negative_prompt=["dog", "cat"], num_images_per_prompt=2,
              num_inference_steps=3, strength=0.8, image=IMAGE, mask_image=MASK), **BATCH),
    # PIL output: 8-bit, so at most one level apart (recorded apart from the float images)
    Case("inpaint-padding-mask-crop", INPAINT, "inpaint", ONNX, "DDIMScheduler", {},
         dict(prompt="a cat", image=BIG_IMAGE, mask_image=BIG_MASK, num_inference_steps=3, padding_mask_crop=2,
              output_type="pil"), seed=2, shape=(1, 40, 48, 3), label=" (PIL, padding_mask_crop)",
         bound=1 / 255 + 1e-6),
    Case("inpaint-numpy-mask-latents", INPAINT, "inpaint", ONNX, "EulerDiscreteScheduler", {},
         dict(prompt="a cat", image=IMAGE, mask_image=MASK_ARRAY, latents=LATENTS, num_inference_steps=3), seed=9),
    *_table("lcm", LCM, "lcm", FOLDERS, LCM_ROWS, seed=7, prompt="a cat and a dog"),
    Case("lcm-batch", LCM, "lcm", EDGE, "LCMScheduler", {},
         dict(prompt=["a cat", "the dog"], num_images_per_prompt=2, num_inference_steps=3, guidance_scale=6.0),
         distinct=True, **BATCH),
    # TCD (stochastic, gamma = eta = 0.3): diffusers' LCM pipeline hands step() eta=None, which TCD rejects; ours
    # leaves TCD its default eta. The reference is diffusers' loop with that one argument left out.
    Case("lcm-tcd", LCM, "lcm", ONNX, "TCDScheduler", {}, dict(prompt="a cat and a dog", num_inference_steps=4),
         seed=11, reference_attributes={"prepare_extra_step_kwargs": lambda generator, eta: {"generator": generator}}),
    *_table("sdxl", SDXL, "sdxl", FOLDERS, SDXL_ROWS, seed=7, prompt="a cat and a dog"),
    # negative time ids that differ from the positive ones (diffusers tiles the [negative, positive] rows per
    # image; the same rows must reach the UNet)
    Case("sdxl-batch-negative-time-ids", SDXL, "sdxl", EDGE, "EulerAncestralDiscreteScheduler", {},
         dict(prompt=["a cat", "the dog and the cat"], negative_prompt=["dog", "cat"], num_images_per_prompt=2,
              num_inference_steps=3, guidance_scale=6.0, negative_original_size=(8, 16), negative_target_size=(24, 24)),
         **BATCH),
    Case("ddpm", "DDPMPipeline", "ddpm", ONNX, "DDPMScheduler", {}, dict(batch_size=2, num_inference_steps=8),
         seed=11, shape=(2, 16, 16, 3)),
    # eta: noise drawn from the generator at every step
    Case("ddim-eta", "DDIMPipeline", "ddim", EDGE, "DDIMScheduler", {},
         dict(batch_size=2, num_inference_steps=8, eta=0.5), seed=11, shape=(2, 16, 16, 3)),
]
RUNS = [(case, how) for case in CASES for how in case.hows]


@pytest.fixture(scope="module")
def ours(pipeline_folder):
    """``ours(name, kind, how)``: our pipeline class ``name`` on ``pipeline_folder(kind, how)``, loaded once."""
    cache = {}

    def get(name, kind, how):
        if (name, kind, how) not in cache:
            cache[name, kind, how] = load_ours(getattr(edge_sched.pipelines, name), pipeline_folder(kind, how))
        return cache[name, kind, how]

    return get


@pytest.mark.parametrize("case,how", RUNS, ids=[f"{case.id}-{how}" for case, how in RUNS])
def test_pipeline_matches_diffusers(case, how, ours, reference_pipeline, monkeypatch):
    reference = reference_pipeline(case.pipeline, case.kind)
    for name, value in (case.reference_attributes or {}).items():
        monkeypatch.setattr(reference, name, value)
    got, ref = run_both(reference, ours(case.pipeline, case.kind, how), case.scheduler, case.overrides, case.seed,
                        **case.call)
    assert got.shape == ref.shape == case.shape
    diff = record(f"{case.pipeline} {how}{case.label}", got, ref)
    assert diff <= case.bound, f"{case.scheduler} {case.overrides} {case.call}: max abs pixel difference {diff:.3g}"
    assert ref.std() > 0.01, "the reference image is flat: the test would prove nothing"
    if case.distinct:
        assert np.abs(got[0] - got[1]).max() > 0.01, "distinct generators gave the same image"


def test_static_batch_one_graphs_run_guidance_as_two_calls(pipeline_folder, reference_sd):
    """NPU-style graphs: every shape fixed, batch 1. Guidance then runs as two UNet calls per step,
    two prompts' images are encoded and decoded one at a time; the images do not change."""
    static = {
        "text_encoder": {"input_ids": (1, 77)},
        "unet": {"sample": (1, 4, 16, 16), "timestep": (1,), "encoder_hidden_states": (1, 77, 32)},
        "vae_decoder": {"latent_sample": (1, 4, 16, 16)},
    }
    pipe = load_ours(edge_sched.pipelines.StableDiffusionPipeline, pipeline_folder("sd", "edge-openvino"),
                     static_shapes=static)
    assert pipe.graphs["unet"].inputs["sample"].shape == (1, 4, 16, 16)
    calls = []
    original = pipe.graphs["unet"]._run
    pipe.graphs["unet"]._run = lambda feeds: calls.append(feeds["sample"].shape) or original(feeds)
    got, ref = run_both(reference_sd, pipe, "EulerAncestralDiscreteScheduler", {}, [8, 9], prompt=["a cat", "a dog"],
                        num_inference_steps=3)
    assert calls and all(shape[0] == 1 for shape in calls) and len(calls) == 3 * 4  # 3 steps x (2 prompts x 2)
    assert record("StableDiffusionPipeline edge-openvino static batch 1", got, ref) <= BOUND


@pytest.mark.parametrize("how", ["edge-openvino", "optimum-openvino"])
def test_reshape_fixes_shapes_and_keeps_the_image(how, pipeline_folder, reference_sd):
    """pipe.reshape(...) (static shapes for a known size, as optimum-intel's): every graph input becomes
    static, the image still matches diffusers, and another size is then a clear error."""
    from edge_sched.runtime import EngineError

    pipe = load_ours(edge_sched.pipelines.StableDiffusionPipeline, pipeline_folder("sd", how))
    assert pipe.reshape(batch_size=2, height=32, width=32, guidance_scale=7.5) is pipe
    unet = pipe.graphs["unet"]
    assert unet.inputs["sample"].shape == (4, 4, 16, 16)  # 2 prompts x (uncond, cond)
    assert unet.inputs["encoder_hidden_states"].shape == (4, 77, 32)
    assert pipe.graphs["text_encoder"].inputs["input_ids"].shape == (2, 77)
    assert pipe.graphs["vae_decoder"].inputs["latent_sample"].shape == (2, 4, 16, 16)
    got, ref = run_both(reference_sd, pipe, "DPMSolverMultistepScheduler", {}, [3, 4], prompt=["a cat", "a dog"],
                        num_inference_steps=4, height=32, width=32)
    assert record(f"StableDiffusionPipeline {how} reshaped", got, ref) <= BOUND
    with pytest.raises(EngineError, match="cannot take an array of shape"):
        pipe(["a cat", "a dog"], num_inference_steps=2, height=48, width=48, output_type="np")
    with pytest.raises(ValueError, match="positive integer"):
        pipe.reshape(batch_size=0)


def test_lcm_latents_and_denoised_callback(ours, reference_pipeline):
    """Given latents; a callback that reads ``denoised`` and rescales the latents after the first step."""
    seen = {}  # "diffusers" / "edge_sched" -> (step, timestep, denoised std) per step

    def callback(p, i, t, tensors):
        steps = seen.setdefault(type(p).__module__.split(".")[0], [])
        steps.append((i, int(t), float(np.asarray(tensors["denoised"]).std())))
        return {"latents": tensors["latents"] * 0.9} if i == 0 else {}

    got, ref = run_both(reference_pipeline(LCM, "lcm"), ours(LCM, "lcm", "edge-onnx"), "LCMScheduler", {}, 5,
                        prompt="a dog", num_inference_steps=3, latents=LATENTS, callback_on_step_end=callback,
                        callback_on_step_end_tensor_inputs=["latents", "denoised"])
    assert [s[:2] for s in seen["edge_sched"]] == [s[:2] for s in seen["diffusers"]]
    assert record(f"{LCM} edge-onnx", got, ref) <= BOUND


def test_sdxl_embeddings_latents_no_guidance_and_callback(ours, reference_pipeline):
    """Precomputed (pooled) embeddings, given latents, guidance off, and a callback editing add_time_ids."""
    import torch

    reference, pipe = reference_pipeline(SDXL, "sdxl"), ours(SDXL, "sdxl", "edge-onnx")
    with torch.no_grad():
        embeds, _, pooled, _ = reference.encode_prompt("a dog", do_classifier_free_guidance=False)
    ours_embeds, _, ours_pooled, _ = pipe.encode_prompt_xl("a dog", None, 1, False)
    np.testing.assert_allclose(ours_embeds, embeds.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours_pooled, pooled.numpy(), rtol=0, atol=1e-5)

    def callback(p, i, t, tensors):
        return {"add_time_ids": tensors["add_time_ids"] * 0.5} if i == 0 else {}

    got, ref = run_both(reference, pipe, "EulerDiscreteScheduler", {}, None, prompt_embeds=embeds.numpy(),
                        pooled_prompt_embeds=pooled.numpy(), latents=LATENTS, guidance_scale=1.0,
                        num_inference_steps=3, callback_on_step_end=callback,
                        callback_on_step_end_tensor_inputs=["latents", "add_time_ids"])
    assert record(f"{SDXL} edge-onnx", got, ref) <= BOUND


def test_sdxl_force_zeros_off_encodes_the_empty_prompt(pipeline_folder, ours, reference_pipeline, tmp_path):
    """With force_zeros_for_empty_prompt false, the negative is the encoded empty prompt (not zeros)."""
    folder = tmp_path / "sdxl-no-zeros"
    shutil.copytree(pipeline_folder("sdxl", "edge-onnx"), folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["force_zeros_for_empty_prompt"] = False
    (folder / "model_index.json").write_text(json.dumps(index))
    pipe = load_ours(edge_sched.pipelines.StableDiffusionXLPipeline, folder)
    reference = reference_pipeline(SDXL, "sdxl")
    reference.register_to_config(force_zeros_for_empty_prompt=False)
    try:
        got, ref = run_both(reference, pipe, "EulerDiscreteScheduler", {}, 3, prompt="a cat and a dog",
                            num_inference_steps=3)
    finally:
        reference.register_to_config(force_zeros_for_empty_prompt=True)
    assert record(f"{SDXL} edge-onnx", got, ref) <= BOUND
    _, negative, _, _ = ours(SDXL, "sdxl", "edge-onnx").encode_prompt_xl("a cat", None, 1, True)
    _, negative_off, _, _ = pipe.encode_prompt_xl("a cat", None, 1, True)
    assert not negative.any() and negative_off.any()


def test_guidance_embedding_matches_diffusers(reference_pipeline, monkeypatch):
    """The LCM guidance embedding is ill-conditioned in its frequencies (angle = 1000 w f): torch's float32
    exp misses the correctly rounded value by an ulp on a few of 128 frequencies, which moves sin / cos by up
    to 1000 w ulp(f) (plus the angle's rounding).
    So: exact (to float32 rounding) against diffusers run with a correctly rounded exp, and against stock
    diffusers within that one-ulp amplification, element by element."""
    import torch

    from edge_sched.pipelines.guidance import guidance_scale_embedding

    reference = reference_pipeline(LCM, "lcm")

    def ieee_exp(x):
        return torch.from_numpy(np.exp(x.numpy().astype(np.float64)).astype(np.float32))

    for scale in (1.0, 2.5, 8.5, 15.0):
        w = torch.tensor(scale - 1).repeat(3)
        for dim in (32, 33, 256):
            got = guidance_scale_embedding(np.full(3, np.float32(scale - 1)), dim)
            stock = reference.get_guidance_scale_embedding(w, embedding_dim=dim).numpy()
            with monkeypatch.context() as m:
                m.setattr(torch, "exp", ieee_exp)
                ieee = reference.get_guidance_scale_embedding(w, embedding_dim=dim).numpy()
            assert got.shape == stock.shape == (3, dim) and got.dtype == np.float32
            np.testing.assert_allclose(got, ieee, rtol=0, atol=1.2e-7)
            half = dim // 2
            freqs = np.exp(-np.arange(half) * np.log(10000.0) / (half - 1)).astype(np.float32)
            # one ulp of a frequency, times 1000 w, plus the product's own rounding (one ulp of the angle)
            angle = np.float32(1000 * abs(scale - 1)) * freqs
            one_ulp = np.float32(1000 * abs(scale - 1)) * np.spacing(freqs) + np.spacing(angle)
            bound = np.concatenate([one_ulp, one_ulp, np.zeros(dim % 2, np.float32)]) + 1.2e-7
            assert (np.abs(got - stock) <= bound).all(), float(np.abs(got - stock).max())
