"""The shared schedule math, against torch and diffusers directly."""

import numpy as np
import pytest
import scipy.stats
import torch

import diffusers
from diffusers.schedulers import scheduling_ddpm, scheduling_euler_discrete, scheduling_utils
from edge_sched.schedulers import AysSchedules
from edge_sched.schedulers.betas import BETA_SCHEDULES, alphas_cumprod_of, make_betas, rescale_zero_terminal_snr
from edge_sched.schedulers.sigmas import beta_ppf, sigma_to_t
from edge_sched.schedulers.torch_numerics import cumprod_f32, linspace_f32

from .harness import ieee_sqrt_in_torch


@pytest.mark.parametrize("start,end,steps", [
    (0.0001, 0.02, 1000), (0.00085**0.5, 0.012**0.5, 1000), (-6, 6, 1000), (0.1, 0.2, 1), (0.0, 1.0, 2),
    (-3.2, 2.7, 11), (float(np.log(0.029)), float(np.log(14.6)), 26), (0.0, 1.0, 51),
])
def test_linspace_f32_is_torch_linspace_bit_for_bit(start, end, steps):
    ref = torch.linspace(start, end, steps, dtype=torch.float32).numpy()
    np.testing.assert_array_equal(linspace_f32(start, end, steps), ref)


def test_cumprod_f32_is_torch_cumprod_bit_for_bit():
    values = (1 - torch.linspace(0.0001, 0.02, 1000)).to(torch.float32)
    np.testing.assert_array_equal(cumprod_f32(values.numpy()), torch.cumprod(values, 0).numpy())


@pytest.mark.parametrize("schedule", BETA_SCHEDULES)
@pytest.mark.parametrize("n", [1000, 37])
def test_betas_and_alphas_cumprod_match_ddpm(schedule, n):
    ref = diffusers.DDPMScheduler(num_train_timesteps=n, beta_schedule=schedule) if schedule != "exp" else None
    ours = make_betas(n, 0.0001, 0.02, schedule)
    if ref is None:  # only some diffusers schedulers accept "exp"; compare with the function itself
        expected = scheduling_euler_discrete.betas_for_alpha_bar(n, alpha_transform_type="exp").numpy()
        np.testing.assert_array_equal(ours, expected)
        return
    np.testing.assert_allclose(ours, ref.betas.numpy(), rtol=1e-6, atol=0)
    np.testing.assert_allclose(alphas_cumprod_of(ours), ref.alphas_cumprod.numpy(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_betas_bit_exact_for_common_schedules(schedule):
    ref = diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule=schedule)
    ours = make_betas(1000, 0.00085, 0.012, schedule)
    np.testing.assert_array_equal(ours, ref.betas.numpy())
    np.testing.assert_array_equal(alphas_cumprod_of(ours), ref.alphas_cumprod.numpy())


def test_zero_snr_rescale_matches():
    betas = make_betas(1000, 0.00085, 0.012, "scaled_linear")
    ours = rescale_zero_terminal_snr(betas)
    # bit for bit against diffusers' rescale once torch's sqrt is correctly rounded (stock torch:
    # see the zero-SNR cases of the parity loops, which bound the effect of torch's sqrt)
    with ieee_sqrt_in_torch():
        ref_ieee = scheduling_ddpm.rescale_zero_terminal_snr(torch.from_numpy(betas)).numpy()
    np.testing.assert_array_equal(ours, ref_ieee)
    assert alphas_cumprod_of(ours)[-1] == pytest.approx(0.0, abs=1e-7)


def test_unknown_beta_schedule_names_value_and_choices():
    with pytest.raises(ValueError, match=r"'cubic'.*'linear'.*'scaled_linear'"):
        make_betas(10, 0.1, 0.2, "cubic")


def test_ays_table_equals_diffusers():
    assert AysSchedules == scheduling_utils.AysSchedules


def test_beta_ppf_matches_scipy():
    qs = np.linspace(0, 1, 101)
    ours = np.array([beta_ppf(q, 0.6, 0.6) for q in qs])
    np.testing.assert_allclose(ours, scipy.stats.beta.ppf(qs, 0.6, 0.6), rtol=0, atol=1e-12)


def test_sigma_to_t_matches_diffusers_elementwise():
    ref = diffusers.EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    log_sigmas = np.log(np.array(((1 - ref.alphas_cumprod) / ref.alphas_cumprod) ** 0.5))
    sigmas = np.geomspace(14.6, 0.03, 40)
    expected = np.array([ref._sigma_to_t(s, log_sigmas) for s in sigmas])
    np.testing.assert_array_equal(sigma_to_t(sigmas, log_sigmas), expected)
    sigmas32 = sigmas.astype(np.float32)
    expected32 = np.array([ref._sigma_to_t(s, log_sigmas) for s in sigmas32])
    np.testing.assert_array_equal(sigma_to_t(sigmas32, log_sigmas), expected32)
