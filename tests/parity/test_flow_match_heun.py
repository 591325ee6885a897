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
from edge_sched.schedulers import SchedulerNotReadyError, scheduler_class

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


def test_schedule_before_set_timesteps_and_scale_noise():
    for shift in (1.0, 3.0):
        ref, ours = diffusers.FlowMatchHeunDiscreteScheduler(shift=shift), scheduler_class(NAME)(shift=shift)
        np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
        np.testing.assert_array_equal(ours.sigmas, ref.sigmas.numpy())
        assert (ours.sigma_min, ours.sigma_max) == (ref.sigma_min, ref.sigma_max)
        ref.set_timesteps(10)
        ours.set_timesteps(10)
        x0, noise = initial_sample(4), initial_sample(5)
        expected = ref.scale_noise(torch.from_numpy(x0), ref.timesteps[3], torch.from_numpy(noise)).numpy()
        np.testing.assert_allclose(ours.scale_noise(x0, ours.timesteps[3], noise), expected, rtol=0, atol=RTOL)
        assert ours.step_index == ref.step_index


def test_return_dict_false_and_state():
    s = scheduler_class(NAME)()
    s.set_timesteps(3)
    x = initial_sample(0)
    assert s.state_in_first_order
    out = s.step(model_fn(x, s.timesteps[0]), s.timesteps[0], x, return_dict=False)
    assert isinstance(out, tuple) and len(out) == 1 and out[0].dtype == np.float32
    assert not s.state_in_first_order
    assert s.step(model_fn(x, s.timesteps[1]), s.timesteps[1], x).pred_original_sample is None
    assert s.state_in_first_order


def test_config_round_trip_through_diffusers(tmp_path):
    ours = scheduler_class(NAME)(shift=3.0)
    ours.save_pretrained(tmp_path)
    ref = diffusers.FlowMatchHeunDiscreteScheduler.from_pretrained(tmp_path)
    assert ref.config.shift == 3.0 and ref.config.num_train_timesteps == 1000


def test_bad_input():
    s = scheduler_class(NAME)()
    x = initial_sample(0)
    with pytest.raises(SchedulerNotReadyError, match="set_timesteps"):
        s.step(x, np.float32(1000.0), x)
    s.set_timesteps(4)
    ref = diffusers.FlowMatchHeunDiscreteScheduler()
    ref.set_timesteps(4)
    with pytest.raises(ValueError):
        ref.step(torch.from_numpy(x), 3, torch.from_numpy(x))
    with pytest.raises(ValueError, match="integer"):
        s.step(x, 3, x)
    with pytest.raises(ValueError, match="num_inference_steps"):
        s.set_timesteps(0)
