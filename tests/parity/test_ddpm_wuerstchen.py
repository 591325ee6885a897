"""DDPMWuerstchenScheduler: numpy vs diffusers, stepped as the Würstchen pipelines do (every
scheduled time but the final 0, one time per batch item), noise from the same seed."""

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.ddpm_wuerstchen  # noqa: F401  registers DDPMWuerstchenScheduler
from edge_sched.random import TorchGenerator
from edge_sched.schedulers import SchedulerNotReadyError
from edge_sched.schedulers.ddpm_wuerstchen import DDPMWuerstchenScheduler

from .harness import RTOL, initial_sample, model_fn, record

NAME = "DDPMWuerstchenScheduler"
STEPS = (1, 2, 3, 10, 25, 50)
CONFIGS = [dict(), dict(scaler=2.0), dict(scaler=0.5), dict(s=0.02)]
# the Würstchen prior pipeline's default schedule (20 steps to 2/3, then 10 to 0)
STAGE_C = list(np.linspace(1.0, 2 / 3, 20)) + list(np.linspace(2 / 3, 0.0, 11))[1:]


def _rel(got, want):
    want = want.numpy()
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape, got.dtype, want.dtype)
    return float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max()))


def pipeline_loop(config, set_kwargs, seed=0):
    ref, ours = diffusers.DDPMWuerstchenScheduler(**config), DDPMWuerstchenScheduler(**config)
    ref.set_timesteps(**set_kwargs)
    ours.set_timesteps(**set_kwargs)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    gen, ref_gen = TorchGenerator(seed), torch.Generator("cpu").manual_seed(seed)
    x = initial_sample(seed)
    xr = torch.from_numpy(x)
    worst = 0.0
    for t, tr in zip(ours.timesteps[:-1], ref.timesteps[:-1]):
        ratio = np.full(x.shape[0], t, dtype=np.float32)
        out = ours.step(model_fn(x, t), ratio, x, generator=gen)
        res = ref.step(torch.from_numpy(model_fn(xr.numpy(), tr.numpy())), tr.expand(xr.size(0)), xr, generator=ref_gen)
        worst = max(worst, _rel(out.prev_sample, res.prev_sample))
        x, xr = out.prev_sample, res.prev_sample
    assert worst <= RTOL, f"{config} {set_kwargs}: worst step error {worst:.3g}"
    record(NAME, worst)
    return worst


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_pipeline_loop(config, steps):
    pipeline_loop(config, {"num_inference_steps": steps}, seed=steps)


@pytest.mark.parametrize("config", CONFIGS[:2], ids=str)
@pytest.mark.parametrize("timesteps", [STAGE_C, [1.0, 0.75, 0.5, 0.25, 0.0], [0.9, 0.1, 0.0]], ids=len)
def test_custom_timesteps(config, timesteps):
    pipeline_loop(config, {"timesteps": timesteps}, seed=1)


def test_add_noise():
    for config in CONFIGS:
        ref, ours = diffusers.DDPMWuerstchenScheduler(**config), DDPMWuerstchenScheduler(**config)
        x0, noise = initial_sample(1), initial_sample(2)
        t = np.array([0.9, 0.01], dtype=np.float32)
        want = ref.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), torch.from_numpy(t))
        assert _rel(ours.add_noise(x0, noise, t), want) <= RTOL


def test_return_dict_false_and_output():
    s = DDPMWuerstchenScheduler()
    s.set_timesteps(4)
    x = initial_sample()
    t = np.full(2, s.timesteps[0], dtype=np.float32)
    out = s.step(model_fn(x, t), t, x, generator=TorchGenerator(0))
    tup = s.step(model_fn(x, t), t, x, generator=TorchGenerator(0), return_dict=False)
    assert isinstance(tup, tuple) and len(tup) == 1
    np.testing.assert_array_equal(tup[0], out.prev_sample)
    assert out.pred_original_sample is None and out.prev_sample.dtype == np.float32
    assert s.scale_model_input(x, t) is x
    public = lambda c: {k: v for k, v in c.items() if not k.startswith("_")}  # noqa: E731
    assert public(s.config) == public(diffusers.DDPMWuerstchenScheduler().config)


def test_bad_input():
    s = DDPMWuerstchenScheduler()
    x = initial_sample()
    with pytest.raises(SchedulerNotReadyError, match="set_timesteps"):
        s.step(x, np.ones(2, np.float32), x)
    with pytest.raises(ValueError, match="exactly one"):
        s.set_timesteps(5, timesteps=[1.0, 0.0])
    with pytest.raises(ValueError, match="descending"):
        s.set_timesteps(timesteps=[0.0, 1.0])
    with pytest.raises(ValueError, match="at least 2"):
        s.set_timesteps(timesteps=[1.0])
    s.set_timesteps(3)
    with pytest.raises(ValueError, match="last scheduled time"):
        s.step(x, np.zeros(2, np.float32), x)
