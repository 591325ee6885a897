"""DDPMParallelScheduler: step at parity (the DDPM loop, noise from the generator), and
batch_step_no_noise side by side with diffusers over many (sample, timestep) pairs at once."""

import itertools

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.ddpm_parallel  # noqa: F401  registers DDPMParallelScheduler
from edge_sched.schedulers.ddpm_parallel import DDPMParallelScheduler

from .harness import RTOL, check_parity, initial_sample, model_fn, record

NAME = "DDPMParallelScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
STEPS = (1, 2, 3, 10, 25, 50)

GRID = [
    dict(SD, prediction_type=p, timestep_spacing=s, clip_sample=p != "v_prediction")
    for p, s in itertools.product(("epsilon", "v_prediction", "sample"), ("linspace", "leading", "trailing"))
]
EXTRA = [
    dict(SD, variance_type="fixed_small_log"),
    dict(SD, variance_type="fixed_large", timestep_spacing="trailing"),
    dict(SD, thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=2.5),
    dict(SD, steps_offset=1),
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


def test_step_custom_timesteps():
    check_parity(NAME, SD, {"timesteps": [999, 800, 500, 250, 60, 3]})


def batch_model(x, t):
    return np.concatenate([model_fn(x[i : i + 1], t[i]) for i in range(len(t))])


def learned_range_batch_model(x, t):
    return np.concatenate([batch_model(x, t), np.tanh(1.5 * x - 0.2).astype(np.float32)], axis=1)


def compare_batch(config, set_kwargs, timesteps, seed=0, model=batch_model):
    ref, ours = diffusers.DDPMParallelScheduler(**config), DDPMParallelScheduler(**config)
    if set_kwargs is not None:
        ref.set_timesteps(**set_kwargs)
        ours.set_timesteps(**set_kwargs)
    t = np.asarray(timesteps, dtype=np.int64)
    x = initial_sample(seed, (len(t), 4, 8, 8))
    out = model(x, t)
    want = ref.batch_step_no_noise(torch.from_numpy(out), torch.from_numpy(t), torch.from_numpy(x)).numpy()
    got = ours.batch_step_no_noise(out, t, x)
    assert got.shape == want.shape and got.dtype == want.dtype
    err = float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max()))
    assert err <= RTOL, f"{config} {set_kwargs}: batched step error {err:.3g}"
    record(f"{NAME}.batch_step_no_noise", err)
    return err


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID + EXTRA, ids=_ids)
def test_batch_step_no_noise_over_the_schedule(config, steps):
    s = DDPMParallelScheduler(**config)
    s.set_timesteps(steps)
    compare_batch(config, {"num_inference_steps": steps}, s.timesteps)


@pytest.mark.parametrize("config", [dict(SD), dict(SD, prediction_type="v_prediction", clip_sample=False),
                                    dict(SD, thresholding=True)], ids=_ids)
def test_batch_step_no_noise_any_timesteps(config):
    t = [999, 0, 17, 500, 500, 3, 42, 998]
    compare_batch(config, {"num_inference_steps": 20}, t, seed=2)
    compare_batch(config, {"timesteps": [900, 650, 300, 40]}, t, seed=3)  # t' = t - 1 (stride kept)
    compare_batch(config, None, t, seed=4)  # before set_timesteps: t' = t - 1


def test_custom_timesteps_keep_the_previous_stride():
    # diffusers leaves num_inference_steps alone on set_timesteps(timesteps=...): the stride of
    # the batched step stays that of the last num_inference_steps
    ref, ours = diffusers.DDPMParallelScheduler(**SD), DDPMParallelScheduler(**SD)
    t = np.array([999, 500, 60, 7])
    x = initial_sample(7, (4, 4, 8, 8))
    out = batch_model(x, t)
    for kwargs in ({"num_inference_steps": 8}, {"timesteps": [900, 650, 300, 40]}, {"num_inference_steps": 50}):
        ref.set_timesteps(**kwargs)
        ours.set_timesteps(**kwargs)
        want = ref.batch_step_no_noise(torch.from_numpy(out), torch.from_numpy(t), torch.from_numpy(x)).numpy()
        got = ours.batch_step_no_noise(out, t, x)
        err = float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max()))
        assert err <= RTOL, (kwargs, err)


def test_batch_step_no_noise_learned_variance_is_dropped():
    config = dict(SD, variance_type="learned_range")
    compare_batch(config, {"num_inference_steps": 10}, [901, 501, 101, 1], model=learned_range_batch_model)


def test_batch_step_agrees_with_step_without_noise():
    s = DDPMParallelScheduler(**SD)
    s.set_timesteps(10)
    x = initial_sample(1, (len(s.timesteps), 4, 8, 8))
    out = batch_model(x, s.timesteps)
    batched = s.batch_step_no_noise(out, s.timesteps, x)
    # step adds noise except at t = 0 (the last of this schedule), where the two must agree
    i, t = len(s.timesteps) - 1, s.timesteps[-1]
    assert t == 0
    one = s.step(out[i : i + 1], t, x[i : i + 1]).prev_sample
    np.testing.assert_allclose(batched[i : i + 1], one, rtol=0, atol=1e-6)


def test_bad_batch_step_input():
    s = DDPMParallelScheduler()
    x = initial_sample()
    with pytest.raises(ValueError, match="one timestep per batch item"):
        s.batch_step_no_noise(x, np.array([10, 20, 30]), x)
    with pytest.raises(ValueError, match="1000"):
        s.batch_step_no_noise(x, np.array([-1, 1000]), x)
