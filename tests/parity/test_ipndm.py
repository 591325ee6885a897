"""IPNDMScheduler: numpy vs diffusers."""

import numpy as np
import pytest

import diffusers
import edge_sched.schedulers.ipndm  # noqa: F401  (registers IPNDMScheduler)
from edge_sched.schedulers import scheduler_class

from .harness import RTOL, check_parity

NAME = "IPNDMScheduler"
STEPS = (1, 2, 3, 4, 5, 10, 25, 50, 200)


@pytest.mark.parametrize("steps", STEPS)
def test_default(steps):
    check_parity(NAME, {}, {"num_inference_steps": steps})


@pytest.mark.parametrize("steps", (3, 10))
def test_trained_betas(steps):
    # diffusers uses trained_betas as the per-step sigmas: n + 1 values in [0, 1]
    betas = list(np.linspace(0.999, 0.0, steps + 1) ** 1.5)
    check_parity(NAME, {"trained_betas": betas, "num_train_timesteps": 100}, {"num_inference_steps": steps})


def test_schedule_before_and_after_set_timesteps():
    ref, ours = diffusers.IPNDMScheduler(), scheduler_class(NAME)()
    np.testing.assert_allclose(ours.timesteps, ref.timesteps.numpy(), rtol=RTOL, atol=RTOL)
    for n in (1, 7, 50):
        ref.set_timesteps(n)
        ours.set_timesteps(n)
        assert ours.timesteps.dtype == np.float32 and len(ours.timesteps) == n
        np.testing.assert_allclose(ours.timesteps, ref.timesteps.numpy(), rtol=RTOL, atol=RTOL)
        np.testing.assert_allclose(ours.betas, ref.betas.numpy(), rtol=RTOL, atol=RTOL)
        np.testing.assert_allclose(ours.alphas, ref.alphas.numpy(), rtol=RTOL, atol=RTOL)


def test_trained_betas_are_the_sigmas_so_one_per_step_and_one_more():
    with pytest.raises(ValueError, match="trained_betas"):
        scheduler_class(NAME)(trained_betas=[0.5])
