"""Forward-process helpers for schedulers parameterised by alphas_cumprod (DDPM family)."""

from __future__ import annotations

import numpy as np

from .base import expand_to


def _coefficients(alphas_cumprod: np.ndarray, timesteps, like: np.ndarray):
    t = np.atleast_1d(np.asarray(timesteps)).astype(np.int64)
    abar = alphas_cumprod[t].astype(like.dtype)
    return expand_to(abar**0.5, like.ndim), expand_to((1 - abar) ** 0.5, like.ndim)


def add_noise_at_timesteps(alphas_cumprod, original_samples, noise, timesteps) -> np.ndarray:
    """x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * noise, one timestep per batch item."""
    a, s = _coefficients(alphas_cumprod, timesteps, original_samples)
    return a * original_samples + s * noise


def velocity_at_timesteps(alphas_cumprod, sample, noise, timesteps) -> np.ndarray:
    """v = sqrt(abar_t) * noise - sqrt(1 - abar_t) * x0 (Salimans & Ho 2022)."""
    a, s = _coefficients(alphas_cumprod, timesteps, sample)
    return a * noise - s * sample
