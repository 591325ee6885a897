"""Sigma schedules and the sigma <-> timestep map, shared by every sigma-based scheduler.

Karras et al. 2022 (rho ramp), exponential (log-linear) ramp, the beta-distribution ramp
of "Beta Sampling is All You Need" (Lee et al. 2024), and Lu et al.'s uniform-lambda ramp.
Each takes the scheduler's own (sigma_min, sigma_max) and returns a descending float64
array of ``num_inference_steps`` values.
"""

from __future__ import annotations

import math

import numpy as np

SIGMA_SCHEDULES = ("karras", "exponential", "beta")


def karras_sigmas(sigma_min: float, sigma_max: float, num_inference_steps: int, rho: float = 7.0) -> np.ndarray:
    ramp = np.linspace(0, 1, num_inference_steps)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho


def karras_sigmas_at(ramp: np.ndarray, sigma_min: float, sigma_max: float, rho: float = 7.0) -> np.ndarray:
    """Karras' rho ramp evaluated at positions ``ramp`` in [0, 1] (0 -> sigma_max), in the
    ramp's dtype (EDM schedulers pass float64 or float32 ramps, as torch does)."""
    ramp = np.asarray(ramp)
    kind = ramp.dtype.type
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    base = kind(max_inv_rho) + ramp * kind(min_inv_rho - max_inv_rho)
    # the power in float64, rounded once: numpy's float32 power is an ulp off for ~1 value in 5
    # (torch's for ~1 in 50), and these sigmas are Brownian-noise query points
    return (base.astype(np.float64) ** float(kind(rho))).astype(kind)


def exponential_sigmas(sigma_min: float, sigma_max: float, num_inference_steps: int) -> np.ndarray:
    return np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), num_inference_steps))


def beta_sigmas(
    sigma_min: float, sigma_max: float, num_inference_steps: int, alpha: float = 0.6, beta: float = 0.6
) -> np.ndarray:
    quantiles = [beta_ppf(q, alpha, beta) for q in 1 - np.linspace(0, 1, num_inference_steps)]
    return np.array([sigma_min + p * (sigma_max - sigma_min) for p in quantiles])


def lu_lambdas(lambda_min: float, lambda_max: float, num_inference_steps: int) -> np.ndarray:
    """Uniform steps in log-SNR lambda (Lu et al., DPM-Solver++; rho = 1)."""
    ramp = np.linspace(0, 1, num_inference_steps)
    return lambda_max + ramp * (lambda_min - lambda_max)


def flow_time_shift(t: np.ndarray, mu: float, kind: str = "exponential", sigma: float = 1.0) -> np.ndarray:
    """Resolution-dependent shift of flow-matching times t in (0, 1] (SD3 / Flux ``mu``):
    e / (e + (1/t - 1)^sigma) with e = exp(mu) ("exponential") or mu ("linear")."""
    e = math.exp(mu) if kind == "exponential" else mu
    with np.errstate(divide="ignore"):
        return e / (e + (1 / t - 1) ** sigma)


def sigma_schedule(kind: str, in_sigmas: np.ndarray, num_inference_steps: int, config) -> np.ndarray:
    """Resample descending ``in_sigmas`` with a named schedule, honouring the config's
    ``sigma_min`` / ``sigma_max`` overrides when the scheduler has them."""
    sigma_min = getattr(config, "sigma_min", None)
    sigma_max = getattr(config, "sigma_max", None)
    sigma_min = float(in_sigmas[-1]) if sigma_min is None else sigma_min
    sigma_max = float(in_sigmas[0]) if sigma_max is None else sigma_max
    ramp = {"karras": karras_sigmas, "exponential": exponential_sigmas, "beta": beta_sigmas}[kind]
    return ramp(sigma_min, sigma_max, num_inference_steps)


def configured_sigma_schedule(config) -> str | None:
    """Which ramp the ``use_*_sigmas`` flags ask for (at most one may be set)."""
    flags = {
        "karras": getattr(config, "use_karras_sigmas", False),
        "exponential": getattr(config, "use_exponential_sigmas", False),
        "beta": getattr(config, "use_beta_sigmas", False),
    }
    chosen = [k for k, on in flags.items() if on]
    if len(chosen) > 1:
        raise ValueError(
            "Only one of `use_karras_sigmas`, `use_exponential_sigmas`, `use_beta_sigmas` can be set; "
            f"got {', '.join(chosen)}."
        )
    return chosen[0] if chosen else None


def sigma_to_t(sigmas: np.ndarray, log_sigmas: np.ndarray) -> np.ndarray:
    """Fractional training timestep of each sigma, by linear interpolation in log-sigma.

    ``log_sigmas`` is the ascending log of the training sigmas. Computed in the dtype of
    ``sigmas`` (the reference does float32 or float64 depending on where sigmas came from).
    """
    sigmas = np.asarray(sigmas)
    log_sigma = np.log(np.maximum(sigmas, sigmas.dtype.type(1e-10)))
    dists = log_sigma[None, :] - log_sigmas[:, None] if log_sigma.ndim else log_sigma - log_sigmas[:, None]
    low_idx = np.cumsum(dists >= 0, axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
    high_idx = low_idx + 1
    low, high = log_sigmas[low_idx], log_sigmas[high_idx]
    w = np.clip((low - log_sigma) / (low - high), 0, 1)
    return ((1 - w) * low_idx + w * high_idx).reshape(sigmas.shape)


# --- beta distribution quantile (no scipy on devices) -------------------------------

def _betacf(x: float, a: float, b: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(x, a, b) / a
    return 1.0 - math.exp(log_front) * _betacf(1.0 - x, b, a) / b


def beta_ppf(q: float, a: float, b: float) -> float:
    """Inverse of :func:`beta_cdf` in x, by bisection to float64 resolution."""
    if q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if beta_cdf(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def discrete_sigma_plan(
    config, alphas_cumprod: np.ndarray, timesteps: np.ndarray, num_inference_steps: int, base_sigmas=None
):
    """(timesteps, sigmas) of a k-diffusion style discrete scheduler (Euler, Heun, LMS...).

    Sigmas are ``base_sigmas`` if given, else the training sigmas interpolated at
    ``timesteps``; then resampled by the ramp the config's ``use_*_sigmas`` flag names
    (timesteps follow the new sigmas). Returns arrays without the final sigma.
    """
    train_sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
    if base_sigmas is None:
        sigmas = np.interp(timesteps, np.arange(len(train_sigmas)), train_sigmas)
    else:
        sigmas = base_sigmas
    kind = configured_sigma_schedule(config)
    if kind is not None:
        sigmas = sigma_schedule(kind, sigmas, num_inference_steps, config)
        timesteps = sigma_to_t(sigmas, np.log(train_sigmas))
    return timesteps, sigmas
