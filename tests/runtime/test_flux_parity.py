"""FluxPipeline: same prompt, same seed, same image as diffusers' torch pipeline.

Tiny random-weight FLUX pipelines (CLIP + T5, a FLUX transformer with (dev) and without (schnell) the
guidance embedding; tests/export/tiny_flow.py), exported by our export/ (ONNX, OpenVINO) and by
optimum-onnx; max abs pixel difference <= 1e-3 against diffusers on the same weights for the
flow-capable schedulers (FlowMatchEuler with dynamic shift from calculate_shift, without it, custom
sigmas; DPM-Solver++, UniPC and DEIS on flow sigmas with dynamic shifting), true CFG, packed latents."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edge_sched.pipelines import FluxPipeline, PipelineLoadError
from edge_sched.schedulers import scheduler_class

from .flow_folders import FLOW_SIGMAS
from .pipeline_runs import load_ours, record, run_both

BOUND = 1e-3
SIZE = dict(height=32, width=32)
DYNAMIC_FLOW_SIGMAS = {**FLOW_SIGMAS, "use_dynamic_shifting": True}

CASES = [
    ("euler-dynamic-shift", "FlowMatchEulerDiscreteScheduler", {}, dict(num_inference_steps=4)),
    ("euler-static-shift", "FlowMatchEulerDiscreteScheduler", {"use_dynamic_shifting": False}, dict(num_inference_steps=4)),
    ("euler-sigmas", "FlowMatchEulerDiscreteScheduler", {}, dict(sigmas=[1.0, 0.75, 0.5, 0.25])),
    ("euler-true-cfg", "FlowMatchEulerDiscreteScheduler", {},
     dict(num_inference_steps=3, negative_prompt="a dog", true_cfg_scale=3.0)),
    ("dpm++2m-flow", "DPMSolverMultistepScheduler", DYNAMIC_FLOW_SIGMAS, dict(num_inference_steps=5)),
    ("unipc-flow", "UniPCMultistepScheduler", DYNAMIC_FLOW_SIGMAS, dict(num_inference_steps=5)),
    ("deis-flow", "DEISMultistepScheduler", DYNAMIC_FLOW_SIGMAS, dict(num_inference_steps=4)),
]
FOLDERS = ("edge-onnx", "edge-openvino", "optimum-onnx")


@pytest.fixture(scope="module", params=FOLDERS)
def flux_pipe(request, flow_folder):
    return request.param, load_ours(FluxPipeline, flow_folder("flux", request.param))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_text_to_image_matches_diffusers(case, flux_pipe, flow_reference):
    how, pipe = flux_pipe
    _, scheduler, overrides, kwargs = case
    ours, ref = run_both(flow_reference("flux"), pipe, scheduler, overrides, seed=7, prompt="a photo of a cat",
                         guidance_scale=4.0, **SIZE, **kwargs)
    assert ours.shape == ref.shape == (1, 32, 32, 3)
    diff = record(f"FluxPipeline {how}", ours, ref)
    assert diff <= BOUND, f"{scheduler} {overrides} {kwargs}: max abs pixel difference {diff:.3g}"
    assert ref.std() > 0.01, "the reference image is flat: the test would prove nothing"


@pytest.fixture(scope="module")
def edge_onnx(flow_folder):
    return load_ours(FluxPipeline, flow_folder("flux", "edge-onnx"))


def test_embedded_guidance_changes_the_image_as_in_diffusers(edge_onnx, flow_reference):
    images = {}
    for scale in (1.0, 6.0):
        ours, ref = run_both(flow_reference("flux"), edge_onnx, "FlowMatchEulerDiscreteScheduler", {}, seed=4,
                             prompt="red sky", guidance_scale=scale, num_inference_steps=3, **SIZE)
        assert record("FluxPipeline edge-onnx", ours, ref) <= BOUND
        images[scale] = ref
    assert np.abs(images[1.0] - images[6.0]).max() > 10 * BOUND


def test_batch_prompt_2_generators_and_truncation(edge_onnx, flow_reference):
    ours, ref = run_both(
        flow_reference("flux"), edge_onnx, "FlowMatchEulerDiscreteScheduler", {}, seed=[1, 2, 3, 4],
        prompt=["a red cat", "the dog " * 50], prompt_2=["naïve café, 日本", "blue sky"], num_images_per_prompt=2,
        num_inference_steps=3, max_sequence_length=20, **SIZE)
    assert ours.shape == ref.shape == (4, 32, 32, 3)
    assert record("FluxPipeline edge-onnx", ours, ref) <= BOUND


def test_given_packed_latents_and_latent_output(edge_onnx, flow_reference):
    latents = np.random.default_rng(0).standard_normal((1, 64, 16)).astype(np.float32)
    ours, ref = run_both(flow_reference("flux"), edge_onnx, "FlowMatchEulerDiscreteScheduler", {}, seed=0,
                         prompt="a dog", num_inference_steps=3, latents=latents, output_type="latent", **SIZE)
    assert ours.shape == tuple(ref.shape) == (1, 64, 16)
    assert float(np.abs(ours - ref).max()) <= BOUND


def test_prompt_embeddings_match_diffusers(edge_onnx, flow_reference):
    import torch

    ref = flow_reference("flux")
    prompts = ["the cat " * 60, ""]
    with torch.no_grad():
        expected = ref.encode_prompt(prompt=prompts, prompt_2=None, num_images_per_prompt=2, max_sequence_length=48)
    got = edge_onnx.encode_prompt(prompts, num_images_per_prompt=2, max_sequence_length=48)
    for e, g in zip(expected, got):
        assert g.shape == tuple(e.shape)
        assert float(np.abs(g - e.numpy()).max()) <= 1e-5


def test_schnell_without_guidance_embedding(flow_folder, flow_reference):
    pipe = load_ours(FluxPipeline, flow_folder("flux-schnell", "edge-onnx"))
    assert not pipe.guidance_embeds and "guidance" not in pipe.graph("transformer").inputs
    for scheduler, overrides in (("FlowMatchEulerDiscreteScheduler", {}), ("UniPCMultistepScheduler", DYNAMIC_FLOW_SIGMAS)):
        ours, ref = run_both(flow_reference("flux-schnell"), pipe, scheduler, overrides, seed=11, prompt="a cat",
                             num_inference_steps=2, **SIZE)
        assert record("FluxPipeline edge-onnx (schnell)", ours, ref) <= BOUND


def test_pack_and_unpack_are_diffusers(flow_reference):
    import torch

    from edge_sched.pipelines.flux import latent_image_ids, pack_latents, unpack_latents

    ref = flow_reference("flux")
    x = np.random.default_rng(1).standard_normal((2, 4, 6, 8)).astype(np.float32)
    packed = ref._pack_latents(torch.from_numpy(x), 2, 4, 6, 8).numpy()
    np.testing.assert_array_equal(pack_latents(x), packed)
    np.testing.assert_array_equal(unpack_latents(packed, 6, 8), x)
    np.testing.assert_array_equal(latent_image_ids(3, 4), ref._prepare_latent_image_ids(1, 3, 4, "cpu", torch.float32))


# ---- errors ---------------------------------------------------------------------------------------

def test_heun_takes_no_custom_sigmas_as_in_diffusers(edge_onnx):
    """diffusers' FluxPipeline always passes sigmas; FlowMatchHeun takes none: the same refusal, said clearly."""
    edge_onnx.scheduler = scheduler_class("FlowMatchHeunDiscreteScheduler").from_config(edge_onnx.base_scheduler_config)
    try:
        with pytest.raises(ValueError, match="FlowMatchHeunDiscreteScheduler does not accept custom sigmas"):
            edge_onnx("a cat", num_inference_steps=2, **SIZE)
    finally:
        edge_onnx.scheduler = scheduler_class("FlowMatchEulerDiscreteScheduler").from_config(
            edge_onnx.base_scheduler_config)


@pytest.mark.parametrize("scheduler, overrides, match", [
    ("EulerDiscreteScheduler", {}, "EulerDiscreteScheduler cannot drive FluxPipeline"),
    ("DPMSolverMultistepScheduler", {"use_flow_sigmas": True}, "prediction_type='flow_prediction'"),
])
def test_schedulers_that_cannot_drive_a_flow_model_are_refused(scheduler, overrides, match, edge_onnx):
    edge_onnx.scheduler = scheduler_class(scheduler).from_config(edge_onnx.base_scheduler_config, **overrides)
    try:
        with pytest.raises(ValueError, match=match):
            edge_onnx("a cat", num_inference_steps=2, **SIZE)
    finally:
        edge_onnx.scheduler = scheduler_class("FlowMatchEulerDiscreteScheduler").from_config(
            edge_onnx.base_scheduler_config)


@pytest.mark.parametrize("kwargs, match", [
    (dict(height=34), "height must be a positive multiple of 4"),
    (dict(width=-8), "width must be a positive multiple of 4"),
    (dict(max_sequence_length=513), r"max_sequence_length must be an integer in \[1, 512\]"),
    (dict(latents=np.zeros((1, 4, 16, 16), np.float32)), r"latents must be packed, of shape \(1, 64, 16\)"),
    (dict(negative_prompt=["a", "b"], true_cfg_scale=2.0), "one negative prompt per prompt"),
])
def test_bad_arguments_are_clear_errors(kwargs, match, edge_onnx):
    call = dict(prompt="a cat", num_inference_steps=2, height=32, width=32)
    call.update(kwargs)
    with pytest.raises(ValueError, match=match):
        edge_onnx(**call)


def test_folder_without_t5_is_refused(flow_folder, tmp_path):
    folder = tmp_path / "flux"
    shutil.copytree(flow_folder("flux", "edge-onnx"), folder)
    shutil.rmtree(folder / "text_encoder_2")
    with pytest.raises(PipelineLoadError, match="text_encoder_2"):
        FluxPipeline.from_pretrained(folder)
