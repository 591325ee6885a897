"""LatentConsistencyModelPipeline: same prompt, same seed, same image as diffusers' torch pipeline.

A tiny LCM (UNet with a guidance embedding of ``time_cond_proj_dim`` -> the graph's ``timestep_cond``
input) exported by our export/ (ONNX, OpenVINO) and by optimum's ONNX exporter. Bound (issue 5):
max abs pixel difference at most 1e-3, images in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_sched.pipelines.guidance import guidance_scale_embedding
from edge_sched.pipelines.lcm import LatentConsistencyModelPipeline
from edge_sched.runtime import EngineError

from .conftest import IMAGE_PARITY
from .conftest_pipelines import (  # noqa: F401 (pipeline_folder is a fixture)
    load_ours, load_reference, pipeline_folder, rename_graph_input, set_schedulers, torch_generators,
)

BOUND = 1e-3

# LCMScheduler is stochastic (fresh noise between steps, from the generator)
CASES = [
    ("lcm-4", "LCMScheduler", {}, dict(num_inference_steps=4)),
    ("lcm-original-20", "LCMScheduler", {}, dict(num_inference_steps=3, original_inference_steps=20, guidance_scale=3.0)),
    ("lcm-timesteps", "LCMScheduler", {}, dict(timesteps=[899, 599, 299, 99])),
    ("lcm-vpred-zero-snr", "LCMScheduler", {"rescale_betas_zero_snr": True, "prediction_type": "v_prediction"},
     dict(num_inference_steps=2, guidance_scale=1.5)),
]
FOLDERS = ("edge-onnx", "edge-openvino", "optimum-onnx")


@pytest.fixture(scope="module")
def reference(pipeline_folder):
    from diffusers import LatentConsistencyModelPipeline as TorchLCM

    return load_reference(TorchLCM, pipeline_folder("lcm", "source"), safety_checker=None)


@pytest.fixture(scope="module", params=FOLDERS)
def folder_pipe(request, pipeline_folder):
    return request.param, load_ours(LatentConsistencyModelPipeline, pipeline_folder("lcm", request.param))


def run_both(reference, pipe, scheduler, overrides, seed, prompt="a cat and a dog", **kwargs):
    set_schedulers(reference, pipe, scheduler, overrides)
    ref = reference(prompt, generator=torch_generators(seed), output_type="np", **kwargs).images
    ours = pipe(prompt, generator=seed, output_type="np", **kwargs).images
    return np.asarray(ours), np.asarray(ref)


def record(kind, ours, ref):
    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY[f"LatentConsistencyModelPipeline {kind}"].append(diff)
    return diff


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_lcm_matches_diffusers(case, folder_pipe, reference):
    kind, pipe = folder_pipe
    _, scheduler, overrides, kwargs = case
    ours, ref = run_both(reference, pipe, scheduler, overrides, seed=7, **kwargs)
    assert ours.shape == ref.shape == (1, 32, 32, 3)
    diff = record(kind, ours, ref)
    assert diff <= BOUND, f"{scheduler} {overrides} {kwargs}: max abs pixel difference {diff:.3g}"
    assert ref.std() > 0.01, "the reference image is flat: the test would prove nothing"


@pytest.mark.parametrize("kind", ["edge-onnx", "edge-openvino"])
def test_batch_with_generator_list(kind, pipeline_folder, reference):
    """Two prompts x two images each, one generator per image (each image's noise from its own stream)."""
    pipe = load_ours(LatentConsistencyModelPipeline, pipeline_folder("lcm", kind))
    ours, ref = run_both(reference, pipe, "LCMScheduler", {}, seed=[1, 2, 3, 4], prompt=["a cat", "the dog"],
                         num_images_per_prompt=2, num_inference_steps=3, guidance_scale=6.0)
    assert ours.shape == ref.shape == (4, 32, 32, 3)
    assert record(kind, ours, ref) <= BOUND
    # distinct generators give distinct images
    assert np.abs(ours[0] - ours[1]).max() > 0.01


def test_tcd_scheduler_in_the_lcm_loop(pipeline_folder, reference):
    """TCDScheduler (stochastic, gamma = eta = 0.3). diffusers' LCM pipeline hands step() eta=None, which
    TCD rejects; ours leaves TCD its default eta. The reference is diffusers' loop with that one
    argument left out, i.e. TCD's default too."""
    pipe = load_ours(LatentConsistencyModelPipeline, pipeline_folder("lcm", "edge-onnx"))
    original = reference.prepare_extra_step_kwargs
    reference.prepare_extra_step_kwargs = lambda generator, eta: {"generator": generator}
    try:
        ours, ref = run_both(reference, pipe, "TCDScheduler", {}, seed=11, num_inference_steps=4)
    finally:
        reference.prepare_extra_step_kwargs = original
    assert record("edge-onnx", ours, ref) <= BOUND


def test_latents_and_callback(pipeline_folder, reference):
    """Given latents; a callback that reads ``denoised`` and rescales the latents after the first step."""
    pipe = load_ours(LatentConsistencyModelPipeline, pipeline_folder("lcm", "edge-onnx"))
    latents = np.random.default_rng(0).standard_normal((1, 4, 16, 16)).astype(np.float32)
    set_schedulers(reference, pipe, "LCMScheduler", {})
    seen = []

    def callback(p, i, t, tensors):
        seen.append((i, int(t), float(np.asarray(tensors["denoised"]).std())))
        return {"latents": tensors["latents"] * 0.9} if i == 0 else {}

    ref = reference("a dog", num_inference_steps=3, latents=torch.from_numpy(latents), output_type="np",
                    generator=torch.Generator().manual_seed(5), callback_on_step_end=callback,
                    callback_on_step_end_tensor_inputs=["latents", "denoised"]).images
    ref_seen, seen[:] = list(seen), []
    ours = pipe("a dog", num_inference_steps=3, latents=latents, output_type="np", generator=5,
                callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents", "denoised"]).images
    assert [s[:2] for s in seen] == [s[:2] for s in ref_seen]
    assert record("edge-onnx", ours, ref) <= BOUND


def test_guidance_embedding_matches_diffusers(reference, monkeypatch):
    """The embedding is ill-conditioned in its frequencies (angle = 1000 w f): torch's float32 exp misses the
    correctly rounded value by an ulp on a few of 128 frequencies, which moves sin / cos by up to 1000 w ulp(f)
    (plus the angle's rounding).
    So: exact (to float32 rounding) against diffusers run with a correctly rounded exp, and against stock
    diffusers within that one-ulp amplification, element by element."""
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


def test_output_types(pipeline_folder):
    pipe = load_ours(LatentConsistencyModelPipeline, pipeline_folder("lcm", "edge-onnx"))
    latent = pipe("a cat", num_inference_steps=2, generator=0, output_type="latent").images
    assert latent.shape == (1, 4, 16, 16)
    pil = pipe("a cat", num_inference_steps=2, generator=0).images
    assert pil[0].size == (32, 32)


def test_bad_input(pipeline_folder, tmp_path):
    import shutil

    folder = pipeline_folder("lcm", "edge-onnx")
    pipe = load_ours(LatentConsistencyModelPipeline, folder)
    with pytest.raises(ValueError, match="height must be a positive multiple of 8"):
        pipe("a cat", height=36)
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        pipe("a cat", callback_on_step_end=lambda *a: {}, callback_on_step_end_tensor_inputs=["noise_pred"])
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe("a cat", num_inference_steps=80)
    from edge_sched.schedulers import scheduler_class

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
