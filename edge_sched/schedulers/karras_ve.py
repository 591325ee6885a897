"""Karras et al. 2022 ("Elucidating the Design Space...", Algorithm 2): the stochastic
second-order sampler for variance-exploding models.

diffusers: KarrasVeScheduler (deprecated there; kept for old pipelines). The pipeline drives it:
with the geometric schedule sigma_i^2 = sigma_max^2 (sigma_min^2 / sigma_max^2)^(i / (n - 1)),
``schedule[t]`` for t = n - 1 ... 0 (``schedule`` holds sigma^2 values, used as sigmas, as in
diffusers), each step is
    add_noise_to_input: gamma = min(s_churn / n, sqrt(2) - 1) if s_min <= sigma <= s_max else 0,
                        sigma_hat = sigma (1 + gamma),  x_hat = x + sqrt(sigma_hat^2 - sigma^2) s_noise z
    step:               d = (x_hat - x0) / sigma_hat with x0 = x_hat + sigma_hat D,  x' = x_hat + (sigma' - sigma_hat) d
    step_correct:       d' = (x' - x0') / sigma',  x' = x_hat + (sigma' - sigma_hat) (d + d') / 2
where D is the model output. Scalar arithmetic happens in the scalars' own precision
(float32 for the schedule's values, float64 for Python floats) and meets the float32 latents
as float32, as torch does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..random import randn_tensor
from .base import SchedulerMixin, SchedulerOutput

_F32 = np.float32


@dataclass
class KarrasVeOutput(SchedulerOutput):
    """``prev_sample``, ``derivative`` (d, needed by ``step_correct``) and ``pred_original_sample``;
    ``out[1]`` is ``derivative`` as in diffusers."""

    derivative: np.ndarray | None = None

    def to_tuple(self) -> tuple:
        values = (self.prev_sample, self.derivative, self.pred_original_sample)
        return tuple(v for v in values if v is not None)


def _scalar(value):
    """A sigma as torch would hold it: a float32 scalar if it came from a float32 table (a 0-d
    tensor there), else a Python float (weakly typed, in numpy as in torch)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    value = np.asarray(value)
    if value.size != 1:
        raise ValueError(f"expected a single sigma, got an array of shape {value.shape}.")
    return value.reshape(()).astype(_F32 if value.dtype == _F32 else np.float64)[()]


class KarrasVeScheduler(SchedulerMixin):
    noise_kind = "with s_churn > 0"  # for the `edge-sched schedulers` table
    order = 2

    def __init__(
        self,
        sigma_min: float = 0.02,
        sigma_max: float = 100,
        s_noise: float = 1.007,
        s_churn: float = 80,
        s_min: float = 0.05,
        s_max: float = 50,
    ):
        self.init_noise_sigma = sigma_max
        self.num_inference_steps = None
        self.timesteps = None
        self.schedule = None

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        """The Karras VE sampler feeds the sample to the model unscaled."""
        return sample

    def set_timesteps(self, num_inference_steps: int, device=None):
        """Timesteps n - 1 ... 0 and ``schedule[i]`` = sigma_max^2 (sigma_min^2 / sigma_max^2)^(i / (n - 1))."""
        if self._check_num_inference_steps(num_inference_steps, allow_more_than_train=True) < 2:
            raise ValueError(f"num_inference_steps must be an int >= 2 (the schedule interpolates between two "
                             f"sigmas), got {num_inference_steps!r}.")
        cfg = self.config
        self.num_inference_steps = int(num_inference_steps)
        self.timesteps = np.arange(num_inference_steps - 1, -1, -1, dtype=np.int64)
        # torch: a float32 power of a float32 base, times sigma_max^2 in float32
        exponent = self.timesteps.astype(_F32) / _F32(num_inference_steps - 1)
        base = _F32(cfg.sigma_min**2 / cfg.sigma_max**2)
        power = (np.float64(base) ** exponent.astype(np.float64)).astype(_F32)
        self.schedule = (_F32(cfg.sigma_max**2) * power).astype(_F32)

    def add_noise_to_input(self, sample: np.ndarray, sigma, generator=None):
        """Churn: raise the noise level from ``sigma`` to sigma_hat with fresh noise; returns (x_hat, sigma_hat)."""
        self._require_timesteps()
        cfg = self.config
        sigma = _scalar(sigma)
        gamma = min(cfg.s_churn / self.num_inference_steps, 2**0.5 - 1) if cfg.s_min <= sigma <= cfg.s_max else 0
        eps = _F32(cfg.s_noise) * randn_tensor(sample.shape, generator=generator)
        sigma_hat = sigma + gamma * sigma
        var = sigma_hat**2 - sigma**2
        sample_hat = sample + _F32(np.sqrt(var) if isinstance(var, np.generic) else var**0.5) * eps
        return sample_hat, sigma_hat

    def step(self, model_output: np.ndarray, sigma_hat, sigma_prev, sample_hat: np.ndarray, return_dict: bool = True):
        """Euler step from sigma_hat to ``sigma_prev``."""
        sigma_hat, sigma_prev = _scalar(sigma_hat), _scalar(sigma_prev)
        x0 = sample_hat + _F32(sigma_hat) * model_output
        derivative = (sample_hat - x0) / _F32(sigma_hat)
        prev_sample = sample_hat + _F32(sigma_prev - sigma_hat) * derivative
        if not return_dict:
            return prev_sample, derivative
        return KarrasVeOutput(prev_sample=prev_sample, derivative=derivative, pred_original_sample=x0)

    def step_correct(self, model_output: np.ndarray, sigma_hat, sigma_prev, sample_hat: np.ndarray,
                     sample_prev: np.ndarray, derivative: np.ndarray, return_dict: bool = True):
        """Heun correction with the model output at (``sample_prev``, ``sigma_prev``)."""
        sigma_hat, sigma_prev = _scalar(sigma_hat), _scalar(sigma_prev)
        x0 = sample_prev + _F32(sigma_prev) * model_output
        derivative_corr = (sample_prev - x0) / _F32(sigma_prev)
        half = _F32(0.5)
        prev_sample = sample_hat + _F32(sigma_prev - sigma_hat) * (half * derivative + half * derivative_corr)
        if not return_dict:
            return prev_sample, derivative
        return KarrasVeOutput(prev_sample=prev_sample, derivative=derivative, pred_original_sample=x0)

    def add_noise(self, original_samples, noise, timesteps):
        raise NotImplementedError("KarrasVeScheduler has no add_noise (diffusers neither).")
