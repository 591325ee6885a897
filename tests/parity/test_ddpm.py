"""DDPMScheduler: numpy vs diffusers over its config grid, learned variances, custom timesteps."""

import itertools

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.ddpm  # noqa: F401  registers DDPMScheduler
from edge_sched import AysSchedules
from edge_sched.random import TorchGenerator
from edge_sched.schedulers.ddpm import DDPMScheduler

from .harness import (
    RTOL, check_parity, initial_sample, max_step_error, model_fn, record, run_ours, run_reference, self_drift,
)

NAME = "DDPMScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
STEPS = (1, 2, 3, 10, 25, 50)

GRID = [
    dict(SD, prediction_type=p, timestep_spacing=s, clip_sample=p != "v_prediction")
    for p, s in itertools.product(("epsilon", "v_prediction", "sample"), ("linspace", "leading", "trailing"))
]
EXTRA = [
    dict(SD, variance_type="fixed_small_log"),
    dict(SD, variance_type="fixed_large", timestep_spacing="trailing"),
    dict(SD, clip_sample=True, clip_sample_range=0.5),
    dict(SD, thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=2.5),
    dict(SD, thresholding=True, prediction_type="v_prediction", timestep_spacing="trailing"),
    dict(SD, steps_offset=1),
    dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="v_prediction",
         clip_sample=False),
    dict(beta_schedule="squaredcos_cap_v2", clip_sample=False),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100),
]
# Betas up to 0.02 leave sqrt(abar_t) ~ 0.006 at the top timesteps, so x0 = (x - sqrt(1 - abar) eps)
# / sqrt(abar) multiplies a one-ulp difference in x by ~150: test_chaotic_configs_amplify_one_ulp
# measures diffusers' own drift on these loops, and they are held to 10x that drift.
CHAOTIC = [
    dict(),  # diffusers' defaults: linear betas 1e-4..0.02, clip_sample=True, leading
    dict(beta_schedule="sigmoid", beta_start=0.0001, beta_end=0.02),
]


def _ids(c):
    return ",".join(f"{k}={v}" for k, v in c.items())[:80] or "defaults"


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID + EXTRA, ids=_ids)
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", CHAOTIC, ids=_ids)
def test_grid_ill_conditioned(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps}, chaotic=True)


@pytest.mark.parametrize("config", CHAOTIC, ids=_ids)
def test_chaotic_configs_amplify_one_ulp(config):
    drift = self_drift(run_reference, NAME, config, {"num_inference_steps": 50})
    assert drift > RTOL, f"{config}: diffusers' one-ulp drift {drift:.3g} is below RTOL; drop chaotic=True"


@pytest.mark.parametrize(
    "timesteps",
    [[999, 800, 500, 250, 60, 3], [700, 10], [0], AysSchedules["StableDiffusionTimesteps"],
     AysSchedules["StableDiffusionXLTimesteps"]],
    ids=str,
)
def test_custom_timesteps(timesteps):
    check_parity(NAME, SD, {"timesteps": timesteps})
    check_parity(NAME, dict(SD, prediction_type="v_prediction", variance_type="fixed_small_log"),
                 {"timesteps": timesteps})


# --- learned variances: the model returns [eps, variance output] along the channels ----------

def learned_model(x, t):
    eps = model_fn(x, t)
    return np.concatenate([eps, (0.01 + 0.02 / (1 + np.exp(-x))).astype(np.float32)], axis=1)  # a variance > 0


def learned_range_model(x, t):
    eps = model_fn(x, t)
    return np.concatenate([eps, np.tanh(1.5 * x - 0.2).astype(np.float32)], axis=1)  # v in [-1, 1]


def check_with_model(config, set_kwargs, model, seed=0):
    """check_parity for a custom model function; NaN must appear at the same places."""
    ref = run_reference(NAME, config, set_kwargs, seed=seed, model=model)
    ours = run_ours(NAME, config, set_kwargs, seed=seed, model=model)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps)
    for field in ("prev", "x0"):
        for r, o in zip(getattr(ref, field), getattr(ours, field)):
            np.testing.assert_array_equal(np.isnan(o), np.isnan(r))
    finite = lambda trace: [np.nan_to_num(v, nan=0.0) if v is not None else None for v in trace]  # noqa: E731
    ref.prev, ref.x0, ours.prev, ours.x0 = finite(ref.prev), finite(ref.x0), finite(ours.prev), finite(ours.x0)
    err = max_step_error(ref, ours)
    assert err <= RTOL, f"{config} {set_kwargs}: worst step error {err:.3g}"
    record(NAME, err)
    return err


@pytest.mark.parametrize("steps", (1, 3, 10, 50))
@pytest.mark.parametrize(
    "variance_type, model",
    [("learned", learned_model), ("learned_range", learned_range_model)],
    ids=["learned", "learned_range"],
)
def test_learned_variance(variance_type, model, steps):
    check_with_model(dict(SD, variance_type=variance_type), {"num_inference_steps": steps}, model)


def test_learned_range_custom_timesteps_and_v_prediction():
    config = dict(SD, variance_type="learned_range", prediction_type="v_prediction", timestep_spacing="trailing")
    check_with_model(config, {"num_inference_steps": 10}, learned_range_model)
    check_with_model(dict(SD, variance_type="learned_range"), {"timesteps": [900, 650, 300, 40]},
                     learned_range_model)


@pytest.mark.parametrize("steps", (1, 10))
def test_fixed_large_log_is_nan_like_diffusers(steps):
    # diffusers takes sqrt(log beta_t) (log beta < 0): the noisy steps become NaN; so do ours
    check_with_model(dict(SD, variance_type="fixed_large_log"), {"num_inference_steps": steps}, model_fn)


def test_learned_variance_needs_twice_the_channels():
    s = DDPMScheduler(variance_type="learned_range")
    s.set_timesteps(10)
    x = initial_sample()
    with pytest.raises(ValueError, match="twice the sample's channels"):
        s.step(model_fn(x, 900), s.timesteps[0], x)


# --- other behaviour --------------------------------------------------------------------

def test_without_set_timesteps_walks_every_training_timestep():
    ref, ours = diffusers.DDPMScheduler(**SD), DDPMScheduler(**SD)
    gen, ref_gen = TorchGenerator(5), torch.Generator("cpu").manual_seed(5)
    x = initial_sample(5)
    xr = torch.from_numpy(x)
    for t in (999, 998, 997, 1, 0):
        out = ours.step(model_fn(x, t), t, x, generator=gen)
        res = ref.step(torch.from_numpy(model_fn(xr.numpy(), t)), t, xr, generator=ref_gen)
        assert out.prev_sample.shape == x.shape
        scale = max(1.0, float(res.prev_sample.abs().max()))
        assert np.abs(out.prev_sample - res.prev_sample.numpy()).max() / scale <= RTOL
        x, xr = out.prev_sample, res.prev_sample
    assert ours.previous_timestep(999) == ref.previous_timestep(999) == 998


def test_list_of_generators_one_per_batch_item():
    seeds = (11, 12)
    ref = diffusers.DDPMScheduler(**SD)
    ours = DDPMScheduler(**SD)
    ref.set_timesteps(4)
    ours.set_timesteps(4)
    gens = [TorchGenerator(s) for s in seeds]
    ref_gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    x = initial_sample(3)
    xr = torch.from_numpy(x)
    for t in ours.timesteps:
        x = ours.step(model_fn(x, t), t, x, generator=gens).prev_sample
        xr = ref.step(torch.from_numpy(model_fn(xr.numpy(), t)), torch.tensor(t), xr, generator=ref_gens).prev_sample
        assert np.abs(x - xr.numpy()).max() / max(1.0, float(xr.abs().max())) <= RTOL
