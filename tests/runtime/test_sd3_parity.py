"""StableDiffusion3Pipeline: same prompt, same seed, same image as diffusers' torch pipeline.

A tiny random-weight SD3 (two CLIP encoders with projection, T5, an SD3 transformer; tests/export/tiny_flow.py)
is exported by our export/ (ONNX, OpenVINO) and by optimum-onnx's own exporter; our
pipeline on each folder is held to diffusers on the same weights: max abs pixel difference <= 1e-3,
images in [0, 1], for every flow-capable scheduler (FlowMatchEuler with static and dynamic shift,
FlowMatchHeun, DPM-Solver++ multistep / singlestep, UniPC and DEIS on flow sigmas, custom sigmas).
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_sched.pipelines import StableDiffusion3Pipeline
from edge_sched.schedulers import scheduler_class

from .flow_folders import FLOW_SIGMAS
from .pipeline_runs import load_ours, record, run_both, set_schedulers

BOUND = 1e-3
SIZE = dict(height=32, width=32)

CASES = [
    ("euler", "FlowMatchEulerDiscreteScheduler", {}, dict(num_inference_steps=4)),
    ("euler-dynamic-shift", "FlowMatchEulerDiscreteScheduler", {"use_dynamic_shifting": True}, dict(num_inference_steps=4)),
    ("euler-mu", "FlowMatchEulerDiscreteScheduler", {"use_dynamic_shifting": True}, dict(num_inference_steps=3, mu=0.9)),
    ("euler-sigmas", "FlowMatchEulerDiscreteScheduler", {}, dict(sigmas=[1.0, 0.75, 0.5, 0.25])),
    ("euler-karras-terminal", "FlowMatchEulerDiscreteScheduler", {"use_karras_sigmas": True, "shift_terminal": 0.1},
     dict(num_inference_steps=4)),
    ("heun", "FlowMatchHeunDiscreteScheduler", {}, dict(num_inference_steps=3)),
    ("dpm++2m-flow", "DPMSolverMultistepScheduler", FLOW_SIGMAS, dict(num_inference_steps=5)),
    ("dpm++-singlestep-flow", "DPMSolverSinglestepScheduler", FLOW_SIGMAS, dict(num_inference_steps=5)),
    ("unipc-flow", "UniPCMultistepScheduler", FLOW_SIGMAS, dict(num_inference_steps=5)),
    # diffusers' UniPC takes custom sigmas as an array only
    ("unipc-flow-sigmas", "UniPCMultistepScheduler", FLOW_SIGMAS, dict(sigmas=np.array([1.0, 0.8, 0.55, 0.3, 0.1]))),
    ("deis-flow", "DEISMultistepScheduler", FLOW_SIGMAS, dict(num_inference_steps=4)),
]
# optimum-intel's own SD3 export makes the graphs our OpenVINO export makes (same exporter) and costs ~75 s here:
# the other direction (optimum's OVStableDiffusion3Pipeline on our folder) is in tests/export/test_flow_export.py
FOLDERS = ("edge-onnx", "edge-openvino", "optimum-onnx")


@pytest.fixture(scope="module", params=FOLDERS)
def sd3_pipe(request, flow_folder):
    return request.param, load_ours(StableDiffusion3Pipeline, flow_folder("sd3", request.param))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_text_to_image_matches_diffusers(case, sd3_pipe, flow_reference):
    how, pipe = sd3_pipe
    _, scheduler, overrides, kwargs = case
    ours, ref = run_both(flow_reference("sd3"), pipe, scheduler, overrides, seed=7, prompt="a photo of a cat",
                         **SIZE, **kwargs)
    assert ours.shape == ref.shape == (1, 32, 32, 3)
    diff = record(f"StableDiffusion3Pipeline {how}", ours, ref)
    assert diff <= BOUND, f"{scheduler} {overrides} {kwargs}: max abs pixel difference {diff:.3g}"
    assert ref.std() > 0.01, "the reference image is flat: the test would prove nothing"


@pytest.fixture(scope="module")
def edge_onnx(flow_folder):
    return load_ours(StableDiffusion3Pipeline, flow_folder("sd3", "edge-onnx"))


def test_batch_prompts_negative_prompts_and_generator_list(edge_onnx, flow_reference):
    """Two prompts x two images, per-encoder prompts and negatives, clip_skip, a generator per image."""
    ours, ref = run_both(
        flow_reference("sd3"), edge_onnx, "FlowMatchEulerDiscreteScheduler", {}, seed=[1, 2, 3, 4],
        prompt=["a red cat", "the dog in the sky"], prompt_2=["blue sky", "a cat"], prompt_3=["naïve café", "x" * 90],
        negative_prompt=["dog", "cat"], negative_prompt_3=["sky", "red"], num_images_per_prompt=2,
        guidance_scale=4.5, num_inference_steps=3, clip_skip=1, max_sequence_length=24, **SIZE)
    assert ours.shape == ref.shape == (4, 32, 32, 3)
    diff = record("StableDiffusion3Pipeline edge-onnx", ours, ref)
    assert diff <= BOUND
    assert np.abs(ref[0] - ref[2]).max() > 10 * BOUND, "the two prompts give the same image"


def test_no_guidance_given_latents_and_latent_output(edge_onnx, flow_reference):
    latents = np.random.default_rng(0).standard_normal((1, 4, 16, 16)).astype(np.float32)
    ours, ref = run_both(flow_reference("sd3"), edge_onnx, "FlowMatchEulerDiscreteScheduler", {}, seed=0,
                         prompt="a dog", guidance_scale=1.0, num_inference_steps=3, latents=latents,
                         output_type="latent", **SIZE)
    assert ours.shape == ref.shape == (1, 4, 16, 16)
    diff = float(np.abs(ours - ref).max())
    assert diff <= BOUND, diff


def test_prompt_embeddings_match_diffusers_encode_prompt(edge_onnx, flow_reference):
    """encode_prompt alone: the [CLIP | T5] sequence and pooled embeddings, a long prompt truncated."""
    ref = flow_reference("sd3")
    prompt, negative = ["the cat " * 60, "a photo of a dog"], ["", "red sky"]
    import torch

    with torch.no_grad():
        expected = ref.encode_prompt(prompt=prompt, prompt_2=None, prompt_3=None, negative_prompt=negative,
                                     num_images_per_prompt=2, max_sequence_length=40)
    got = edge_onnx.encode_prompt(prompt, num_images_per_prompt=2, negative_prompt=negative, max_sequence_length=40)
    for e, g in zip(expected, got):
        assert g.shape == tuple(e.shape)
        assert float(np.abs(g - e.numpy()).max()) <= 1e-5
    # embeddings given instead of prompts: the same image
    ours, ref_images = run_both(ref, edge_onnx, "FlowMatchEulerDiscreteScheduler", {}, seed=3, num_inference_steps=2,
                                prompt_embeds=got[0][:1], negative_prompt_embeds=got[1][:1],
                                pooled_prompt_embeds=got[2][:1], negative_pooled_prompt_embeds=got[3][:1], **SIZE)
    assert float(np.abs(ours - ref_images).max()) <= BOUND


def test_callback_state_matches_diffusers(edge_onnx, flow_reference):
    seen = {"ours": [], "ref": []}

    def keep(key):
        def callback(pipe, i, t, kwargs):
            seen[key].append({k: np.asarray(v) for k, v in kwargs.items()})
            return kwargs
        return callback

    names = ["latents", "prompt_embeds", "pooled_prompt_embeds"]
    ref, ours = flow_reference("sd3"), edge_onnx
    set_schedulers(ref, ours, "FlowMatchEulerDiscreteScheduler", {})
    import torch

    ref("a cat", num_inference_steps=2, generator=torch.Generator().manual_seed(5), output_type="np",
        callback_on_step_end=keep("ref"), callback_on_step_end_tensor_inputs=names, **SIZE)
    ours("a cat", num_inference_steps=2, generator=5, output_type="np", callback_on_step_end=keep("ours"),
         callback_on_step_end_tensor_inputs=names, **SIZE)
    assert len(seen["ours"]) == len(seen["ref"]) == 2
    for a, b in zip(seen["ours"], seen["ref"]):
        for k in names:
            assert a[k].shape == b[k].shape, k
            assert float(np.abs(a[k] - b[k]).max()) <= 1e-4, k


def test_sd3_without_t5_uses_zeros_as_diffusers(flow_folder, flow_reference):
    pipe = load_ours(StableDiffusion3Pipeline, flow_folder("sd3-no-t5", "edge-onnx"))
    assert "text_encoder_3" not in pipe.graphs and "tokenizer_3" not in pipe.tokenizers
    ours, ref = run_both(flow_reference("sd3-no-t5"), pipe, "FlowMatchEulerDiscreteScheduler", {}, seed=2,
                         prompt="a red cat", num_inference_steps=3, max_sequence_length=32, **SIZE)
    diff = record("StableDiffusion3Pipeline edge-onnx (no T5)", ours, ref)
    assert diff <= BOUND


# ---- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheduler, overrides", [
    ("EulerDiscreteScheduler", {}),
    ("DDIMScheduler", {}),
    ("DPMSolverMultistepScheduler", {}),
    ("UniPCMultistepScheduler", {"use_flow_sigmas": True}),  # flow sigmas but an epsilon prediction
])
def test_schedulers_that_cannot_drive_a_flow_model_are_refused(scheduler, overrides, edge_onnx):
    edge_onnx.scheduler = scheduler_class(scheduler).from_config(edge_onnx.base_scheduler_config, **overrides)
    try:
        with pytest.raises(ValueError, match=scheduler):
            edge_onnx("a cat", num_inference_steps=2, **SIZE)
    finally:
        edge_onnx.scheduler = scheduler_class("FlowMatchEulerDiscreteScheduler").from_config(
            edge_onnx.base_scheduler_config)


@pytest.mark.parametrize("kwargs, match", [
    (dict(height=30), "height must be a positive multiple of 4"),
    (dict(width=36 + 2), "width must be a positive multiple of 4"),
    (dict(max_sequence_length=513), r"max_sequence_length must be an integer in \[1, 512\]"),
    (dict(max_sequence_length=0), "max_sequence_length"),
    (dict(skip_guidance_layers=[1]), "skip_layers"),
    (dict(clip_skip=5), "clip_skip"),
    (dict(callback_on_step_end=lambda *a: None, callback_on_step_end_tensor_inputs=["noise_pred"]), "noise_pred"),
    (dict(prompt_3="x", prompt_embeds=np.zeros((1, 333, 64), np.float32)), "prompt_3"),
])
def test_bad_arguments_are_clear_errors(kwargs, match, edge_onnx):
    call = dict(prompt="a cat", num_inference_steps=2, height=32, width=32)
    if "prompt_embeds" in kwargs:
        call.pop("prompt")
    call.update(kwargs)
    with pytest.raises(ValueError, match=match):
        edge_onnx(**call)


def test_folder_with_t5_but_no_tokenizer_3_is_refused(flow_folder, tmp_path):
    import shutil

    from edge_sched.pipelines import PipelineLoadError

    folder = tmp_path / "sd3"
    shutil.copytree(flow_folder("sd3", "edge-onnx"), folder)
    shutil.rmtree(folder / "tokenizer_3")
    with pytest.raises(PipelineLoadError, match="tokenizer_3"):
        StableDiffusion3Pipeline.from_pretrained(folder)
