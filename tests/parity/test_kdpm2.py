"""KDPM2DiscreteScheduler: numpy vs diffusers over its config grid (two model calls per step,
interleaved midpoint timesteps), plus what KDPM2 and its ancestral variant share (midpoint
sigmas, train-range override, errors). The ancestral grid is in test_kdpm2_ancestral.py."""

import itertools

import numpy as np
import pytest

import diffusers
import edge_sched.schedulers.kdpm2  # noqa: F401  (registers KDPM2DiscreteScheduler)
import edge_sched.schedulers.kdpm2_ancestral  # noqa: F401  (registers KDPM2AncestralDiscreteScheduler)
from edge_sched.random import TorchGenerator
from edge_sched.schedulers import SchedulerNotReadyError
from edge_sched.schedulers.kdpm2 import KDPM2DiscreteScheduler
from edge_sched.schedulers.kdpm2_ancestral import KDPM2AncestralDiscreteScheduler

from .harness import RTOL, check_parity, ieee_sqrt_in_torch, run_reference, self_drift

NAMES = ("KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler")
CLASSES = {"KDPM2DiscreteScheduler": KDPM2DiscreteScheduler,
           "KDPM2AncestralDiscreteScheduler": KDPM2AncestralDiscreteScheduler}
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
STEPS = (1, 2, 3, 10, 25, 50)
SPACINGS = ("linspace", "leading", "trailing")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' numpy-on-tensor calls

# "sample" prediction raises in diffusers (test_bad_input). Planning costs ~0.4 s per case in
# diffusers (it maps 1000 midpoint sigmas to timesteps one by one in __init__), so every step count
# is crossed with the base configs (epsilon x spacings, v-prediction, Karras) and the variants
# (other ramps and spacings, beta schedules, offsets) get a short and a long schedule.
BASE = [dict(SD, timestep_spacing=s) for s in SPACINGS] + [
    dict(SD, prediction_type="v_prediction"),
    dict(SD, use_karras_sigmas=True),
]
VARIANTS = [
    dict(SD, timestep_spacing=s, **sig)
    for s, sig in itertools.product(SPACINGS, ({"use_karras_sigmas": True}, {"use_exponential_sigmas": True}))
    if (s, sig) != ("linspace", {"use_karras_sigmas": True})
] + [dict(SD, prediction_type="v_prediction", timestep_spacing=s) for s in SPACINGS[1:]] + [
    dict(SD, prediction_type="v_prediction", use_karras_sigmas=True, timestep_spacing="trailing"),
    dict(SD, timestep_spacing="trailing", use_beta_sigmas=True),
    dict(),  # the class defaults (linear betas 0.00085..0.012)
    dict(SD, steps_offset=1, timestep_spacing="leading"),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100),
]
CASES = [(c, n) for c in BASE for n in STEPS] + [(c, n) for c in VARIANTS for n in (3, 25)]
# The cosine schedule's sigma_max is 2.0e4: the second call's x = x_i + d' (s_{i+1} - s_i) cancels
# two terms of size ~1e5 down to ~1e2, so a one-ulp difference in a midpoint sigma (torch's SIMD
# exp/log vs numpy's) moves the result by more than RTOL. test_cosine_schedule_amplifies_one_ulp
# measures diffusers' own drift on this loop; it is held to 10x that drift.
COSINE = dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")


def _id(config):
    return ",".join(f"{k}={v}" for k, v in config.items() if k not in SD or config[k] != SD[k])[:80] or "sd"


@pytest.mark.parametrize("config,steps", CASES, ids=[f"{_id(c)}-{n}" for c, n in CASES])
def test_grid(config, steps):
    check_parity(NAMES[0], config, {"num_inference_steps": steps})


@pytest.mark.parametrize("steps", STEPS)
def test_cosine_schedule(steps):
    check_parity(NAMES[0], COSINE, {"num_inference_steps": steps}, chaotic=True)


@pytest.mark.parametrize("name", NAMES)
def test_cosine_schedule_amplifies_one_ulp(name):
    assert self_drift(run_reference, name, COSINE, {"num_inference_steps": 25}) > RTOL


@pytest.mark.parametrize("name", NAMES)
def test_train_range_override(name):
    for spacing in SPACINGS:
        check_parity(name, dict(SD, timestep_spacing=spacing), {"num_inference_steps": 10, "num_train_timesteps": 500})


@pytest.mark.parametrize("name", NAMES)
def test_midpoint_sigmas_match_diffusers(name):
    # diffusers with IEEE square roots: the ancestral split's sigma_down = sqrt(s_next^2 - sigma_up^2)
    # cancels, so the one-ulp training sigmas of torch's sqrt (DEVELOPERS.md) move the midpoint
    # sigma at the end of a short schedule by ~1e-4; the stepping loops are checked against stock
    # diffusers in the grids (check_parity); the rest of the schedule in test_scheduler_contract.py
    with ieee_sqrt_in_torch():
        ref = getattr(diffusers, name)(**SD)
        ours = CLASSES[name](**SD)
        for steps in (None, 4, 1, 25):
            if steps is not None:
                ours.set_timesteps(steps)
                ref.set_timesteps(steps)
            np.testing.assert_allclose(ours.timesteps, ref.timesteps.numpy(), rtol=RTOL, atol=RTOL)
            # NaN where torch has NaN (the unused first midpoint of KDPM2)
            np.testing.assert_allclose(ours.sigmas_interpol, ref.sigmas_interpol.numpy(), rtol=RTOL, equal_nan=True)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input(name):
    cls = CLASSES[name]
    with pytest.raises(ValueError, match="Only one of"):
        cls(use_karras_sigmas=True, use_beta_sigmas=True)
    x = np.ones((1, 4, 8, 8), np.float32)
    # like diffusers, "sample" prediction is accepted in the config but not implemented
    t = cls(prediction_type="sample")
    t.set_timesteps(4)
    with pytest.raises(NotImplementedError, match="sample"):
        t.step(x, t.timesteps[0], x, generator=TorchGenerator(0)) if name == NAMES[1] else t.step(x, t.timesteps[0], x)
    with pytest.raises(SchedulerNotReadyError):
        object.__new__(cls).step(x, 1.0, x)
