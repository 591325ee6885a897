"""The one denoising loop's contracts, held for every pipeline against diffusers' own pipelines:
callback tensor names are checked before the first step, the callback state is what diffusers passes,
diffusers' own CFG-cutoff callbacks (which switch guidance off mid-run) work on our pipelines unchanged,
``pipe._interrupt`` skips the remaining steps, and the progress bar is tqdm's."""

from __future__ import annotations

import io

import numpy as np
import pytest

from edge_sched.pipelines import (
    DDIMPipeline, DDPMPipeline, LatentConsistencyModelPipeline, StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline,
)

from .pipeline_runs import load_ours, load_reference, record, run_both, sample_image, set_schedulers, torch_generators

BOUND = 1e-3  # max abs pixel difference, images in [0, 1] (the runtime parity bound)


def _image_args():
    return {"image": sample_image(32), "mask_image": sample_image(32, seed=4).convert("L")}


# (pipeline class, folder kind, call arguments)
PIPELINES = [
    (StableDiffusionPipeline, "sd", {"prompt": "a cat"}),
    (StableDiffusionImg2ImgPipeline, "sd", {"prompt": "a cat", "image": "image"}),
    (StableDiffusionInpaintPipeline, "inpaint", {"prompt": "a cat", "image": "image", "mask_image": "mask"}),
    (StableDiffusionXLPipeline, "sdxl", {"prompt": "a cat"}),
    (LatentConsistencyModelPipeline, "lcm", {"prompt": "a cat"}),
    (DDPMPipeline, "ddpm", {"batch_size": 1}),
    (DDIMPipeline, "ddpm", {"batch_size": 1}),
]


@pytest.mark.parametrize("cls,kind,call", PIPELINES, ids=[p[0].__name__ for p in PIPELINES])
def test_unknown_callback_tensor_is_an_error_before_the_first_step(cls, kind, call, pipeline_folder):
    pipe = load_ours(cls, pipeline_folder(kind, "edge-onnx"))
    images = _image_args()
    call = {k: images["image"] if v == "image" else images["mask_image"] if v == "mask" else v for k, v in call.items()}

    def no_step(*a, **k):
        raise AssertionError("the scheduler stepped before the callback names were checked")

    pipe.scheduler.step = no_step
    with pytest.raises(ValueError, match=r"callback_on_step_end_tensor_inputs \['noise_pred'\].*allowed: latents"):
        pipe(**call, num_inference_steps=2, callback_on_step_end=lambda *a: {},
             callback_on_step_end_tensor_inputs=["latents", "noise_pred"])
    # every name the class declares is one the loop can hand over
    seen = {}

    def record(p, i, t, tensors):
        seen.update(tensors)
        return {}

    del pipe.scheduler.step
    pipe(**call, num_inference_steps=2, output_type="latent", callback_on_step_end=record,
         callback_on_step_end_tensor_inputs=list(cls._callback_tensor_inputs))
    assert sorted(seen) == sorted(cls._callback_tensor_inputs)


@pytest.fixture(scope="module")
def sd_pair(pipeline_folder):
    from diffusers import StableDiffusionPipeline as TorchSD

    pipe = load_ours(StableDiffusionPipeline, pipeline_folder("sd", "edge-onnx"))
    reference = load_reference(TorchSD, pipeline_folder("sd", "source"), safety_checker=None)
    set_schedulers(reference, pipe, "EulerDiscreteScheduler", {})  # one model call per step
    return pipe, reference


def _collect(names):
    steps = []

    def callback(p, i, t, tensors):
        steps.append({k: (None if v is None else np.array(v, dtype=np.float32, copy=True)) for k, v in tensors.items()})
        return {}

    return steps, callback


def test_callback_state_is_diffusers(sd_pair):
    """SD with guidance: ``prompt_embeds`` is [negative, positive] (diffusers' concatenation), the latents
    after each step, and the negative embeddings, as diffusers' callback receives them."""
    pipe, reference = sd_pair
    names = ["latents", "prompt_embeds", "negative_prompt_embeds"]
    ours, ours_cb = _collect(names)
    ref, ref_cb = _collect(names)
    kwargs = dict(prompt=["a cat", "a dog"], negative_prompt=["blurry", "dark"], num_inference_steps=3,
                  output_type="latent", callback_on_step_end_tensor_inputs=names)
    pipe(generator=[1, 2], callback_on_step_end=ours_cb, **kwargs)
    reference(generator=torch_generators([1, 2]), callback_on_step_end=ref_cb, **kwargs)
    assert len(ours) == len(ref) == 3
    for a, b in zip(ours, ref):
        assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
        assert a["prompt_embeds"].shape[0] == 4  # [negative x2, positive x2]
        for k in names:  # graphs are validated at 1e-3 relative against torch by the export
            np.testing.assert_allclose(a[k], b[k], rtol=1e-3, atol=1e-4 * np.abs(b[k]).max())


def test_diffusers_cfg_cutoff_callback_runs_unchanged(sd_pair):
    """diffusers' SDCFGCutoffCallback (keeps the conditional half of prompt_embeds, sets
    ``pipe._guidance_scale = 0``) given to both pipelines: same image, and not the fully guided one."""
    from diffusers.callbacks import SDCFGCutoffCallback

    pipe, reference = sd_pair
    kwargs = dict(prompt="a cat", num_inference_steps=4, guidance_scale=12.0)
    cut = SDCFGCutoffCallback(cutoff_step_ratio=0.25)
    ours, ref = run_both(reference, pipe, "EulerDiscreteScheduler", {}, 3, callback_on_step_end=cut, **kwargs)
    diff = record("StableDiffusionPipeline edge-onnx CFG cutoff", ours, ref)
    assert diff <= BOUND
    # the cutoff moved diffusers' image far more than we are from it (on this tiny random model the text
    # conditioning moves pixels by a few 1e-3 only)
    full = np.asarray(reference(generator=torch_generators(3), output_type="np", **kwargs).images)
    assert np.abs(full - ref).max() > 20 * diff
    assert pipe.guidance_scale == 0.0 and not pipe.do_classifier_free_guidance


def test_sdxl_cfg_cutoff_callback(pipeline_folder, reference_pipeline):
    from diffusers.callbacks import SDXLCFGCutoffCallback

    pipe = load_ours(StableDiffusionXLPipeline, pipeline_folder("sdxl", "edge-onnx"))
    reference = reference_pipeline("StableDiffusionXLPipeline", "sdxl")
    ours, ref = run_both(reference, pipe, "EulerDiscreteScheduler", {}, 4, prompt="a cat", num_inference_steps=4,
                         guidance_scale=5.0,
                         callback_on_step_end=SDXLCFGCutoffCallback(cutoff_step_ratio=None, cutoff_step_index=2))
    assert record("StableDiffusionXLPipeline edge-onnx CFG cutoff", ours, ref) <= BOUND


def test_interrupt_skips_the_remaining_steps(sd_pair):
    pipe, reference = sd_pair
    calls = []

    def stop_after_two(p, i, t, tensors):
        calls.append(i)
        if i == 1:
            p._interrupt = True
        return {}

    kwargs = dict(prompt="a cat", num_inference_steps=5, callback_on_step_end=stop_after_two)
    ours, ref = run_both(reference, pipe, "EulerDiscreteScheduler", {}, 2, **kwargs)
    assert calls == [0, 1, 0, 1]  # diffusers', then ours
    assert record("StableDiffusionPipeline edge-onnx interrupted", ours, ref) <= BOUND
    calls.clear()
    pipe(prompt="a cat", num_inference_steps=3, output_type="latent",
         callback_on_step_end=lambda p, i, t, k: calls.append(i))
    assert calls == [0, 1, 2]  # the flag is reset by the next call


def test_callback_returning_an_unknown_tensor_is_an_error(sd_pair):
    pipe, _ = sd_pair
    with pytest.raises(ValueError, match="unknown tensors \\['noise_pred'\\]"):
        pipe("a cat", num_inference_steps=2, output_type="latent",
             callback_on_step_end=lambda p, i, t, k: {"noise_pred": np.zeros(1)})


def test_progress_bar_is_tqdm_with_diffusers_config(sd_pair):
    pipe, _ = sd_pair
    out = io.StringIO()
    pipe.set_progress_bar_config(disable=False, file=out, desc="denoising")
    try:
        pipe("a cat", num_inference_steps=3, output_type="latent")
    finally:
        pipe.set_progress_bar_config(disable=True, file=None, desc=None)
    assert "denoising" in out.getvalue() and "3/3" in out.getvalue()
