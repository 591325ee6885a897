"""LCMScheduler: numpy vs diffusers over its config grid, noise between steps included."""

import itertools
import logging

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.lcm  # noqa: F401  (registers LCMScheduler)
from edge_sched.random import TorchGenerator
from edge_sched.schedulers import scheduler_class

from .harness import RTOL, check_parity, initial_sample, model_fn, record, run_reference, self_drift

NAME = "LCMScheduler"
STEPS = (1, 2, 3, 10, 25, 50)  # at most original_inference_steps (50)

GRID = [
    dict(prediction_type=p, **post)
    for p, post in itertools.product(
        ("epsilon", "v_prediction", "sample"),
        ({}, {"clip_sample": True}, {"clip_sample": True, "clip_sample_range": 2.5},
         {"thresholding": True, "sample_max_value": 3.0}),
    )
]
EXTRA = [
    dict(beta_schedule="linear", beta_start=0.0001, beta_end=0.02),
    dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction"),
    dict(rescale_betas_zero_snr=True, prediction_type="v_prediction"),
    dict(set_alpha_to_one=False),
    dict(timestep_scaling=1.0),
    dict(timestep_scaling=0.37, prediction_type="v_prediction"),
    dict(thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=1.5, prediction_type="sample"),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100, original_inference_steps=50),
]


def _ids(c):
    return ",".join(f"{k}={v}" for k, v in c.items())[:80] or "default"


def _chaotic(config, steps):
    # With the stand-in model, epsilon prediction divides by sqrt(abar_t) every step and the
    # samples grow (|x| ~ 200 after 50 steps): the loop amplifies one-ulp differences, and the
    # noise drawn between steps carries some (edge_sched.random's float32 normals are within one
    # ulp of torch's). test_epsilon_loop_amplifies_one_ulp shows the amplification.
    return config.get("prediction_type", "epsilon") == "epsilon" and steps >= 25


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID + EXTRA, ids=_ids)
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps}, seed=steps, chaotic=_chaotic(config, steps))


def test_epsilon_loop_amplifies_one_ulp():
    # diffusers against itself, starting sample moved by one ulp (~1.2e-7 relative here)
    drift = self_drift(run_reference, NAME, {}, {"num_inference_steps": 50}, seed=50)
    assert drift > 10 * 1.2e-7, drift
    steady = self_drift(run_reference, NAME, {"prediction_type": "v_prediction"}, {"num_inference_steps": 50}, seed=50)
    assert steady < drift / 10, (steady, drift)


@pytest.mark.parametrize("orig,steps", [(4, 4), (8, 1), (8, 3), (8, 8), (10, 10), (100, 25), (100, 100), (1000, 50)])
def test_original_inference_steps(orig, steps):
    check_parity(NAME, {}, {"num_inference_steps": steps, "original_inference_steps": orig})
    check_parity(NAME, {"original_inference_steps": orig}, {"num_inference_steps": steps})


@pytest.mark.parametrize("strength,steps", [(0.5, 4), (0.5, 25), (0.3, 15), (0.75, 3), (0.02, 1)])
def test_strength(strength, steps):
    check_parity(NAME, {}, {"num_inference_steps": steps, "strength": strength})


@pytest.mark.parametrize("timesteps,strength", [
    ([999, 759, 499, 259], 1.0),
    ([999, 879, 759, 639, 519, 399, 279, 159, 39], 1.0),
    ([999, 500, 3], 1.0),  # off the distillation schedule (warns)
    ([799, 499, 199], 1.0),  # first timestep is not T - 1 (warns)
    ([999, 759, 499, 259], 0.5),  # image-to-image: the last step is noised too (num_inference_steps = 4)
    ([999, 799, 599, 399, 199, 19], 0.7),
])
def test_custom_timesteps(timesteps, strength):
    check_parity(NAME, {}, {"timesteps": timesteps, "strength": strength})


def _loops(config, set_kwargs, seed=0, generator_list=False):
    """Both schedulers side by side; yields (reference output, our output) per step."""
    ref = diffusers.LCMScheduler.from_config(config)
    ours = scheduler_class(NAME).from_config(config)
    ref.set_timesteps(**set_kwargs)
    ours.set_timesteps(**set_kwargs)
    batch = initial_sample(seed).shape[0]
    if generator_list:
        g_ref = [torch.Generator("cpu").manual_seed(seed + b) for b in range(batch)]
        g_ours = [TorchGenerator(seed + b) for b in range(batch)]
    else:
        g_ref, g_ours = torch.Generator("cpu").manual_seed(seed), TorchGenerator(seed)
    x_ref = torch.from_numpy(initial_sample(seed))
    x_ours = initial_sample(seed)
    for t_ref, t_ours in zip(ref.timesteps, ours.timesteps):
        r = ref.step(torch.from_numpy(model_fn(x_ref.numpy(), t_ref.numpy())), t_ref, x_ref, generator=g_ref)
        o = ours.step(model_fn(x_ours, t_ours), t_ours, x_ours, generator=g_ours)
        yield r, o
        x_ref, x_ours = r.prev_sample, o.prev_sample


def _err(ref, ours):
    ref = ref.numpy()
    assert ours.shape == ref.shape and ours.dtype == ref.dtype.type
    return float(np.abs(ours.astype(np.float64) - ref).max()) / max(1.0, float(np.abs(ref).max()))


@pytest.mark.parametrize("config", GRID[::2] + EXTRA[:4], ids=_ids)
@pytest.mark.parametrize("steps", (2, 10))
def test_denoised_matches(config, steps):
    # the harness compares prev_sample; the consistency output `denoised` is checked here
    worst = 0.0
    for r, o in _loops(config, {"num_inference_steps": steps}, seed=5):
        worst = max(worst, _err(r.denoised, o.denoised), _err(r.prev_sample, o.prev_sample))
        assert o.pred_original_sample is None  # diffusers' LCM output has no such field
    assert worst <= RTOL, worst
    record(NAME, worst)


def test_generator_list_draws_per_batch_item():
    pairs = _loops({}, {"num_inference_steps": 6}, generator_list=True)
    worst = max(_err(r.prev_sample, o.prev_sample) for r, o in pairs)
    assert worst <= RTOL, worst


def test_timesteps_and_attributes_equal_diffusers():
    for config, kwargs in [({}, {"num_inference_steps": 7}), ({}, {"timesteps": [999, 500, 3], "strength": 0.5}),
                           ({"set_alpha_to_one": False, "beta_schedule": "linear"}, {"num_inference_steps": 3})]:
        ref, ours = diffusers.LCMScheduler(**config), scheduler_class(NAME)(**config)
        np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())  # before set_timesteps
        ref.set_timesteps(**kwargs)
        ours.set_timesteps(**kwargs)
        np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
        assert ours.timesteps.dtype == np.int64
        assert ours.num_inference_steps == ref.num_inference_steps
        assert ours.custom_timesteps == ref.custom_timesteps
        assert ours.init_noise_sigma == ref.init_noise_sigma
        np.testing.assert_array_equal(ours.alphas_cumprod, ref.alphas_cumprod.numpy())
        assert np.float32(ours.final_alpha_cumprod) == np.float32(ref.final_alpha_cumprod.item())
        for t in ref.timesteps:
            assert int(ours.previous_timestep(int(t))) == int(ref.previous_timestep(t))
            c_ref = ref.get_scalings_for_boundary_condition_discrete(t)
            c_ours = ours.get_scalings_for_boundary_condition_discrete(t.numpy())
            # c_out = s / sqrt(s^2 + 1/4): torch's float32 sqrt is within one ulp of IEEE's
            # (tests/parity/test_torch_numerics.py)
            np.testing.assert_array_max_ulp(np.float32(c_ours), np.float32([c.item() for c in c_ref]), maxulp=1)


def test_output_indexes_like_diffusers():
    s = scheduler_class(NAME)()
    s.set_timesteps(2)
    x = initial_sample()
    out = s.step(model_fn(x, 999), s.timesteps[0], x, generator=TorchGenerator(0))
    assert out[1] is out.denoised


@pytest.mark.parametrize("kwargs", [
    {"num_inference_steps": 4, "original_inference_steps": 2000},
    {"num_inference_steps": 51},  # more than original_inference_steps * strength
    {"num_inference_steps": 10, "strength": 0.1},
    {"timesteps": [999, 499, 499]},  # not strictly descending
])
def test_bad_set_timesteps_raise_like_diffusers(kwargs):
    with pytest.raises(ValueError):
        diffusers.LCMScheduler().set_timesteps(**kwargs)
    with pytest.raises(ValueError):
        scheduler_class(NAME)().set_timesteps(**kwargs)


def test_more_steps_than_original_is_rejected():
    # only reachable with strength > 1 in diffusers (otherwise the strength check fires first)
    with pytest.raises(ValueError, match="original_inference_steps"):
        scheduler_class(NAME)().set_timesteps(12, original_inference_steps=10, strength=1.5)
    with pytest.raises(ValueError):
        diffusers.LCMScheduler().set_timesteps(12, original_inference_steps=10, strength=1.5)


@pytest.mark.parametrize("timesteps,strength,expected", [
    ([799, 499, 199], 1.0, "first custom timestep"),
    ([999, 500, 3], 1.0, "not on the original"),
    ([999 - 10 * i for i in range(60)], 1.0, "more than original_inference_steps"),
])
def test_custom_timestep_warnings(caplog, timesteps, strength, expected):
    with caplog.at_level(logging.WARNING):
        diffusers.LCMScheduler().set_timesteps(timesteps=timesteps, strength=strength)
    assert caplog.records, "diffusers warns here too"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edge_sched"):
        scheduler_class(NAME)().set_timesteps(timesteps=timesteps, strength=strength)
    assert expected in caplog.text
