"""DDIMInverseScheduler: numpy vs diffusers (ascending timesteps, inverted DDIM steps)."""

import itertools
import warnings

import numpy as np
import pytest

import diffusers
import edge_sched.schedulers.ddim_inverse  # noqa: F401  registers DDIMInverseScheduler
from edge_sched.schedulers import ConfigError
from edge_sched.schedulers.ddim_inverse import DDIMInverseScheduler

from .harness import RTOL, check_parity, run_ours, run_reference

NAME = "DDIMInverseScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
STEPS = (1, 2, 3, 10, 25, 50)

GRID = [
    dict(SD, prediction_type=p, timestep_spacing=s, set_alpha_to_one=one, clip_sample=False)
    for p, s, one in itertools.product(("epsilon", "v_prediction", "sample"), ("leading", "trailing"), (True, False))
    if not (p == "sample" and one)  # eps = (x - x0) / 0 on the first step: see test_sample_prediction_from_alpha_one
]
EXTRA = [
    dict(SD),  # clip_sample=True (diffusers' default)
    dict(SD, clip_sample_range=0.5, prediction_type="v_prediction"),
    dict(SD, steps_offset=1, set_alpha_to_one=False, clip_sample=False),
    dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="v_prediction",
         clip_sample=False),
    dict(),  # linear betas
    dict(beta_schedule="squaredcos_cap_v2", clip_sample=False),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100),
]


def _ids(c):
    return ",".join(f"{k}={v}" for k, v in c.items())[:80] or "defaults"


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID + EXTRA, ids=_ids)
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


@pytest.mark.parametrize("steps", (1, 10))
def test_sample_prediction_from_alpha_one(steps):
    # with set_alpha_to_one the first step starts from abar = 1, where sqrt(1 - abar) = 0: diffusers
    # divides by it (eps = +-inf, then NaN); ours must give the same non-finite values at the same places
    config = dict(SD, prediction_type="sample", set_alpha_to_one=True, clip_sample=False)
    with np.errstate(divide="ignore", invalid="ignore"):  # the model function sees the infinities too
        ref = run_reference(NAME, config, {"num_inference_steps": steps})
        ours = run_ours(NAME, config, {"num_inference_steps": steps})
    for field in ("prev", "x0"):
        for r, o in zip(getattr(ref, field), getattr(ours, field)):
            np.testing.assert_array_equal(np.isnan(o), np.isnan(r))
            np.testing.assert_array_equal(o[np.isinf(r)], r[np.isinf(r)])
            finite = np.isfinite(r)
            bound = RTOL * max(1.0, np.abs(r[finite]).max(initial=0))
            np.testing.assert_allclose(o[finite], r[finite], rtol=0, atol=bound)


@pytest.mark.parametrize("steps", (1, 10, 50))
@pytest.mark.parametrize("spacing", ("leading", "trailing"))
def test_timesteps_ascend_like_diffusers(spacing, steps):
    ref, ours = diffusers.DDIMInverseScheduler(timestep_spacing=spacing), DDIMInverseScheduler(timestep_spacing=spacing)
    ref.set_timesteps(steps)
    ours.set_timesteps(steps)
    assert ours.timesteps.dtype == np.int64
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    assert steps == 1 or np.all(np.diff(ours.timesteps) > 0)


@pytest.mark.parametrize("value", (True, False))
def test_deprecated_set_alpha_to_zero(value):
    with pytest.warns(FutureWarning):
        ref = diffusers.DDIMInverseScheduler(set_alpha_to_zero=value)
    with pytest.warns(FutureWarning, match="set_alpha_to_zero"):
        ours = DDIMInverseScheduler(set_alpha_to_zero=value)
    assert float(ours.initial_alpha_cumprod) == float(ref.initial_alpha_cumprod)
    with pytest.warns(FutureWarning):
        ours = DDIMInverseScheduler.from_config({**SD, "set_alpha_to_zero": value})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = diffusers.DDIMInverseScheduler.from_config({**SD, "set_alpha_to_zero": value})
    assert float(ours.initial_alpha_cumprod) == float(ref.initial_alpha_cumprod)


def test_options_of_the_forward_ddim_are_refused():
    # diffusers accepts "linspace" in the config and fails in set_timesteps; the annotation
    # (Literal["leading", "trailing"]) rejects it when the config is read
    with pytest.raises(ValueError):
        diffusers.DDIMInverseScheduler(timestep_spacing="linspace").set_timesteps(10)
    with pytest.raises(ConfigError, match="timestep_spacing"):
        DDIMInverseScheduler(timestep_spacing="linspace")
    with pytest.raises(ValueError, match="beta_schedule"):
        DDIMInverseScheduler(beta_schedule="sigmoid")
