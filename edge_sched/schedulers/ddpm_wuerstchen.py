"""DDPM in continuous time with Würstchen's shifted cosine schedule (Pernias et al. 2023).

diffusers: DDPMWuerstchenScheduler. Time runs from 1 (noise) to 0 (data), float32 throughout:
    abar(t) = clamp(cos((u + s) / (1 + s) * pi / 2)^2 / cos(s / (1 + s) * pi / 2)^2, 1e-4, 0.9999)
with u = 1 - (1 - t)^scaler (scaler > 1), t^scaler (scaler < 1), else t. One model call (eps)
per step from t to the next scheduled t' (alpha = abar(t) / abar(t')):
    x_{t'} = alpha^(-1/2) (x_t - (1 - alpha) / sqrt(1 - abar(t)) eps)
             + sqrt((1 - alpha) (1 - abar(t')) / (1 - abar(t))) z     (z dropped when t' = 0)
z is drawn at every step (also the last), as diffusers draws it. ``timestep`` is one time per
batch item (a 1-D array), as the Würstchen pipelines pass it; the schedule ends with 0, which
is a target, never stepped from.
"""

from __future__ import annotations

import numpy as np

from ..random import randn_tensor
from .base import SchedulerMixin, expand_to
from .torch_numerics import linspace_f32

_F32 = np.float32


class DDPMWuerstchenScheduler(SchedulerMixin):
    def __init__(self, scaler: float = 1.0, s: float = 0.008):
        self.scaler = scaler
        self.s = _F32(s)
        self._init_alpha_cumprod = self._cos_squared(_F32(0))
        self.num_inference_steps = None
        self.timesteps = None

    def _cos_squared(self, u):
        s = self.s  # torch: ((u + s) / (1 + s) * pi) * 0.5, every operation in float32
        return np.cos((u + s) / (_F32(1) + s) * _F32(np.pi) * _F32(0.5)).astype(_F32) ** 2

    def _alpha_cumprod(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=_F32)
        if self.scaler > 1:
            t = _F32(1) - (_F32(1) - t) ** _F32(self.scaler)
        elif self.scaler < 1:
            t = t ** _F32(self.scaler)
        return np.clip(self._cos_squared(t) / self._init_alpha_cumprod, _F32(0.0001), _F32(0.9999)).astype(_F32)

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        """Würstchen feeds the sample to the model unscaled."""
        return sample

    def set_timesteps(self, num_inference_steps: int | None = None, timesteps: list[float] | None = None, device=None):
        """``num_inference_steps`` + 1 times evenly from 1 to 0, or custom ``timesteps`` (float32)."""
        self._check_custom_schedule(num_inference_steps, timesteps)
        if timesteps is not None:
            steps = self._check_descending("timesteps", timesteps).astype(_F32)
            if steps.size < 2:
                raise ValueError(f"custom timesteps need at least 2 values (the last is the target), got {timesteps!r}.")
        else:
            self._check_num_inference_steps(num_inference_steps, allow_more_than_train=True)
            steps = linspace_f32(1.0, 0.0, num_inference_steps + 1)
        self.timesteps = steps
        self.num_inference_steps = len(steps) - 1

    def previous_timestep(self, timestep) -> np.ndarray:
        """The scheduled time after the nearest scheduled time to ``timestep[0]``, per batch item."""
        t = np.atleast_1d(np.asarray(timestep, dtype=_F32))
        index = int(np.abs(self.timesteps - t[0]).argmin())
        if index + 1 >= len(self.timesteps):
            raise ValueError(f"timestep {float(t[0])} is the last scheduled time (the target): nothing to step to.")
        return np.full(t.shape[0], self.timesteps[index + 1], dtype=_F32)

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None, return_dict: bool = True):
        """One ancestral step from ``timestep`` (one time per batch item) to the next scheduled time."""
        self._require_timesteps()
        t = np.atleast_1d(np.asarray(timestep, dtype=_F32))
        prev_t = self.previous_timestep(t)
        nd = sample.ndim
        abar = expand_to(self._alpha_cumprod(t), nd)
        abar_prev = expand_to(self._alpha_cumprod(prev_t), nd)
        alpha = abar / abar_prev
        mu = np.sqrt(_F32(1) / alpha) * (sample - (_F32(1) - alpha) * model_output / np.sqrt(_F32(1) - abar))
        noise = randn_tensor(mu.shape, generator=generator, dtype=model_output.dtype)
        std = np.sqrt((_F32(1) - alpha) * (_F32(1) - abar_prev) / (_F32(1) - abar)) * noise
        prev_sample = mu + std * expand_to((prev_t != 0).astype(_F32), nd)
        return self._output(prev_sample.astype(model_output.dtype, copy=False), None, return_dict)

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """x_t = sqrt(abar(t)) x0 + sqrt(1 - abar(t)) noise, one time per batch item."""
        abar = expand_to(self._alpha_cumprod(np.atleast_1d(timesteps)), original_samples.ndim)
        return (np.sqrt(abar) * original_samples + np.sqrt(_F32(1) - abar) * noise).astype(original_samples.dtype)
