"""DDIMParallelScheduler: step at parity (the DDIM loop), and batch_step_no_noise side by side
with diffusers over many (sample, timestep) pairs at once."""

import itertools

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.ddim_parallel  # noqa: F401  registers DDIMParallelScheduler
from edge_sched.schedulers import SchedulerNotReadyError
from edge_sched.schedulers.ddim_parallel import DDIMParallelScheduler

from .harness import RTOL, check_parity, initial_sample, model_fn, record

NAME = "DDIMParallelScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
STEPS = (1, 2, 3, 10, 25, 50)

GRID = [
    dict(SD, prediction_type=p, timestep_spacing=s, set_alpha_to_one=one, clip_sample=False)
    for p, s, one in itertools.product(("epsilon", "v_prediction", "sample"), ("leading", "trailing"), (True, False))
]
EXTRA = [
    dict(SD),  # clip_sample=True
    dict(SD, thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=2.5),
    dict(SD, steps_offset=1, set_alpha_to_one=False, clip_sample=False, timestep_spacing="linspace"),
    dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="v_prediction",
         clip_sample=False),
    dict(beta_schedule="squaredcos_cap_v2", clip_sample=False),
]


def _ids(c):
    return ",".join(f"{k}={v}" for k, v in c.items())[:80] or "defaults"


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID + EXTRA, ids=_ids)
def test_step(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


@pytest.mark.parametrize("steps", (1, 10))
def test_step_eta_noise(steps):
    check_parity(NAME, dict(SD, clip_sample=False), {"num_inference_steps": steps}, {"eta": 1.0}, seed=3)


def batch_model(x, t):
    """model_fn per batch item, each at its own timestep."""
    return np.concatenate([model_fn(x[i : i + 1], t[i]) for i in range(len(t))])


def compare_batch(config, steps, timesteps, step_kwargs=None, seed=0):
    """One batched call on both sides; returns the relative error (asserted <= RTOL)."""
    ref, ours = diffusers.DDIMParallelScheduler(**config), DDIMParallelScheduler(**config)
    ref.set_timesteps(steps)
    ours.set_timesteps(steps)
    t = np.asarray(timesteps, dtype=np.int64)
    x = initial_sample(seed, (len(t), 4, 8, 8))
    out = batch_model(x, t)
    want = ref.batch_step_no_noise(torch.from_numpy(out), torch.from_numpy(t), torch.from_numpy(x),
                                   **(step_kwargs or {})).numpy()
    got = ours.batch_step_no_noise(out, t, x, **(step_kwargs or {}))
    assert got.shape == want.shape and got.dtype == want.dtype
    err = float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max()))
    assert err <= RTOL, f"{config} steps={steps}: batched step error {err:.3g}"
    record(f"{NAME}.batch_step_no_noise", err)
    return err


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID + EXTRA, ids=_ids)
def test_batch_step_no_noise_over_the_schedule(config, steps):
    # every scheduled timestep in one batch, including the last ones (t' < 0: abar = 1 there)
    s = DDIMParallelScheduler(**config)
    s.set_timesteps(steps)
    compare_batch(config, steps, s.timesteps)


@pytest.mark.parametrize("config", [dict(SD), dict(SD, set_alpha_to_one=False, clip_sample=False),
                                    dict(SD, prediction_type="sample", clip_sample_range=0.5)], ids=_ids)
def test_batch_step_no_noise_clipped_model_output_and_any_timesteps(config):
    # the batch need not sit on the schedule: any training timesteps, repeated ones too
    t = [999, 0, 17, 500, 500, 3, 42, 998]
    compare_batch(config, 20, t, {"use_clipped_model_output": True}, seed=2)
    compare_batch(config, 7, t, seed=5)


def test_batch_step_agrees_with_step_where_both_apply():
    s = DDIMParallelScheduler(**SD)
    s.set_timesteps(10)
    x = initial_sample(1, (len(s.timesteps), 4, 8, 8))
    out = batch_model(x, s.timesteps)
    batched = s.batch_step_no_noise(out, s.timesteps, x)
    for i, t in enumerate(s.timesteps):
        one = s.step(out[i : i + 1], t, x[i : i + 1]).prev_sample
        np.testing.assert_allclose(batched[i : i + 1], one, rtol=0, atol=1e-6)


def test_bad_batch_step_input():
    s = DDIMParallelScheduler()
    x = initial_sample()
    with pytest.raises(SchedulerNotReadyError, match="set_timesteps"):
        s.batch_step_no_noise(x, np.array([10, 20]), x)
    s.set_timesteps(10)
    with pytest.raises(ValueError, match="eta must be 0.0"):
        s.batch_step_no_noise(x, np.array([10, 20]), x, eta=0.5)
    with pytest.raises(ValueError, match="one timestep per batch item"):
        s.batch_step_no_noise(x, np.array([10, 20, 30]), x)
    with pytest.raises(ValueError, match="1000"):
        s.batch_step_no_noise(x, np.array([10, 1000]), x)
