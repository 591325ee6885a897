"""CMStochasticIterativeScheduler: numpy vs diffusers over its config grid (the harness loop:
scale_model_input, step with the seeded generator), custom timesteps, add_noise, errors."""

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.cm_stochastic_iterative  # noqa: F401  registers CMStochasticIterativeScheduler
from edge_sched.random import TorchGenerator
from edge_sched.schedulers.cm_stochastic_iterative import CMStochasticIterativeScheduler

from .harness import RTOL, check_parity, initial_sample, model_fn, record

NAME = "CMStochasticIterativeScheduler"
STEPS = (1, 2, 3, 10, 25, 40)
CONFIGS = [
    dict(),
    dict(clip_denoised=False),
    dict(s_noise=0.5, rho=5.0),
    dict(num_train_timesteps=151, sigma_max=40.0, sigma_data=1.0),  # a LSUN-style discretisation
    dict(num_train_timesteps=18, sigma_min=0.01, clip_denoised=False),
]


# more steps than the model's discretisation is an error (test_bad_input), not a grid case
CASES = [(c, n) for c in CONFIGS for n in STEPS if n <= c.get("num_train_timesteps", 40)]


@pytest.mark.parametrize("config, steps", CASES, ids=str)
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps}, seed=steps)


@pytest.mark.parametrize("timesteps", [[22, 0], [39, 22, 0], [17, 5], [0]], ids=str)
@pytest.mark.parametrize("config", CONFIGS[:2], ids=str)
def test_custom_timesteps(config, timesteps):
    check_parity(NAME, config, {"timesteps": timesteps}, seed=7)


def test_without_set_timesteps_float64_sigmas():
    # before set_timesteps the tables are float64 (no sigma_min appended); diffusers steps with them
    ref, ours = diffusers.CMStochasticIterativeScheduler(), CMStochasticIterativeScheduler()
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    np.testing.assert_array_equal(ours.sigmas, ref.sigmas.numpy())
    gen, ref_gen = TorchGenerator(4), torch.Generator().manual_seed(4)
    x = initial_sample(4) * np.float32(80)
    xr = torch.from_numpy(x)
    worst = 0.0
    for t, tr in zip(ours.timesteps, ref.timesteps):
        inp, inp_r = ours.scale_model_input(x, t), ref.scale_model_input(xr, tr)
        assert inp.dtype == inp_r.numpy().dtype == np.float32
        out = ours.step(model_fn(inp, t), t, x, generator=gen).prev_sample
        res = ref.step(torch.from_numpy(model_fn(inp_r.numpy(), tr.numpy())), tr, xr, generator=ref_gen).prev_sample
        assert out.dtype == res.numpy().dtype
        worst = max(worst, float(np.abs(out - res.numpy()).max()) / max(1.0, float(res.abs().max())))
        x, xr = out, res
    assert worst <= RTOL
    record(NAME, worst)


def test_scalings_match():
    ref, ours = diffusers.CMStochasticIterativeScheduler(), CMStochasticIterativeScheduler()
    sigma = np.float32(3.7)
    for method in ("get_scalings", "get_scalings_for_boundary_condition"):
        want = getattr(ref, method)(torch.tensor(sigma))
        got = getattr(ours, method)(sigma)
        np.testing.assert_allclose(np.array(got, dtype=np.float32), torch.stack(want).numpy(), rtol=1e-7)
