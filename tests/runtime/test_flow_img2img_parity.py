"""Image-to-image of the flow pipelines (StableDiffusion3Img2ImgPipeline, FluxImg2ImgPipeline) against diffusers:
the init image encoded (a sample of the VAE encoder's Gaussian), moved along the flow with scale_noise to
the strength's first timestep, denoised; max abs pixel difference <= 1e-3 on our ONNX and OpenVINO exports.
diffusers' flow img2img pipelines noise with ``scale_noise`` (FlowMatch schedulers only) and FLUX's always
passes sigmas (FlowMatchEuler only): the cases are those diffusers runs; the others are clear errors here."""

from __future__ import annotations

import numpy as np
import pytest

from edge_sched.pipelines import FluxImg2ImgPipeline, StableDiffusion3Img2ImgPipeline
from edge_sched.schedulers import scheduler_class

from .flow_folders import FLOW_SIGMAS
from .pipeline_runs import load_ours, record, run_both, sample_image

BOUND = 1e-3
SIZE = dict(height=32, width=32)


_REFERENCES = {}


@pytest.fixture(scope="module")
def references(flow_folder):
    import diffusers

    def get(kind):
        if kind not in _REFERENCES:
            cls = {"sd3": diffusers.StableDiffusion3Img2ImgPipeline, "flux": diffusers.FluxImg2ImgPipeline}[kind]
            pipe = cls.from_pretrained(flow_folder(kind, "source"))
            pipe.set_progress_bar_config(disable=True)
            pipe.base_scheduler_config = pipe.scheduler.config
            _REFERENCES[kind] = pipe
        return _REFERENCES[kind]

    return get


CLASSES = {"sd3": StableDiffusion3Img2ImgPipeline, "flux": FluxImg2ImgPipeline}
EULER, HEUN = "FlowMatchEulerDiscreteScheduler", "FlowMatchHeunDiscreteScheduler"
CASES = [
    ("sd3", "euler", EULER, {}, dict(num_inference_steps=5, strength=0.6)),
    ("sd3", "euler-dynamic-shift", EULER, {"use_dynamic_shifting": True}, dict(num_inference_steps=4, strength=0.9)),
    ("sd3", "heun", HEUN, {}, dict(num_inference_steps=4, strength=0.7)),
    ("sd3", "euler-sigmas", EULER, {}, dict(sigmas=[1.0, 0.8, 0.5, 0.2], strength=0.5)),
    ("sd3", "euler-karras-full-strength", EULER, {"use_karras_sigmas": True}, dict(num_inference_steps=4, strength=1.0)),
    ("flux", "euler-dynamic-shift", EULER, {}, dict(num_inference_steps=5, strength=0.6)),
    ("flux", "euler-static-shift", EULER, {"use_dynamic_shifting": False}, dict(num_inference_steps=4, strength=0.8)),
    ("flux", "euler-sigmas", EULER, {}, dict(sigmas=[1.0, 0.8, 0.5, 0.2], strength=0.5)),
    ("flux", "euler-exponential-true-cfg", EULER, {"use_exponential_sigmas": True},
     dict(num_inference_steps=4, strength=0.75, negative_prompt="a dog", true_cfg_scale=2.5)),
]


@pytest.fixture(scope="module", params=["edge-onnx", "edge-openvino"])
def how(request):
    return request.param


_OURS = {}


def ours_for(kind, how, flow_folder):
    if (kind, how) not in _OURS:
        _OURS[kind, how] = load_ours(CLASSES[kind], flow_folder(kind, how))
    return _OURS[kind, how]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_image_to_image_matches_diffusers(case, how, flow_folder, references):
    kind, _, scheduler, overrides, kwargs = case
    pipe = ours_for(kind, how, flow_folder)
    ours, ref = run_both(references(kind), pipe, scheduler, overrides, seed=5, prompt="a photo of a cat",
                         image=sample_image(), **SIZE, **kwargs)
    assert ours.shape == ref.shape == (1, 32, 32, 3)
    diff = record(f"{CLASSES[kind].__name__} {how}", ours, ref)
    assert diff <= BOUND, f"{scheduler} {overrides} {kwargs}: max abs pixel difference {diff:.3g}"
    assert ref.std() > 0.01


@pytest.mark.parametrize("kind", ["sd3", "flux"])
def test_batch_with_one_generator_per_image(kind, flow_folder, references):
    """Two prompts x two images from four init images, one generator each (image i encoded with generator i)."""
    pipe = ours_for(kind, "edge-onnx", flow_folder)
    images = [sample_image(seed=seed) for seed in range(4)]
    ours, ref = run_both(references(kind), pipe, EULER, {}, seed=[1, 2, 3, 4], prompt=["a cat", "a red dog"],
                         num_images_per_prompt=2, image=images, num_inference_steps=3, strength=0.8, **SIZE)
    assert ours.shape == ref.shape == (4, 32, 32, 3)
    assert record(f"{CLASSES[kind].__name__} edge-onnx", ours, ref) <= BOUND


@pytest.mark.parametrize("kind", ["sd3", "flux"])
def test_strength_changes_the_image(kind, flow_folder, references):
    pipe = ours_for(kind, "edge-onnx", flow_folder)
    out = {}
    for strength in (0.3, 0.9):
        ours, ref = run_both(references(kind), pipe, EULER, {}, seed=2, prompt="blue sky", image=sample_image(),
                             num_inference_steps=4, strength=strength, **SIZE)
        assert record(f"{CLASSES[kind].__name__} edge-onnx", ours, ref) <= BOUND
        out[strength] = ours
    assert np.abs(out[0.3] - out[0.9]).max() > 10 * BOUND


@pytest.mark.parametrize("kind", ["sd3", "flux"])
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(strength=1.5), ValueError, r"strength must be in \[0, 1\]"),
    (dict(strength=0.0, num_inference_steps=4), ValueError, "leaves no step to run"),
    (dict(image=None), ValueError, "needs an init image"),
])
def test_bad_arguments_are_clear_errors(kind, kwargs, error, match, flow_folder):
    pipe = ours_for(kind, "edge-onnx", flow_folder)
    pipe.scheduler = scheduler_class(EULER).from_config(pipe.base_scheduler_config)
    call = dict(prompt="a cat", image=sample_image(), num_inference_steps=3, **SIZE)
    call.update(kwargs)
    with pytest.raises(error, match=match):
        pipe(**call)


def test_flow_sigma_solvers_have_no_scale_noise(flow_folder):
    """diffusers' SD3 img2img needs scheduler.scale_noise, which the multistep solvers lack: a clear error here."""
    pipe = ours_for("sd3", "edge-onnx", flow_folder)
    pipe.scheduler = scheduler_class("UniPCMultistepScheduler").from_config(pipe.base_scheduler_config, **FLOW_SIGMAS)
    try:
        with pytest.raises(ValueError, match="UniPCMultistepScheduler has no scale_noise"):
            pipe("a cat", image=sample_image(), num_inference_steps=3, **SIZE)
    finally:
        pipe.scheduler = scheduler_class(EULER).from_config(pipe.base_scheduler_config)
