"""The DDPM variant of Karlo's unCLIP (Ramesh et al. 2022, kakaobrain's Karlo).

diffusers: UnCLIPScheduler. DDPM ancestral sampling (eq. 7, ddpm.posterior_coefficients) with
three differences: timesteps round(i * (T - 1) / (n - 1)) reach both T - 1 and 0; ``step``
takes the target ``prev_timestep`` (default t - 1), and beta_t comes from the beta table
only when stepping to t - 1 (else 1 - abar_t / abar_{t'}); the learned-range variance
interpolates log var_t (unclamped) and log beta_t. Noise std for t > 0:
    fixed_small_log: sqrt(max(var_t, 1e-20))      learned_range: exp(v log beta_t + (1 - v) log var_t) ** 0.5
with v = (model variance output + 1) / 2 and var_t = (1 - abar_{t'}) / (1 - abar_t) * beta_t.
"""

from __future__ import annotations

import numpy as np

from ..random import randn_tensor
from .base import SchedulerMixin
from .betas import alphas_cumprod_of, make_betas
from .ddpm import posterior_coefficients
from .errors import check_choice
from .noising import add_noise_at_timesteps
from .prediction import clip_predicted_x0, predicted_x0

UNCLIP_VARIANCE_TYPES = ("fixed_small_log", "learned_range")
_F32 = np.float32


class UnCLIPScheduler(SchedulerMixin):
    order = 1

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        variance_type: str = "fixed_small_log",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        prediction_type: str = "epsilon",
        beta_schedule: str = "squaredcos_cap_v2",
    ):
        check_choice("beta_schedule", beta_schedule, ("squaredcos_cap_v2",))
        check_choice("variance_type", variance_type, UNCLIP_VARIANCE_TYPES)
        check_choice("prediction_type", prediction_type, ("epsilon", "sample"))
        self.betas = make_betas(num_train_timesteps, 0.0, 0.0, beta_schedule)
        self.alphas = (1.0 - self.betas).astype(_F32)
        self.alphas_cumprod = alphas_cumprod_of(self.betas)
        self.variance_type = variance_type
        self.num_inference_steps = None
        self.timesteps = np.arange(num_train_timesteps - 1, -1, -1, dtype=np.int64)

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        """unCLIP feeds the sample to the model unscaled."""
        return sample

    def set_timesteps(self, num_inference_steps: int, device=None):
        """``num_inference_steps`` (>= 2) timesteps round(i (T - 1) / (n - 1)), descending, from T - 1 to 0."""
        self._check_num_inference_steps(num_inference_steps, allow_more_than_train=True)
        if num_inference_steps < 2:
            raise ValueError(
                f"UnCLIPScheduler needs num_inference_steps >= 2 (its timesteps run from "
                f"{self.config.num_train_timesteps - 1} down to 0), got {num_inference_steps}."
            )
        self.num_inference_steps = num_inference_steps
        step_ratio = (self.config.num_train_timesteps - 1) / (num_inference_steps - 1)
        self.timesteps = (np.arange(0, num_inference_steps) * step_ratio).round()[::-1].astype(np.int64)

    def step(
        self,
        model_output: np.ndarray,
        timestep,
        sample: np.ndarray,
        prev_timestep=None,
        generator=None,
        return_dict: bool = True,
    ):
        """One ancestral step from ``timestep`` to ``prev_timestep`` (default ``timestep - 1``)."""
        t = int(np.asarray(timestep).item())
        prev = t - 1 if prev_timestep is None else int(np.asarray(prev_timestep).item())
        predicted_variance = None
        if self.variance_type == "learned_range" and model_output.shape[1] == 2 * sample.shape[1]:
            model_output, predicted_variance = np.split(model_output, 2, axis=1)
        sqrt_abar, sqrt_one_minus_abar, x0_coeff, sample_coeff, var, beta = (
            c[0] for c in posterior_coefficients(self.alphas_cumprod, [t], [prev], betas=self.betas)
        )
        x0 = predicted_x0(self.config.prediction_type, model_output, sample, sqrt_abar, sqrt_one_minus_abar)
        x0 = clip_predicted_x0(x0, self.config)
        prev_sample = x0_coeff * x0 + sample_coeff * sample
        if t > 0:
            noise = randn_tensor(model_output.shape, generator=generator, dtype=model_output.dtype)
            with np.errstate(divide="ignore", invalid="ignore"):
                if self.variance_type == "fixed_small_log":
                    std = np.exp(_F32(0.5) * np.log(np.maximum(var, _F32(1e-20))))
                else:
                    if predicted_variance is None:
                        raise ValueError(
                            "variance_type='learned_range' needs a model output with twice the sample's channels "
                            f"({2 * sample.shape[1]}), got shape {model_output.shape}."
                        )
                    frac = (predicted_variance + 1) / 2
                    std = np.exp(_F32(0.5) * (frac * np.log(beta) + (1 - frac) * np.log(var)))
            prev_sample = prev_sample + std * noise
        return self._output(prev_sample, x0, return_dict)

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
        return add_noise_at_timesteps(self.alphas_cumprod, original_samples, noise, timesteps)
