"""DDPM for parallel sampling (ParaDiGMS, Shih et al. 2023).

diffusers: DDPMParallelScheduler. ``step`` and everything else is DDPMScheduler's (same config,
same eq. 7). Added: ``batch_step_no_noise``, the posterior mean of many (sample, timestep) pairs
at once, each from its timestep t to t' = t - num_train_timesteps // num_inference_steps
(abar_{t'} = 1 for t' < 0), without noise: parallel samplers draw it ahead of time. As in
diffusers, t' ignores the scheduled timesteps, and custom ``timesteps=`` leave the stride as it
was (the last ``num_inference_steps`` given, or 1 before any).
"""

from __future__ import annotations

import numpy as np

from .base import expand_to
from .ddpm import DDPMScheduler, posterior_coefficients
from .prediction import clip_predicted_x0, predicted_x0


class DDPMParallelScheduler(DDPMScheduler):
    _stride_steps: int | None = None  # diffusers' num_inference_steps, which custom timesteps leave alone

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, timesteps: list[int] | None = None):
        stride_steps = num_inference_steps if timesteps is None else self._stride_steps
        super().set_timesteps(num_inference_steps, device, timesteps)
        self._stride_steps = stride_steps

    def batch_step_no_noise(self, model_output: np.ndarray, timesteps: np.ndarray, sample: np.ndarray) -> np.ndarray:
        """Noise-free DDPM step of a batch whose item i sits at ``timesteps[i]``."""
        n_train = self.config.num_train_timesteps
        t = np.asarray(timesteps).astype(np.int64).reshape(-1)
        if t.shape[0] != model_output.shape[0]:
            raise ValueError(
                f"batch_step_no_noise needs one timestep per batch item: got {t.shape[0]} timesteps for a "
                f"model output of shape {model_output.shape}."
            )
        if t.size and (t.min() < 0 or t.max() >= n_train):
            raise ValueError(f"timesteps must lie in [0, {n_train}), got {t.tolist()}.")
        if self.variance_type in ("learned", "learned_range") and model_output.shape[1] == 2 * sample.shape[1]:
            model_output = model_output[:, : sample.shape[1]]  # the predicted variance is not needed without noise
        prev = t - n_train // (self._stride_steps or n_train)
        nd = model_output.ndim
        sqrt_abar, sqrt_one_minus_abar, x0_coeff, sample_coeff, _, _ = (
            expand_to(c, nd) for c in posterior_coefficients(self.alphas_cumprod, t, prev)
        )
        x0 = predicted_x0(self.config.prediction_type, model_output, sample, sqrt_abar, sqrt_one_minus_abar)
        x0 = clip_predicted_x0(x0, self.config)
        return x0_coeff * x0 + sample_coeff * sample
