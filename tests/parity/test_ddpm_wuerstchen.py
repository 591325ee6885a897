"""DDPMWuerstchenScheduler: numpy vs diffusers, stepped as the Würstchen pipelines do (every
scheduled time but the final 0, one time per batch item), noise from the same seed."""

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.ddpm_wuerstchen  # noqa: F401  registers DDPMWuerstchenScheduler
from edge_sched.random import TorchGenerator
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


def test_bad_input():
    s = DDPMWuerstchenScheduler()
    x = initial_sample()
    with pytest.raises(ValueError, match="at least 2"):
        s.set_timesteps(timesteps=[1.0])
    s.set_timesteps(3)
    with pytest.raises(ValueError, match="last scheduled time"):
        s.step(x, np.zeros(2, np.float32), x)
