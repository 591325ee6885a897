"""Ancestral Euler sampler (k-diffusion's sample_euler_ancestral, eta = 1).

diffusers: EulerAncestralDiscreteScheduler. One model call and one fresh noise draw per step:
    sigma_up   = sqrt(s_next^2 (s^2 - s_next^2) / s^2),   sigma_down = sqrt(s_next^2 - sigma_up^2)
    x0 = f(model_output, x, s),   d = (x - x0) / s
    x_next = x + d (sigma_down - s) + sigma_up * z,   z ~ N(0, I)
"""

from __future__ import annotations

import numpy as np

from ..random import randn_tensor
from .base import KARRAS_COMPATIBLES
from .errors import NotSupportedError, check_choice
from .prediction import PREDICTION_TYPES, to_d, x0_at_sigma
from .sigma_discrete import _SigmaDiscreteScheduler


class EulerAncestralDiscreteScheduler(_SigmaDiscreteScheduler):
    _compatibles = KARRAS_COMPATIBLES
    order = 1

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        prediction_type: str = "epsilon",
        timestep_spacing: str = "linspace",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
    ) -> None:
        check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        self._init_training_schedule(
            num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, rescale_betas_zero_snr
        )
        # float64 timesteps until set_timesteps, as in diffusers
        self._set_schedule(np.arange(num_train_timesteps - 1, -1, -1, dtype=np.float64), self._training_sigmas())
        self.num_inference_steps = None

    def _set_schedule(self, timesteps: np.ndarray, sigmas: np.ndarray) -> None:
        self.timesteps = timesteps
        self._set_sigmas(sigmas)
        # per-step constants of the ancestral split, in float32 as torch computes them
        s, s_next = self.sigmas[:-1], self.sigmas[1:]
        s2, s_next2 = s * s, s_next * s_next
        self._sigma_up = np.sqrt(s_next2 * (s2 - s_next2) / s2)
        self._dt = np.sqrt(s_next2 - self._sigma_up * self._sigma_up) - s  # sigma_down - sigma

    def set_timesteps(self, num_inference_steps: int, device=None):
        """Plan ``num_inference_steps`` steps with the configured spacing."""
        num_inference_steps = self._check_num_inference_steps(num_inference_steps)
        steps, sigmas = self._plan_sigmas(self._spaced_timesteps(num_inference_steps), num_inference_steps)
        self.num_inference_steps = num_inference_steps
        self._set_schedule(np.asarray(steps, dtype=np.float32), sigmas)

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None, return_dict: bool = True):
        self._require_timesteps()
        self._reject_integer_timestep(timestep)
        if self._step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        sigma = self.sigmas[i]
        sample = np.asarray(sample, dtype=np.float32)

        if self.config.prediction_type == "sample":
            raise NotSupportedError("EulerAncestralDiscreteScheduler: prediction_type 'sample' is not implemented.")
        x0 = x0_at_sigma(self.config.prediction_type, model_output, sample, sigma)
        prev_sample = sample + to_d(sample, x0, sigma) * self._dt[i]
        noise = randn_tensor(model_output.shape, generator=generator, dtype=model_output.dtype)
        prev_sample = (prev_sample + noise * self._sigma_up[i]).astype(model_output.dtype, copy=False)
        self._step_index += 1
        return self._output(prev_sample, x0, return_dict)


__all__ = ["EulerAncestralDiscreteScheduler"]
