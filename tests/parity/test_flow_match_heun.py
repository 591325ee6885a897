"""FlowMatchHeunDiscreteScheduler: numpy vs diffusers, step by step.

diffusers' class has no ``scale_model_input`` / ``init_noise_sigma`` (flow models take the
sample as is), so the harness loop does not fit: this file runs both side by side itself,
with the harness's model, starting sample, seed handling and bound.
"""

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.flow_match_heun  # noqa: F401  (registers FlowMatchHeunDiscreteScheduler)
from edge_sched.random import TorchGenerator
from edge_sched.schedulers import scheduler_class

from .harness import RTOL, check_timesteps, initial_sample, model_fn, record

NAME = "FlowMatchHeunDiscreteScheduler"
STEPS = (1, 2, 3, 10, 25, 50)


def _run(ref_side: bool, config, steps, step_kwargs, seed):
    sched = (getattr(diffusers, NAME) if ref_side else scheduler_class(NAME)).from_config(dict(config))
    sched.set_timesteps(steps)
    gen = torch.Generator("cpu").manual_seed(seed) if ref_side else TorchGenerator(seed)
    x = initial_sample(seed)
    x = torch.from_numpy(x) if ref_side else x
    out = []
    for t in sched.timesteps:
        model_in = x.numpy() if ref_side else x
        m = model_fn(model_in, t.numpy() if ref_side else t)
        x = sched.step(torch.from_numpy(m) if ref_side else m, t, x, generator=gen, **step_kwargs).prev_sample
        out.append(np.array(x, copy=True))
    ts = sched.timesteps.numpy() if ref_side else sched.timesteps
    sig = sched.sigmas.numpy() if ref_side else sched.sigmas
    return ts, sig, out


def check(config, steps, step_kwargs=None, seed=0):
    step_kwargs = step_kwargs or {}
    t_ref, s_ref, ref = _run(True, config, steps, step_kwargs, seed)
    t_ours, s_ours, ours = _run(False, config, steps, step_kwargs, seed)
    assert t_ours.dtype == np.float32 and len(t_ours) == len(t_ref) == 2 * steps - 1
    check_timesteps(t_ours, t_ref)
    np.testing.assert_allclose(s_ours, s_ref, rtol=RTOL, atol=RTOL)
    worst = 0.0
    for r, o in zip(ref, ours):
        worst = max(worst, float(np.abs(o.astype(np.float64) - r).max()) / max(1.0, float(np.abs(r).max())))
    assert worst <= RTOL, f"{config} {steps}: worst step error {worst:.3g}"
    record(NAME, worst)


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", [{}, {"shift": 3.0}, {"shift": 0.7}, {"num_train_timesteps": 100, "shift": 1.5}],
                         ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_grid(config, steps):
    check(config, steps)


@pytest.mark.parametrize("churn", [0.5, 3.0])
def test_churn_noise(churn):
    check({"shift": 3.0}, 12, {"s_churn": churn, "s_tmin": 0.2, "s_tmax": 0.9}, seed=3)
    check({}, 8, {"s_churn": churn, "s_noise": 1.003}, seed=5)


def test_sigma_range_and_the_step_index_scale_noise_sets():
    for shift in (1.0, 3.0):
        ref, ours = diffusers.FlowMatchHeunDiscreteScheduler(shift=shift), scheduler_class(NAME)(shift=shift)
        assert (ours.sigma_min, ours.sigma_max) == (ref.sigma_min, ref.sigma_max)
        ref.set_timesteps(10)
        ours.set_timesteps(10)
        x0, noise = initial_sample(4), initial_sample(5)
        expected = ref.scale_noise(torch.from_numpy(x0), ref.timesteps[3], torch.from_numpy(noise)).numpy()
        np.testing.assert_allclose(ours.scale_noise(x0, ours.timesteps[3], noise), expected, rtol=0, atol=RTOL)
        assert ours.step_index == ref.step_index
