"""UnCLIPScheduler: numpy vs diffusers, stepped as the unCLIP pipelines do (prev_timestep = the
next scheduled timestep, None at the end), and as a plain t -> t - 1 loop (the harness)."""

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.unclip  # noqa: F401  registers UnCLIPScheduler
from edge_sched.random import TorchGenerator
from edge_sched.schedulers.unclip import UnCLIPScheduler

from .harness import RTOL, check_parity, initial_sample, model_fn, record

NAME = "UnCLIPScheduler"
STEPS = (2, 3, 10, 25, 50)
CONFIGS = [
    dict(),
    dict(clip_sample=False),
    dict(clip_sample_range=2.0, prediction_type="sample"),
    dict(num_train_timesteps=500),
]


def learned_range_model(x, t):
    return np.concatenate([model_fn(x, t), np.tanh(1.5 * x - 0.2).astype(np.float32)], axis=1)


def _rel(got, want):
    want = want.numpy() if isinstance(want, torch.Tensor) else want
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape, got.dtype, want.dtype)
    if np.array_equal(np.isnan(got), np.isnan(want)) and np.isnan(want).all():
        return 0.0
    return float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max()))


def pipeline_loop(config, steps, model=model_fn, seed=0, pass_prev=True):
    """Both sides, step by step, the way UnCLIPPipeline drives the scheduler."""
    ref, ours = diffusers.UnCLIPScheduler(**config), UnCLIPScheduler(**config)
    ref.set_timesteps(steps)
    ours.set_timesteps(steps)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    assert ours.timesteps.dtype == np.int64
    gen, ref_gen = TorchGenerator(seed), torch.Generator("cpu").manual_seed(seed)
    x = initial_sample(seed)
    xr = torch.from_numpy(x)
    worst = 0.0
    for i, t in enumerate(ours.timesteps):
        prev = (int(ours.timesteps[i + 1]) if i + 1 < len(ours.timesteps) else None) if pass_prev else None
        out = ours.step(model(x, t), t, x, prev_timestep=prev, generator=gen)
        res = ref.step(torch.from_numpy(model(xr.numpy(), t)), ref.timesteps[i], xr, prev_timestep=prev,
                       generator=ref_gen)
        worst = max(worst, _rel(out.prev_sample, res.prev_sample), _rel(out.pred_original_sample,
                                                                          res.pred_original_sample))
        x, xr = out.prev_sample, res.prev_sample
    assert worst <= RTOL, f"{config} steps={steps}: worst step error {worst:.3g}"
    record(NAME, worst)
    return worst


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_pipeline_loop(config, steps):
    pipeline_loop(config, steps)


@pytest.mark.parametrize("steps", (2, 10, 25))
def test_learned_range(steps):
    pipeline_loop(dict(variance_type="learned_range"), steps, model=learned_range_model, seed=3)


@pytest.mark.parametrize("steps", (2, 10))
@pytest.mark.parametrize("config", CONFIGS[:2] + [dict(variance_type="learned_range")], ids=str)
def test_plain_loop_steps_to_t_minus_one(config, steps):
    # no prev_timestep: every step goes t -> t - 1 with the table's beta
    if config.get("variance_type") == "learned_range":
        pipeline_loop(config, steps, model=learned_range_model, pass_prev=False)
    else:
        check_parity(NAME, config, {"num_inference_steps": steps})


def test_default_timesteps_walk_every_training_timestep():
    ref, ours = diffusers.UnCLIPScheduler(), UnCLIPScheduler()
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    x = initial_sample(2)
    xr = torch.from_numpy(x)
    gen, ref_gen = TorchGenerator(2), torch.Generator().manual_seed(2)
    for t in (999, 998, 1, 0):
        out = ours.step(model_fn(x, t), t, x, generator=gen)
        res = ref.step(torch.from_numpy(model_fn(xr.numpy(), t)), t, xr, generator=ref_gen)
        assert _rel(out.prev_sample, res.prev_sample) <= RTOL
        x, xr = out.prev_sample, res.prev_sample


def test_bad_input():
    with pytest.raises(ValueError):
        diffusers.UnCLIPScheduler(beta_schedule="linear")
    with pytest.raises(ValueError, match="beta_schedule 'linear'"):
        UnCLIPScheduler(beta_schedule="linear")
    with pytest.raises(ZeroDivisionError):
        diffusers.UnCLIPScheduler().set_timesteps(1)
    with pytest.raises(ValueError, match="num_inference_steps >= 2"):
        UnCLIPScheduler().set_timesteps(1)
    with pytest.raises(ValueError, match="variance_type 'fixed_small'"):
        UnCLIPScheduler(variance_type="fixed_small")
    with pytest.raises(ValueError, match="prediction_type 'v_prediction'"):
        UnCLIPScheduler(prediction_type="v_prediction")
    s = UnCLIPScheduler(variance_type="learned_range")
    x = initial_sample()
    with pytest.raises(ValueError, match="twice the sample's channels"):
        s.step(x, 10, x, generator=TorchGenerator(0))
