"""``guidance_interval=(sigma_low, sigma_high)``: classifier-free guidance only where sigma_low < sigma <=
sigma_high, one conditional UNet call on the other steps. An interval holding every step gives exactly the
guided image, an empty one exactly the unguided image; in between, the UNet runs doubled only inside."""

from __future__ import annotations

import numpy as np
import pytest

from edge_sched.pipelines import DiffusionPipeline, StableDiffusionPipeline
from edge_sched.pipelines.loop import noise_level
from edge_sched.schedulers import DDIMScheduler, EulerDiscreteScheduler


@pytest.fixture(scope="module")
def sd(sd_folders):
    pipe = StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def digits():
    pipe = DiffusionPipeline.from_pretrained("digits")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def unet_batches(pipe, monkeypatch) -> list[int]:
    """The batch of every UNet evaluation the loop makes."""
    seen, real = [], type(pipe).run_batched

    def spy(component, feeds_for, n, batch_input, max_batch=None):
        if component.name == "unet":
            seen.append(n)
        return real(component, feeds_for, n, batch_input, max_batch)

    monkeypatch.setattr(pipe, "run_batched", spy)
    return seen


@pytest.mark.parametrize("scheduler", [EulerDiscreteScheduler, DDIMScheduler])
def test_sd_interval_bounds(sd, scheduler, monkeypatch):
    sd.scheduler = scheduler.from_config(sd.scheduler.config)
    run = dict(prompt=["a cat", "a dog"], negative_prompt=["blurry", "dark"], num_inference_steps=5, output_type="np")
    guided = sd(generator=3, guidance_scale=7.5, **run).images
    every = sd(generator=3, guidance_scale=7.5, guidance_interval=(0.0, float("inf")), **run).images
    np.testing.assert_array_equal(every, guided)
    unguided = sd(generator=3, guidance_scale=1.0, **run).images
    batches = unet_batches(sd, monkeypatch)
    empty = sd(generator=3, guidance_scale=7.5, guidance_interval=(0.0, 0.0), **run).images
    np.testing.assert_array_equal(empty, unguided)
    assert batches == [2] * 5  # never doubled
    assert np.abs(guided - unguided).max() > 1e-3  # guidance matters on this model: the test can tell


def test_partial_interval_doubles_only_inside(sd, monkeypatch):
    sd.scheduler = EulerDiscreteScheduler.from_config(sd.scheduler.config)
    sd.scheduler.set_timesteps(6)
    sigmas = sd.scheduler.sigmas[:-1]
    low, high = float(sigmas[4]), float(sigmas[1])  # steps 1, 2, 3 (sigma_low < sigma <= sigma_high)
    inside = [low < s <= high for s in sigmas]
    batches = unet_batches(sd, monkeypatch)
    sd("a cat", generator=1, num_inference_steps=6, guidance_scale=5.0, guidance_interval=(low, high),
       output_type="latent")
    assert batches == [2 if i else 1 for i in inside]
    assert sum(inside) == 3


def test_class_conditional_interval(digits, monkeypatch):
    """The digits model guides against its null class: same rules on a pixel-space, VP (DDPM) schedule."""
    kwargs = dict(prompt="3 7", num_inference_steps=8, guidance_scale=3.0, output_type="np")
    full = digits(generator=0, **kwargs).images
    np.testing.assert_array_equal(digits(generator=0, guidance_interval=(0, float("inf")), **kwargs).images, full)
    unguided = digits(generator=0, **{**kwargs, "guidance_scale": 1.0}).images
    np.testing.assert_array_equal(digits(generator=0, guidance_interval=(0, 0), **kwargs).images, unguided)
    batches = unet_batches(digits, monkeypatch)
    digits(generator=0, guidance_interval=(1.0, 20.0), **kwargs)
    assert set(batches) == {2, 4} and 0 < batches.count(4) < 8


def test_noise_level_in_the_schedulers_terms():
    euler = EulerDiscreteScheduler()
    euler.set_timesteps(4)
    euler.scale_model_input(np.zeros((1, 4, 2, 2), np.float32), euler.timesteps[0])
    assert noise_level(euler, euler.timesteps[0]) == pytest.approx(float(euler.sigmas[0]))
    ddim = DDIMScheduler()
    ddim.set_timesteps(4)
    t = int(ddim.timesteps[1])
    alpha = float(ddim.alphas_cumprod[t])
    assert noise_level(ddim, t) == pytest.approx(np.sqrt((1 - alpha) / alpha))


@pytest.mark.parametrize("bad", [(5.0, 1.0), ("low", 2.0), (float("nan"), 1.0), (-1.0, 2.0), 3.0])
def test_bad_interval_is_a_clear_error(sd, bad):
    with pytest.raises(ValueError, match="guidance_interval"):
        sd("a cat", num_inference_steps=2, guidance_interval=bad, output_type="latent")
