"""ScoreSdeVpScheduler: numpy vs diffusers, step_pred over the schedule (one time per batch item,
as a score-SDE sampler calls it), same seed."""

import numpy as np
import pytest
import torch

from diffusers.schedulers.deprecated import ScoreSdeVpScheduler as RefScoreSdeVp
import edge_sched.schedulers.score_sde_vp  # noqa: F401  registers ScoreSdeVpScheduler
from edge_sched.random import TorchGenerator
from edge_sched.schedulers.score_sde_vp import ScoreSdeVpScheduler

from .harness import RTOL, initial_sample, model_fn, record

NAME = "ScoreSdeVpScheduler"
STEPS = (1, 2, 3, 10, 25, 50)
CONFIGS = [dict(), dict(beta_min=0.05, beta_max=10.0), dict(sampling_eps=1e-5), dict(sampling_eps=0.01)]


def _rel(got, want):
    want = want.numpy()
    assert got.shape == want.shape and got.dtype == want.dtype, (got.dtype, want.dtype)
    return float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max()))


def loop(config, steps, seed=0):
    ref, ours = RefScoreSdeVp(**config), ScoreSdeVpScheduler(**config)
    ref.set_timesteps(steps)
    ours.set_timesteps(steps)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    gen, ref_gen = TorchGenerator(seed), torch.Generator("cpu").manual_seed(seed)
    x = initial_sample(seed)
    xr = torch.from_numpy(x)
    worst = 0.0
    for t, tr in zip(ours.timesteps, ref.timesteps):
        tb = np.full(x.shape[0], t, dtype=np.float32)
        x, x_mean = ours.step_pred(model_fn(x, t), x, tb, generator=gen)
        xr, xr_mean = ref.step_pred(torch.from_numpy(model_fn(xr.numpy(), tr.numpy())), xr, tr * torch.ones(xr.shape[0]),
                                    generator=ref_gen)
        worst = max(worst, _rel(x, xr), _rel(x_mean, xr_mean))
    assert worst <= RTOL, f"{config} steps={steps}: worst step error {worst:.3g}"
    record(NAME, worst)
    return worst


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_loop(config, steps):
    loop(config, steps, seed=steps)
