"""Beta schedules: the training noise schedule every discrete-time scheduler starts from.

All tables are float32, built the way diffusers builds them (in torch float32), so that
alphas_cumprod matches the reference bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import check_choice
from .torch_numerics import cumprod_f32, linspace_f32

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "exp", "laplace", "sigmoid")
# what most diffusers schedulers accept (DDIM, PNDM, the multistep solvers, Euler, ...)
COMMON_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
ALPHA_TRANSFORMS = ("cosine", "exp", "laplace")


def _alpha_bar_fn(alpha_transform_type: str):
    check_choice("alpha_transform_type", alpha_transform_type, ALPHA_TRANSFORMS)
    if alpha_transform_type == "cosine":
        return lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    if alpha_transform_type == "exp":
        return lambda t: math.exp(t * -12.0)

    def laplace(t):
        lmb = -0.5 * math.copysign(1, 0.5 - t) * math.log(1 - 2 * math.fabs(0.5 - t) + 1e-6)
        snr = math.exp(lmb)
        return math.sqrt(snr / (1 + snr))

    return laplace


def betas_for_alpha_bar(
    num_diffusion_timesteps: int, max_beta: float = 0.999, alpha_transform_type: str = "cosine"
) -> np.ndarray:
    """Discretise a continuous alpha_bar(t) on [0, 1] into betas, capped at ``max_beta``."""
    alpha_bar = _alpha_bar_fn(alpha_transform_type)
    n = num_diffusion_timesteps
    betas = [min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)]
    return np.array(betas, dtype=np.float32)


# schedules built from beta_start and beta_end (the others are fixed curves)
_RANGE_SCHEDULES = ("linear", "scaled_linear", "sigmoid")


def check_beta_schedule(num_train_timesteps: int, beta_start: float, beta_end: float, beta_schedule: str,
                        trained_betas=None) -> None:
    """Betas a diffusion schedule can have (diffusers checks none of this and fails later with NaN sigmas or
    an index error): 0 <= beta_start <= beta_end < 1 for the schedules built from them; trained betas a
    1-D list of num_train_timesteps values in [0, 1]."""
    from .configuration import ConfigError

    if trained_betas is not None:
        betas = np.asarray(trained_betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size == 0:
            raise ConfigError(f"trained_betas must be a non-empty 1-D list of numbers, got shape {betas.shape}.")
        bad = ~((betas >= 0) & (betas <= 1))
        if bad.any():
            i = int(np.argmax(bad))
            raise ConfigError(f"trained_betas[{i}] = {betas[i]!r}: every beta must be in [0, 1].")
        if betas.size != num_train_timesteps:
            raise ConfigError(f"trained_betas has {betas.size} values but num_train_timesteps is "
                              f"{num_train_timesteps}: give one beta per training timestep.")
        return
    if beta_schedule not in _RANGE_SCHEDULES:
        return
    for name, value in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not np.isfinite(value):
            raise ConfigError(f"{name}={value!r} must be a finite number.")
    if beta_start < 0:
        raise ConfigError(f"beta_start={beta_start!r} must not be negative (a beta is a noise variance).")
    if beta_end >= 1:
        raise ConfigError(f"beta_end={beta_end!r} must be below 1: alpha = 1 - beta would be 0 or negative and "
                          "every later sigma infinite or NaN.")
    if beta_start > beta_end:
        raise ConfigError(f"beta_start={beta_start!r} is larger than beta_end={beta_end!r}; the noise grows over the "
                          "training timesteps (beta_start <= beta_end).")


def make_betas(
    num_train_timesteps: int,
    beta_start: float,
    beta_end: float,
    beta_schedule: str,
    trained_betas=None,
) -> np.ndarray:
    """The float32 beta table of a scheduler config (``trained_betas`` wins when given)."""
    if trained_betas is None:
        check_choice("beta_schedule", beta_schedule, BETA_SCHEDULES)
    check_beta_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
    if trained_betas is not None:
        return np.asarray(trained_betas, dtype=np.float32)
    n = num_train_timesteps
    if beta_schedule == "linear":
        return linspace_f32(beta_start, beta_end, n)
    if beta_schedule == "scaled_linear":
        return linspace_f32(beta_start**0.5, beta_end**0.5, n) ** 2
    if beta_schedule == "squaredcos_cap_v2":
        return betas_for_alpha_bar(n)
    if beta_schedule == "exp":
        return betas_for_alpha_bar(n, alpha_transform_type="exp")
    if beta_schedule == "laplace":
        return betas_for_alpha_bar(n, alpha_transform_type="laplace")
    # sigmoid (GeoDiff): float32 sigmoid of a float32 ramp
    ramp = linspace_f32(-6, 6, n)
    sig = (1.0 / (1.0 + np.exp(-ramp.astype(np.float64)))).astype(np.float32)
    return (sig * np.float32(beta_end - beta_start) + np.float32(beta_start)).astype(np.float32)


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Rescale betas so the last timestep has zero SNR (Lin et al. 2023, Algorithm 1)."""
    alphas_bar_sqrt = np.sqrt(cumprod_f32(1.0 - betas))
    first, last = alphas_bar_sqrt[0], alphas_bar_sqrt[-1]
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * (first / (first - last))
    alphas_bar = alphas_bar_sqrt**2
    alphas = np.concatenate([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])
    return (1 - alphas).astype(np.float32)


def alphas_cumprod_of(betas: np.ndarray) -> np.ndarray:
    """Cumulative product of (1 - beta), as torch computes it."""
    return cumprod_f32(1.0 - betas)


def sigmas_of(alphas_cumprod: np.ndarray) -> np.ndarray:
    """Karras-style noise levels sigma_t = sqrt((1 - abar_t) / abar_t), ascending in t."""
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


def betas_and_alphas_cumprod(config, schedules=COMMON_BETA_SCHEDULES) -> tuple[np.ndarray, np.ndarray]:
    """(betas, alphas_cumprod) of a scheduler config: its beta schedule (one of ``schedules``
    unless ``trained_betas`` is given), zero-SNR rescaled when the config asks for it."""
    if config.trained_betas is None:
        check_choice("beta_schedule", config.beta_schedule, schedules)
    betas = make_betas(
        config.num_train_timesteps, config.beta_start, config.beta_end, config.beta_schedule, config.trained_betas
    )
    if getattr(config, "rescale_betas_zero_snr", False):
        betas = rescale_zero_terminal_snr(betas)
    return betas, alphas_cumprod_of(betas)
