"""Denoising diffusion probabilistic models (Ho et al. 2020), ancestral sampling.

diffusers: DDPMScheduler. With abar_t the cumulative alpha at timestep t, t' the next
(smaller) scheduled timestep (abar_{t'} = 1 past the end), alpha_t = abar_t / abar_{t'} and
beta_t = 1 - alpha_t, one model call per step:
    x0     = f(model_output, x_t)                       (then clipped or thresholded)
    mean   = sqrt(abar_{t'}) beta_t / (1 - abar_t) * x0
             + sqrt(alpha_t) (1 - abar_{t'}) / (1 - abar_t) * x_t          (eq. 7)
    x_{t'} = mean + std_t * z,   z ~ N(0, I) drawn only when t > 0
with the posterior variance var_t = (1 - abar_{t'}) / (1 - abar_t) * beta_t and std_t chosen
by ``variance_type``: sqrt(var_t) ("fixed_small"), sqrt(beta_t) ("fixed_large"), or learned
by the model (Nichol & Dhariwal 2021: "learned" = a variance, "learned_range" = an
interpolation v between log var_t and log beta_t), the model output then having twice the
sample's channels.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..random import randn_tensor
from .base import KARRAS_COMPATIBLES, SchedulerMixin
from .betas import alphas_cumprod_of, make_betas, rescale_zero_terminal_snr
from .errors import check_choice
from .noising import add_noise_at_timesteps, velocity_at_timesteps
from .prediction import PREDICTION_TYPES, clip_predicted_x0, predicted_x0
from .spacing import check_table_range, spaced_timesteps
from .torch_numerics import f32_log

DDPM_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")
VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range")

_F32 = np.float32


def posterior_coefficients(alphas_cumprod: np.ndarray, timesteps, prev_timesteps, betas: np.ndarray | None = None):
    """float32 constants of the step t -> t' for each pair (abar_{t'} = 1 where t' < 0):
    (sqrt(abar_t), sqrt(1 - abar_t), x0 coefficient, x_t coefficient, var_t, beta_t) of eq. 7.

    With ``betas`` (Karlo / unCLIP's variant) a step to the adjacent timestep t' = t - 1 takes
    beta_t from the table and alpha_t = 1 - beta_t; other steps beta_t = 1 - abar_t / abar_{t'}
    and alpha_t = 1 - beta_t (DDPM: alpha_t = abar_t / abar_{t'}, beta_t = 1 - alpha_t)."""
    abar = alphas_cumprod
    t = np.asarray(timesteps)
    prev = np.asarray(prev_timesteps)
    abar_t = abar[t]
    abar_prev = np.where(prev >= 0, abar[np.maximum(prev, 0)], _F32(1)).astype(_F32)
    beta_prod_t = _F32(1) - abar_t
    beta_prod_prev = _F32(1) - abar_prev
    if betas is None:
        alpha_t = abar_t / abar_prev
        beta_t = _F32(1) - alpha_t
    else:
        adjacent = prev == t - 1
        beta_t = np.where(adjacent, betas[t], _F32(1) - abar_t / abar_prev).astype(_F32)
        alpha_t = (_F32(1) - beta_t).astype(_F32)
    x0_coeff = np.sqrt(abar_prev) * beta_t / beta_prod_t
    sample_coeff = np.sqrt(alpha_t) * beta_prod_prev / beta_prod_t
    var = beta_prod_prev / beta_prod_t * beta_t
    return np.sqrt(abar_t), np.sqrt(beta_prod_t), x0_coeff, sample_coeff, var, beta_t


class DDPMScheduler(SchedulerMixin):
    _compatibles = KARRAS_COMPATIBLES
    order = 1

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"] = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        variance_type: Literal[
            "fixed_small",
            "fixed_small_log",
            "fixed_large",
            "fixed_large_log",
            "learned",
            "learned_range",
        ] = "fixed_small",
        clip_sample: bool = True,
        prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        clip_sample_range: float = 1.0,
        sample_max_value: float = 1.0,
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "leading",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
    ):
        if trained_betas is None:
            check_choice("beta_schedule", beta_schedule, DDPM_BETA_SCHEDULES)
        check_choice("variance_type", variance_type, VARIANCE_TYPES)
        check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        if rescale_betas_zero_snr:
            betas = rescale_zero_terminal_snr(betas)
        self.betas = betas
        self.alphas = (1.0 - betas).astype(_F32)
        self.alphas_cumprod = alphas_cumprod_of(betas)
        self.variance_type = variance_type
        self.custom_timesteps = False
        self.num_inference_steps = None
        # without set_timesteps, DDPM walks every training timestep (t -> t - 1)
        self._plan(np.arange(num_train_timesteps - 1, -1, -1, dtype=np.int64))

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        """DDPM feeds the sample to the model unscaled."""
        return sample

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, timesteps: list[int] | None = None):
        """Plan ``num_inference_steps`` steps (config spacing), or custom descending integer ``timesteps``."""
        cfg = self.config
        self._check_custom_schedule(num_inference_steps, timesteps)
        if timesteps is not None:
            steps = self._check_descending("timesteps", timesteps)
            if steps[0] >= cfg.num_train_timesteps:
                raise ValueError(
                    f"custom timesteps must start below num_train_timesteps ({cfg.num_train_timesteps}), "
                    f"got {int(steps[0])}."
                )
            self.custom_timesteps = True
            self.num_inference_steps = len(steps)
        else:
            self._check_num_inference_steps(num_inference_steps)
            steps = spaced_timesteps(cfg.timestep_spacing, num_inference_steps, cfg.num_train_timesteps,
                                     cfg.steps_offset)
            check_table_range(steps, cfg.num_train_timesteps, cfg.timestep_spacing, cfg.steps_offset)
            self.custom_timesteps = False
            self.num_inference_steps = num_inference_steps
        self._plan(steps.astype(np.int64))

    def _plan(self, timesteps: np.ndarray) -> None:
        """Per-step float32 constants, one entry per position in ``timesteps``."""
        self.timesteps = timesteps
        prev = np.append(timesteps[1:], -1)
        coeffs = posterior_coefficients(self.alphas_cumprod, timesteps, prev)
        self._sqrt_abar, self._sqrt_one_minus_abar, self._x0_coeff, self._sample_coeff, var, beta_t = coeffs
        var = np.maximum(var, _F32(1e-20))
        self._log_var, self._log_beta = f32_log(var), f32_log(beta_t)
        with np.errstate(invalid="ignore"):  # fixed_large_log takes sqrt(log beta) < 0: NaN, as diffusers
            self._noise_std = {
                "fixed_small": np.sqrt(var),
                "fixed_small_log": np.exp(_F32(0.5) * self._log_var).astype(_F32),
                "fixed_large": np.sqrt(beta_t),
                "fixed_large_log": np.sqrt(self._log_beta),
            }.get(self.variance_type)

    def _position(self, timestep) -> int:
        t = np.asarray(timestep).item()
        hits = np.flatnonzero(self.timesteps == t)
        if len(hits) == 0:
            raise ValueError(f"timestep {t!r} is not in this scheduler's timesteps {self.timesteps!r}.")
        return int(hits[0])

    def step(
        self,
        model_output: np.ndarray,
        timestep,
        sample: np.ndarray,
        generator=None,
        return_dict: bool = True,
    ):
        """One ancestral step from ``timestep`` to the next scheduled one."""
        i = self._position(timestep)
        kind = self.variance_type
        predicted_variance = None
        if kind in ("learned", "learned_range"):
            if model_output.shape[1] != sample.shape[1] * 2:
                raise ValueError(
                    f"variance_type={kind!r} needs a model output with twice the sample's channels "
                    f"({2 * sample.shape[1]}), got shape {model_output.shape}."
                )
            model_output, predicted_variance = np.split(model_output, 2, axis=1)

        x0 = predicted_x0(
            self.config.prediction_type, model_output, sample, self._sqrt_abar[i], self._sqrt_one_minus_abar[i]
        )
        x0 = clip_predicted_x0(x0, self.config)
        prev_sample = self._x0_coeff[i] * x0 + self._sample_coeff[i] * sample

        if self.timesteps[i] > 0:
            noise = randn_tensor(model_output.shape, generator=generator, dtype=model_output.dtype)
            if kind == "learned":
                with np.errstate(invalid="ignore"):
                    std = predicted_variance**0.5
            elif kind == "learned_range":
                frac = (predicted_variance + 1) / 2
                log_var = frac * self._log_beta[i] + (1 - frac) * self._log_var[i]
                std = np.exp(_F32(0.5) * log_var)
            else:
                std = self._noise_std[i]
            prev_sample = prev_sample + std * noise
        return self._output(prev_sample, x0, return_dict)

    def previous_timestep(self, timestep) -> int:
        """The scheduled timestep after ``timestep`` (-1 after the last one)."""
        i = self._position(timestep)
        return int(self.timesteps[i + 1]) if i + 1 < len(self.timesteps) else -1

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
        return add_noise_at_timesteps(self.alphas_cumprod, original_samples, noise, timesteps)

    def get_velocity(self, sample: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """v = sqrt(abar_t) noise - sqrt(1 - abar_t) sample."""
        return velocity_at_timesteps(self.alphas_cumprod, sample, noise, timesteps)
