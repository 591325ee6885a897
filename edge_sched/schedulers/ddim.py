"""Denoising diffusion implicit models (Song et al. 2021), eq. 12.

diffusers: DDIMScheduler. With abar_t the cumulative alpha at timestep t and
t' = t - num_train_timesteps // num_inference_steps (abar_{t'} = final_alpha_cumprod when
t' < 0; note t' ignores the timestep spacing, as in diffusers), one model call per step:
    (x0, eps) = f(model_output, x_t)                    (x0 then clipped or thresholded)
    sigma_t   = eta * sqrt((1 - abar_{t'}) / (1 - abar_t) * (1 - abar_t / abar_{t'}))
    x_{t'}    = sqrt(abar_{t'}) x0 + sqrt(1 - abar_{t'} - sigma_t^2) eps + sigma_t z
eta = 0 is the deterministic DDIM sampler, eta = 1 ancestral DDPM; z ~ N(0, I) comes from
the generator (or ``variance_noise``) only when eta > 0.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..random import randn_tensor
from .base import KARRAS_COMPATIBLES, SchedulerMixin
from .betas import betas_and_alphas_cumprod
from .errors import check_choice
from .noising import add_noise_at_timesteps, velocity_at_timesteps
from .prediction import PREDICTION_TYPES, clip_predicted_x0, predicted_eps, predicted_x0_and_eps
from .spacing import check_table_range, spaced_timesteps

# beta schedules the DDIM family (DDIM, DDIMInverse, PNDM) implements in diffusers

_F32 = np.float32


class DDIMScheduler(SchedulerMixin):
    noise_kind = "with eta > 0"  # for the `edge-sched schedulers` table
    _compatibles = KARRAS_COMPATIBLES
    order = 1

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        clip_sample: bool = True,
        set_alpha_to_one: bool = True,
        steps_offset: int = 0,
        prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        clip_sample_range: float = 1.0,
        sample_max_value: float = 1.0,
        timestep_spacing: Literal["leading", "trailing", "linspace"] = "leading",
        rescale_betas_zero_snr: bool = False,
    ):
        check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        self.betas, self.alphas_cumprod = betas_and_alphas_cumprod(self.config)
        self.alphas = (1.0 - self.betas).astype(_F32)
        # the "previous" alpha of the last step: 1 (a clean x0) or abar_0
        self.final_alpha_cumprod = _F32(1.0) if set_alpha_to_one else self.alphas_cumprod[0]
        self.num_inference_steps = None
        self.timesteps = np.arange(num_train_timesteps - 1, -1, -1, dtype=np.int64)

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        """DDIM feeds the sample to the model unscaled."""
        return sample

    def set_timesteps(self, num_inference_steps: int, device=None):
        """Plan ``num_inference_steps`` steps with the config's timestep spacing."""
        cfg = self.config
        self._check_num_inference_steps(num_inference_steps)
        self.num_inference_steps = num_inference_steps
        self.timesteps = spaced_timesteps(
            cfg.timestep_spacing, num_inference_steps, cfg.num_train_timesteps, cfg.steps_offset
        ).astype(np.int64)
        check_table_range(self.timesteps, cfg.num_train_timesteps, cfg.timestep_spacing, cfg.steps_offset)
        # float32 constants for every training timestep t, with t' = t - ratio
        n_train = cfg.num_train_timesteps
        t = np.arange(n_train)
        prev = t - n_train // num_inference_steps
        abar_t = self.alphas_cumprod
        abar_prev = np.where(prev >= 0, abar_t[np.maximum(prev, 0)], self.final_alpha_cumprod).astype(_F32)
        beta_prod_t = _F32(1) - abar_t
        self._sqrt_abar = np.sqrt(abar_t)
        self._sqrt_one_minus_abar = np.sqrt(beta_prod_t)
        self._sqrt_abar_prev = np.sqrt(abar_prev)
        self._one_minus_abar_prev = _F32(1) - abar_prev
        with np.errstate(invalid="ignore", divide="ignore"):
            variance = self._one_minus_abar_prev / beta_prod_t * (_F32(1) - abar_t / abar_prev)
            self._sqrt_variance = np.sqrt(variance)

    def step(
        self,
        model_output: np.ndarray,
        timestep,
        sample: np.ndarray,
        eta: float = 0.0,
        use_clipped_model_output: bool = False,
        generator=None,
        variance_noise: np.ndarray | None = None,
        return_dict: bool = True,
    ):
        """One DDIM step from ``timestep`` to ``timestep - num_train_timesteps // num_inference_steps``."""
        self._require_timesteps()
        t = int(np.asarray(timestep).item())
        std = _F32(eta) * self._sqrt_variance[t]
        prev_sample, x0 = self._update(
            model_output, sample, self._sqrt_abar[t], self._sqrt_one_minus_abar[t], self._sqrt_abar_prev[t],
            self._one_minus_abar_prev[t], std, use_clipped_model_output,
        )
        if eta > 0:
            if variance_noise is not None and generator is not None:
                raise ValueError("Pass either `generator` or `variance_noise` to DDIMScheduler.step, not both.")
            if variance_noise is None:
                variance_noise = randn_tensor(model_output.shape, generator=generator, dtype=model_output.dtype)
            prev_sample = prev_sample + std * variance_noise
        return self._output(prev_sample, x0, return_dict)

    def _update(self, model_output, sample, sqrt_abar, sqrt_one_minus_abar, sqrt_abar_prev, one_minus_abar_prev,
                std, use_clipped_model_output):
        """Eq. 12 without the noise term: (x_{t'} - sigma_t z, x0). The coefficients are scalars
        (``step``) or arrays broadcasting over the batch (DDIMParallelScheduler's batched step)."""
        x0, eps = predicted_x0_and_eps(self.config.prediction_type, model_output, sample, sqrt_abar,
                                       sqrt_one_minus_abar)
        x0 = clip_predicted_x0(x0, self.config)
        if use_clipped_model_output:
            # re-derive eps from the clipped x0 (what DDIM's "clipped" model would have said)
            eps = predicted_eps("sample", x0, sample, sqrt_abar, sqrt_one_minus_abar)
        direction = np.sqrt(one_minus_abar_prev - std * std) * eps
        return sqrt_abar_prev * x0 + direction, x0

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
        return add_noise_at_timesteps(self.alphas_cumprod, original_samples, noise, timesteps)

    def get_velocity(self, sample: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """v = sqrt(abar_t) noise - sqrt(1 - abar_t) sample."""
        return velocity_at_timesteps(self.alphas_cumprod, sample, noise, timesteps)
