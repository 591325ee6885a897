"""Variance-preserving SDE sampling (Song et al. 2021), Euler-Maruyama predictor.

diffusers: ScoreSdeVpScheduler (deprecated there). Linear beta(t) = beta_min + t (beta_max -
beta_min) on continuous times t from 1 to ``sampling_eps`` (float32 linspace); for a score model
given as eps (the network's noise prediction), per step with dt = -1 / n:
    std   = sqrt(1 - exp(-t^2 (beta_max - beta_min) / 2 - t beta_min)),  score = -eps / std
    mean  = x + (-beta(t) x / 2 - beta(t) score) dt
    x'    = mean + sqrt(beta(t)) sqrt(-dt) z
``step_pred`` returns (x', mean); ``t`` is one time per batch item. float32 throughout, as torch.
"""

from __future__ import annotations

import math

import numpy as np

from ..random import randn_tensor
from .base import SchedulerMixin, SchedulerNotReadyError, expand_to
from .torch_numerics import linspace_f32

_F32 = np.float32


class ScoreSdeVpScheduler(SchedulerMixin):
    order = 1

    def __init__(self, num_train_timesteps=2000, beta_min=0.1, beta_max=20, sampling_eps=1e-3):
        self.sigmas = None
        self.discrete_sigmas = None
        self.timesteps = None

    def set_timesteps(self, num_inference_steps: int, device=None):
        """Continuous times from 1 down to ``sampling_eps`` (float32)."""
        self._check_num_inference_steps(num_inference_steps, allow_more_than_train=True)
        self.timesteps = linspace_f32(1.0, self.config.sampling_eps, num_inference_steps)

    def step_pred(self, score: np.ndarray, x: np.ndarray, t, generator=None):
        """One reverse-SDE Euler-Maruyama step at time(s) ``t``; returns (x', mean)."""
        if self.timesteps is None:
            raise SchedulerNotReadyError(
                "ScoreSdeVpScheduler: call `set_timesteps(num_inference_steps)` before `step_pred`.")
        cfg = self.config
        t = np.asarray(t, dtype=_F32)
        span = cfg.beta_max - cfg.beta_min
        log_mean_coeff = _F32(-0.25) * t**2 * _F32(span) - _F32(0.5) * t * _F32(cfg.beta_min)
        # torch's float32 exp is (nearly always) correctly rounded; 1 - exp(.) cancels, so that matters
        std = np.sqrt(_F32(1) - np.exp((_F32(2) * log_mean_coeff).astype(np.float64)).astype(_F32))
        score = -score / expand_to(std.reshape(-1), score.ndim)
        dt = -1.0 / len(self.timesteps)
        beta_t = expand_to((_F32(cfg.beta_min) + t * _F32(span)).reshape(-1), x.ndim)
        drift = _F32(-0.5) * beta_t * x
        diffusion = np.sqrt(beta_t)
        drift = drift - diffusion**2 * score
        x_mean = x + drift * _F32(dt)
        noise = randn_tensor(x.shape, generator=generator, dtype=x.dtype)
        x = x_mean + diffusion * _F32(math.sqrt(-dt)) * noise
        return x, x_mean

    def __len__(self) -> int:
        return self.config.num_train_timesteps
