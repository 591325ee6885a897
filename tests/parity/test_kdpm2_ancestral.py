"""KDPM2AncestralDiscreteScheduler: numpy vs diffusers over its config grid, including the noise
drawn on every second call. Schedule, add_noise and error tests shared with KDPM2 are in
test_kdpm2.py."""

import numpy as np
import pytest

import edge_sched.schedulers.kdpm2_ancestral  # noqa: F401  (registers KDPM2AncestralDiscreteScheduler)

from .harness import (
    RTOL, check_parity, max_step_error, record, run_ours, run_reference, run_reference_with_ieee_sqrt,
    self_drift,
)
from .test_kdpm2 import CASES, COSINE, SD, STEPS, _id

NAME = "KDPM2AncestralDiscreteScheduler"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' numpy-on-tensor calls


@pytest.mark.parametrize("config,steps", CASES, ids=[f"{_id(c)}-{n}" for c, n in CASES])
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps}, seed=steps)


@pytest.mark.parametrize("steps", STEPS)
def test_cosine_schedule(steps):
    # chaotic for the reason given in test_kdpm2.py (test_cosine_schedule_amplifies_one_ulp);
    # besides, torch's sqrt makes sigma_down[0] exactly 0 there (NaN midpoint timestep), which the
    # harness resolves by checking against diffusers with IEEE square roots
    if np.isnan(run_reference(NAME, COSINE, {"num_inference_steps": steps}).timesteps).any():
        _check_nan_timesteps(COSINE, {"num_inference_steps": steps})
    else:
        check_parity(NAME, COSINE, {"num_inference_steps": steps}, chaotic=True)


def _check_nan_timesteps(config, set_kwargs):
    """check_parity for a schedule whose midpoint timesteps include NaN, which the harness cannot
    compare. On the cosine schedule sigma_down[0] = sqrt(s_1^2 - sigma_up^2) cancels to exactly 0
    (with torch's sqrt at 10 steps, with IEEE arithmetic too at 2), log(0) makes that midpoint NaN,
    and diffusers steps through it by index. As the harness does for torch-sqrt effects, we are
    held to diffusers run with IEEE square roots (same NaN places, the rest within RTOL, chaotic
    bound as for the other cosine cases)."""
    ref, ours = run_reference_with_ieee_sqrt(NAME, config, set_kwargs), run_ours(NAME, config, set_kwargs)
    np.testing.assert_allclose(ours.timesteps, ref.timesteps, rtol=RTOL, atol=RTOL, equal_nan=True)
    np.testing.assert_allclose(ours.sigmas, ref.sigmas, rtol=RTOL, atol=RTOL)
    err = max_step_error(ref, ours)
    bound = RTOL if err <= RTOL else max(RTOL, 10 * self_drift(run_reference_with_ieee_sqrt, NAME, config, set_kwargs))
    assert err <= bound, f"{config} {set_kwargs}: worst step error {err:.3g} > {bound:.3g}"
    record(NAME + " (NaN midpoint timestep; vs IEEE-sqrt diffusers)", err)


@pytest.mark.parametrize("seed", [1, 7, 12345])
def test_seeds(seed):
    # one draw per second call; the generator must advance exactly as torch's does
    check_parity(NAME, SD, {"num_inference_steps": 20}, seed=seed)
    check_parity(NAME, dict(SD, use_karras_sigmas=True), {"num_inference_steps": 20}, seed=seed)
