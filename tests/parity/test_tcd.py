"""TCDScheduler: numpy vs diffusers over its config grid, noise between steps included."""

import itertools

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.tcd  # noqa: F401  (registers TCDScheduler)
from edge_sched.random import TorchGenerator
from edge_sched.schedulers import scheduler_class

from .harness import RTOL, check_parity, initial_sample, model_fn, record

NAME = "TCDScheduler"
STEPS = (1, 2, 3, 10, 25, 50)  # at most original_inference_steps (50)

GRID = [
    dict(prediction_type=p, **extra)
    for p, extra in itertools.product(
        ("epsilon", "v_prediction", "sample"),
        ({}, {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02}, {"rescale_betas_zero_snr": True}),
    )
]
EXTRA = [
    dict(beta_schedule="squaredcos_cap_v2"),
    dict(set_alpha_to_one=False),
    dict(clip_sample=True, thresholding=True),  # carried by the config, unused by TCD's step (as in diffusers)
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100, original_inference_steps=50),
]
ETAS = (0.0, 0.3, 1.0)


def _ids(c):
    return ",".join(f"{k}={v}" for k, v in c.items())[:80] or "default"


@pytest.mark.parametrize("eta", ETAS)
@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID + EXTRA, ids=_ids)
def test_grid(config, steps, eta):
    check_parity(NAME, config, {"num_inference_steps": steps}, {"eta": eta}, seed=steps)


@pytest.mark.parametrize("orig,steps", [(4, 4), (8, 3), (100, 25), (1000, 50)])
def test_original_inference_steps(orig, steps):
    check_parity(NAME, {}, {"num_inference_steps": steps, "original_inference_steps": orig})
    check_parity(NAME, {"original_inference_steps": orig}, {"num_inference_steps": steps})


@pytest.mark.parametrize("strength,steps", [(0.5, 4), (0.3, 15), (0.75, 3)])
def test_strength(strength, steps):
    check_parity(NAME, {}, {"num_inference_steps": steps, "strength": strength})
    check_parity(NAME, {}, {"num_inference_steps": steps, "strength": strength, "original_inference_steps": 40})


@pytest.mark.parametrize("timesteps,strength", [([999, 759, 499, 259], 1.0), ([999, 500, 3], 1.0),
                                                ([999, 879, 759, 639, 519, 399, 279, 159, 39], 0.5)])
def test_custom_timesteps(timesteps, strength):
    check_parity(NAME, {}, {"timesteps": timesteps, "strength": strength}, {"eta": 0.5})


def test_pred_noised_sample_and_return_dict_false():
    ref, ours = diffusers.TCDScheduler(), scheduler_class(NAME)()
    ref.set_timesteps(4)
    ours.set_timesteps(4)
    gen_ref, gen_ours = torch.Generator().manual_seed(1), TorchGenerator(1)
    x_ref = x_ours = initial_sample(1)
    for t_ref, t_ours in zip(ref.timesteps, ours.timesteps):
        x_t = torch.from_numpy(np.asarray(x_ref))
        r = ref.step(torch.from_numpy(model_fn(x_t.numpy(), t_ref.numpy())), t_ref, x_t, generator=gen_ref,
                     return_dict=False)
        o = ours.step(model_fn(x_ours, t_ours), t_ours, x_ours, generator=gen_ours, return_dict=False)
        assert isinstance(o, tuple) and len(o) == 2
        for a, b in zip(o, r):
            err = np.abs(a - b.numpy()).max() / max(1.0, np.abs(b.numpy()).max())
            assert err <= RTOL, err
            record(NAME, err)
        x_ref, x_ours = r[0].numpy(), o[0]


def test_bad_input():
    s = scheduler_class(NAME)()
    s.set_timesteps(4)
    x = initial_sample(0)
    ref = diffusers.TCDScheduler()
    ref.set_timesteps(4)
    with pytest.raises(AssertionError):  # diffusers asserts
        ref.step(torch.from_numpy(x), ref.timesteps[0], torch.from_numpy(x), eta=1.5)
    with pytest.raises(ValueError, match="eta"):
        s.step(x, s.timesteps[0], x, eta=1.5)
    for kwargs, match in (({"num_inference_steps": 60}, "original_inference_steps"),
                          ({"num_inference_steps": 60, "original_inference_steps": 50}, "original_inference_steps")):
        with pytest.raises(ValueError):
            diffusers.TCDScheduler().set_timesteps(**kwargs)
        with pytest.raises(ValueError, match=match):
            scheduler_class(NAME)().set_timesteps(**kwargs)
