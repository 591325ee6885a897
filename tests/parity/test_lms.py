"""LMSDiscreteScheduler: numpy vs diffusers over its config grid, and the LMS weights."""

import itertools
from fractions import Fraction

import numpy as np
import pytest

import diffusers
import edge_sched.schedulers.lms  # noqa: F401  (registers LMSDiscreteScheduler)
from edge_sched.schedulers import SchedulerNotReadyError
from edge_sched.schedulers.lms import LMSDiscreteScheduler, lms_coefficients

from .harness import RTOL, check_parity, run_reference, self_drift

NAME = "LMSDiscreteScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
STEPS = (1, 2, 3, 10, 25, 50)
SPACINGS = ("linspace", "leading", "trailing")

# beta sigmas are slow to plan on both sides (diffusers plans 1000 of them in __init__):
# they get the spacings with epsilon; the other ramps get the full prediction x spacing grid
GRID = [
    dict(SD, prediction_type=p, timestep_spacing=s, **sig)
    for p, s, sig in itertools.product(
        ("epsilon", "v_prediction", "sample"),
        SPACINGS,
        ({}, {"use_karras_sigmas": True}, {"use_exponential_sigmas": True}),
    )
] + [dict(SD, timestep_spacing=s, use_beta_sigmas=True) for s in SPACINGS]
EXTRA = [
    dict(beta_schedule="linear"),
    dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction"),
    dict(SD, steps_offset=1, timestep_spacing="leading"),
    dict(SD, steps_offset=1, timestep_spacing="leading", use_karras_sigmas=True),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100),
]


def _id(config):
    return ",".join(f"{k}={v}" for k, v in config.items() if k not in SD or config[k] != SD[k])[:80] or "sd"


# Trailing spacing + exponential ramp, 50 steps: the final 4th-order step extrapolates from
# four closely spaced small sigmas down to 0 with large LMS weights, so diffusers itself
# moves by more than RTOL when its starting sample moves by one ulp
# (test_chaotic_cases_amplify_one_ulp measures it); these are held to 10x that drift.
CHAOTIC = [(dict(SD, prediction_type=p, timestep_spacing="trailing", use_exponential_sigmas=True), 50)
           for p in ("epsilon", "v_prediction", "sample")]


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID + EXTRA, ids=_id)
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps}, chaotic=(config, steps) in CHAOTIC)


@pytest.mark.parametrize("config,steps", CHAOTIC, ids=lambda c: _id(c) if isinstance(c, dict) else str(c))
def test_chaotic_cases_amplify_one_ulp(config, steps):
    assert self_drift(run_reference, NAME, config, {"num_inference_steps": steps}) > RTOL


@pytest.mark.parametrize("order", [1, 2, 3, 5])
@pytest.mark.parametrize("config", [SD, dict(SD, use_karras_sigmas=True, prediction_type="v_prediction")], ids=_id)
def test_order_kwarg(config, order):
    for steps in (3, 25):
        check_parity(NAME, config, {"num_inference_steps": steps}, {"order": order})


def _exact_lms_weight(sigmas, i, m, j):
    """integral_{s_i}^{s_{i+1}} of the Lagrange basis L_j on s_i..s_{i-m+1}, in rationals."""
    s = [Fraction(float(v)) for v in sigmas]
    nodes = [s[i - k] for k in range(m)]
    poly = [Fraction(1)]  # coefficients, lowest degree first
    for k in range(m):
        if k == j:
            continue
        denom = nodes[j] - nodes[k]
        poly = [(a - nodes[k] * b) / denom for a, b in zip([Fraction(0)] + poly, poly + [Fraction(0)])]
    integral = lambda x: sum(c * x ** (d + 1) / (d + 1) for d, c in enumerate(poly))  # noqa: E731
    return integral(s[i + 1]) - integral(s[i])


@pytest.mark.parametrize("order", [1, 2, 4, 5])
def test_lms_weights_are_the_exact_integral_and_match_scipy_quad(order):
    ref = diffusers.LMSDiscreteScheduler(**SD, use_karras_sigmas=True)
    ref.set_timesteps(12)
    sigmas = ref.sigmas.numpy()
    table = lms_coefficients(sigmas, order)
    for i in range(12):
        m = min(i + 1, order)
        exact = np.array([float(_exact_lms_weight(sigmas, i, m, j)) for j in range(m)])
        quad = np.array([ref.get_lms_coefficient(m, i, j) for j in range(m)])
        scale = max(1.0, np.abs(exact).max())
        np.testing.assert_allclose(table[i, :m], exact, rtol=0, atol=1e-12 * scale)
        # diffusers' quad integrates a float32 integrand: it sits within ~1e-6 of the exact value
        np.testing.assert_allclose(quad, exact, rtol=0, atol=RTOL * scale)
        assert not table[i, m:].any()


def test_get_lms_coefficient_matches_diffusers():
    ours, ref = LMSDiscreteScheduler(**SD), diffusers.LMSDiscreteScheduler(**SD)
    ours.set_timesteps(10)
    ref.set_timesteps(10)
    for t, order, j in [(0, 1, 0), (3, 4, 0), (3, 4, 3), (9, 2, 1)]:
        assert ours.get_lms_coefficient(order, t, j) == pytest.approx(ref.get_lms_coefficient(order, t, j), rel=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="Only one of"):
        LMSDiscreteScheduler(use_karras_sigmas=True, use_beta_sigmas=True)
    s = LMSDiscreteScheduler()
    s.set_timesteps(4)
    x = np.ones((1, 4, 8, 8), np.float32)
    with pytest.raises(ValueError, match="order"):
        s.step(x, s.timesteps[0], x, order=0)
    with pytest.raises(SchedulerNotReadyError):
        object.__new__(LMSDiscreteScheduler).step(x, 1.0, x)


def test_a_clamped_leading_schedule_warns_at_the_step_not_at_construction():
    """SD1.5's config (leading spacing, steps_offset=1) clamps the first of 1000 timesteps to the last training one:
    two equal sigmas, so the second step's LMS weights are undefined. Building the scheduler (which holds that
    1000-step schedule, as diffusers' does) and planning 20 steps warns nothing; stepping through the clamped
    schedule warns, and the sample leaves the finite numbers as diffusers' does."""
    import warnings

    import torch

    config = dict(SD, steps_offset=1, timestep_spacing="leading")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LMSDiscreteScheduler(**config).set_timesteps(20)
    ours, theirs = LMSDiscreteScheduler(**config), diffusers.LMSDiscreteScheduler(**config)
    ours.set_timesteps(1000)
    theirs.set_timesteps(1000)
    assert ours.sigmas[0] == ours.sigmas[1]
    x, y = np.ones((1, 1, 2, 2), np.float32), torch.ones(1, 1, 2, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for t in ours.timesteps[:3]:
            x = ours.step(x * 0.1, t, x).prev_sample
        for t in theirs.timesteps[:3]:
            y = theirs.step(y * 0.1, t, y).prev_sample
    ours_said = [str(w.message) for w in caught if "LMS step" in str(w.message)]
    assert ours_said and ours_said[0].startswith("LMS step 1: the schedule repeats a sigma")
    assert not np.isfinite(x).any() and not torch.isfinite(y).any()
