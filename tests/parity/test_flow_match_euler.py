"""FlowMatchEulerDiscreteScheduler: numpy vs diffusers over its config grid.

diffusers' class has no ``scale_model_input`` (flow pipelines feed the sample as it is), so
the harness' loop does not apply: this file runs both loops itself, with the harness' model,
starting sample, seed and bound. The model output stands in for a velocity.
"""

import itertools

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.flow_match_euler  # noqa: F401  (registers FlowMatchEulerDiscreteScheduler)
from edge_sched.random import TorchGenerator
from edge_sched.schedulers import ConfigError, scheduler_class

from .harness import RTOL, Trace, check_timesteps, initial_sample, max_step_error, model_fn, record

NAME = "FlowMatchEulerDiscreteScheduler"
STEPS = (1, 2, 3, 10, 25, 50)
TOKENS = (2, 16, 4)  # (batch, tokens, channels) for per-token timesteps


def _run_reference(config, set_kwargs, step_kwargs, seed, sample, per_token):
    sched = diffusers.FlowMatchEulerDiscreteScheduler.from_config(dict(config))
    sched.set_timesteps(**set_kwargs)
    gen = torch.Generator("cpu").manual_seed(seed)
    x, prev = torch.from_numpy(sample), []
    for i, t in enumerate(sched.timesteps):
        out = torch.from_numpy(model_fn(x.numpy(), t.numpy()))
        kwargs = dict(step_kwargs)
        if per_token is not None:
            kwargs["per_token_timesteps"] = torch.from_numpy(per_token(t.numpy()))
        x = sched.step(out, t, x, generator=gen, **kwargs).prev_sample
        prev.append(x.numpy().copy())
    return Trace(sched.timesteps.numpy(), sched.sigmas.numpy(), prev, [])


def _run_ours(config, set_kwargs, step_kwargs, seed, sample, per_token):
    sched = scheduler_class(NAME).from_config(dict(config))
    sched.set_timesteps(**set_kwargs)
    gen = TorchGenerator(seed)
    x, prev = sample.copy(), []
    for t in sched.timesteps:
        kwargs = dict(step_kwargs)
        if per_token is not None:
            kwargs["per_token_timesteps"] = per_token(t)
        x = sched.step(model_fn(x, t), t, x, generator=gen, **kwargs).prev_sample
        prev.append(np.array(x, copy=True))
    return Trace(sched.timesteps, sched.sigmas, prev, [])


def check_flow_parity(config, set_kwargs, step_kwargs=None, seed=0, shape=None, per_token=None) -> float:
    sample = initial_sample(seed) if shape is None else initial_sample(seed, shape)
    ref = _run_reference(config, set_kwargs, step_kwargs or {}, seed, sample, per_token)
    ours = _run_ours(config, set_kwargs, step_kwargs or {}, seed, sample, per_token)
    assert len(ours.timesteps) == len(ref.timesteps), (ours.timesteps, ref.timesteps)
    assert ours.timesteps.dtype == ref.timesteps.dtype == np.float32
    check_timesteps(ours.timesteps, ref.timesteps)
    assert ours.sigmas.dtype == np.float32
    np.testing.assert_allclose(ours.sigmas, ref.sigmas, rtol=RTOL, atol=RTOL)
    err = max_step_error(ref, ours)
    assert err <= RTOL, f"{NAME} {config} {set_kwargs}: worst step error {err:.3g} > bound {RTOL:.3g}"
    record(NAME, err)
    return err


SIGMA_RAMPS = ({}, {"use_karras_sigmas": True}, {"use_exponential_sigmas": True}, {"use_beta_sigmas": True})
GRID = [dict(shift=s, **ramp) for s, ramp in itertools.product((1.0, 3.0), SIGMA_RAMPS)]
EXTRA = [
    dict(shift=3.0, shift_terminal=0.02),
    dict(shift=1.7, invert_sigmas=True),
    dict(shift=3.0, stochastic_sampling=True),
    dict(shift=3.0, stochastic_sampling=True, use_karras_sigmas=True),
    dict(num_train_timesteps=100, shift=2.0),
]
# Flux / SD3.5 style resolution-dependent shifting: mu comes with set_timesteps
DYNAMIC = [
    dict(use_dynamic_shifting=True),
    dict(use_dynamic_shifting=True, time_shift_type="linear"),
    dict(use_dynamic_shifting=True, shift_terminal=0.1),
    dict(use_dynamic_shifting=True, use_exponential_sigmas=True),
]


def _ids(c):
    return ",".join(f"{k}={v}" for k, v in c.items())[:80] or "default"


def _valid(configs):
    # one step has the single sigma 1: shift_terminal cannot stretch it (diffusers divides by zero)
    return [(c, n) for c in configs for n in STEPS if not (n == 1 and c.get("shift_terminal"))]


@pytest.mark.parametrize("config,steps", _valid(GRID + EXTRA), ids=lambda v: _ids(v) if isinstance(v, dict) else str(v))
def test_grid(config, steps):
    check_flow_parity(config, {"num_inference_steps": steps}, seed=steps)


def _mu(config):
    return 0.8 if config.get("time_shift_type") == "linear" else 1.15


@pytest.mark.parametrize("config,steps", _valid(DYNAMIC), ids=lambda v: _ids(v) if isinstance(v, dict) else str(v))
def test_dynamic_shifting(config, steps):
    check_flow_parity(config, {"num_inference_steps": steps, "mu": _mu(config)}, seed=steps)


@pytest.mark.parametrize("config", [dict(shift=3.0, shift_terminal=0.02),
                                    dict(use_dynamic_shifting=True, shift_terminal=0.1)], ids=_ids)
def test_shift_terminal_with_one_step(config):
    kwargs = {"num_inference_steps": 1, "mu": _mu(config)}
    ref = diffusers.FlowMatchEulerDiscreteScheduler(**config)
    with np.errstate(invalid="ignore"):
        ref.set_timesteps(**kwargs)
    assert np.isnan(ref.sigmas[0].item())  # diffusers: 0/0, then step fails on the NaN timestep
    with pytest.raises(ValueError, match="shift_terminal"):
        scheduler_class(NAME)(**config).set_timesteps(**kwargs)


@pytest.mark.parametrize("steps", (1, 3, 28, 50))
def test_flux_style_custom_sigmas_with_mu(steps):
    # FluxPipeline: sigmas = linspace(1, 1/n, n) (float64), shifted by mu
    sigmas = np.linspace(1.0, 1 / steps, steps)
    check_flow_parity(dict(use_dynamic_shifting=True, shift_terminal=None), {"sigmas": sigmas, "mu": 0.93},
                      seed=steps)
    check_flow_parity(dict(shift=3.0), {"sigmas": list(sigmas), "num_inference_steps": steps}, seed=steps)


@pytest.mark.parametrize("set_kwargs", [
    {"timesteps": [1000.0, 800.0, 512.5, 250.0, 20.0]},
    {"timesteps": [999, 750, 500, 250]},
    {"timesteps": [1000.0, 700.0, 300.0], "sigmas": [1.0, 0.6, 0.2]},  # timesteps kept, sigmas shifted
    {"timesteps": [900.0, 500.0, 100.0], "num_inference_steps": 3},
    {"sigmas": [0.95, 0.7, 0.4, 0.1]},
])
@pytest.mark.parametrize("config", [dict(shift=3.0), dict(shift=1.0, invert_sigmas=True),
                                    dict(shift=2.0, use_karras_sigmas=True)], ids=_ids)
def test_custom_timesteps_and_sigmas(config, set_kwargs):
    check_flow_parity(config, set_kwargs)


def test_step_kwargs_like_s_churn_are_accepted_and_ignored():
    check_flow_parity(dict(shift=3.0), {"num_inference_steps": 10},
                      {"s_churn": 0.7, "s_tmin": 0.1, "s_tmax": 5.0, "s_noise": 1.003})


def _per_token(offsets):
    """Per-token timesteps: the step's timestep, some tokens held back (as video models do)."""
    def timesteps_for(t):
        t = np.float32(t)
        return np.clip(t - offsets, 0, None).astype(np.float32)
    return timesteps_for


@pytest.mark.parametrize("config", [dict(shift=3.0), dict(shift=3.0, stochastic_sampling=True), dict(shift=1.0)],
                         ids=_ids)
@pytest.mark.parametrize("steps", (3, 10))
def test_per_token_timesteps(config, steps):
    offsets = np.tile(np.linspace(0, 300, TOKENS[1], dtype=np.float32), (TOKENS[0], 1))
    offsets[1, ::3] = 0
    check_flow_parity(config, {"num_inference_steps": steps}, seed=steps, shape=TOKENS, per_token=_per_token(offsets))


def test_float16_model_output_rounds_like_torch():
    # torch keeps the 0-d float32 dt in the model output's dtype: dt * v is rounded to float16
    ref = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    ours = scheduler_class(NAME)(shift=3.0)
    ref.set_timesteps(10)
    ours.set_timesteps(10)
    x = initial_sample(4)
    for t_ref, t in zip(ref.timesteps, ours.timesteps):
        v = model_fn(x, t).astype(np.float16)
        want = ref.step(torch.from_numpy(v), t_ref, torch.from_numpy(x)).prev_sample.numpy()
        got = ours.step(v, t, x).prev_sample
        assert got.dtype == want.dtype == np.float16
        np.testing.assert_array_equal(got, want)
        x = want.astype(np.float32)


def test_init_state_equals_diffusers():
    for config in [{}, dict(shift=3.0), dict(use_dynamic_shifting=True, shift=3.0), dict(num_train_timesteps=100)]:
        ref, ours = diffusers.FlowMatchEulerDiscreteScheduler(**config), scheduler_class(NAME)(**config)
        np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
        np.testing.assert_array_equal(ours.sigmas, ref.sigmas.numpy())
        assert (ours.sigma_min, ours.sigma_max, ours.shift) == (ref.sigma_min, ref.sigma_max, ref.shift)
        assert ours.timesteps.dtype == np.float32


def test_set_shift_changes_the_schedule_like_diffusers():
    ref, ours = diffusers.FlowMatchEulerDiscreteScheduler(), scheduler_class(NAME)()
    ref.set_shift(2.5)
    ours.set_shift(2.5)
    ref.set_timesteps(7)
    ours.set_timesteps(7)
    assert ours.shift == 2.5
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    np.testing.assert_array_equal(ours.sigmas, ref.sigmas.numpy())


@pytest.mark.parametrize("config,kwargs", [
    (dict(use_dynamic_shifting=True), {"num_inference_steps": 4}),  # mu missing
    ({}, {"sigmas": [1.0, 0.5], "timesteps": [1000.0, 500.0, 10.0]}),
    ({}, {"num_inference_steps": 3, "sigmas": [1.0, 0.5]}),
    ({}, {"num_inference_steps": 3, "timesteps": [1000.0, 500.0]}),
])
def test_bad_set_timesteps_raise_like_diffusers(config, kwargs):
    with pytest.raises(ValueError):
        diffusers.FlowMatchEulerDiscreteScheduler(**config).set_timesteps(**kwargs)
    with pytest.raises(ValueError):
        scheduler_class(NAME)(**config).set_timesteps(**kwargs)


def test_bad_config_raises_like_diffusers():
    config = dict(use_karras_sigmas=True, use_beta_sigmas=True)
    with pytest.raises(ValueError):
        diffusers.FlowMatchEulerDiscreteScheduler(**config)
    with pytest.raises(ValueError):
        scheduler_class(NAME)(**config)
    # shift_terminal is annotated `float = None` in diffusers: None (a saved null) or a number
    with pytest.raises(ConfigError, match="shift_terminal"):
        scheduler_class(NAME)(shift_terminal="far")
