"""Model-output conventions and sample clipping, shared by the update rules.

For a sample x_t = alpha_t * x0 + sigma_t * eps, a network predicts one of
eps ("epsilon"), x0 ("sample"), or v = alpha_t * eps - sigma_t * x0 ("v_prediction").
The sigma-space samplers (Euler, Heun, LMS, KDPM2, k-diffusion's) work on x = x0 + sigma * eps
instead, feeding the model x / sqrt(sigma^2 + 1): ``x0_at_sigma`` and ``to_d`` are their conversions.
"""

from __future__ import annotations

import numpy as np

from .errors import check_choice

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def predicted_x0_and_eps(prediction_type: str, model_output, sample, alpha_t, sigma_t):
    """(x0, eps) implied by the model output at a point with coefficients (alpha_t, sigma_t)."""
    check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    if prediction_type == "epsilon":
        x0 = (sample - sigma_t * model_output) / alpha_t
        return x0, model_output
    if prediction_type == "sample":
        eps = (sample - alpha_t * model_output) / sigma_t
        return model_output, eps
    x0 = alpha_t * sample - sigma_t * model_output
    eps = alpha_t * model_output + sigma_t * sample
    return x0, eps


def predicted_x0(prediction_type: str, model_output, sample, alpha_t, sigma_t):
    """x0 alone, for update rules that integrate the data prediction (DPM-Solver++, UniPC).

    "flow_prediction" is the rectified-flow velocity v = eps - x0 of x_t = (1 - sigma) x0 + sigma eps,
    with ``sigma_t`` = sigma, so x0 = x_t - sigma * v.
    """
    check_choice("prediction_type", prediction_type, (*PREDICTION_TYPES, "flow_prediction"))
    if prediction_type == "epsilon":
        return (sample - sigma_t * model_output) / alpha_t
    if prediction_type == "sample":
        return model_output
    if prediction_type == "v_prediction":
        return alpha_t * sample - sigma_t * model_output
    return sample - sigma_t * model_output


def predicted_eps(prediction_type: str, model_output, sample, alpha_t, sigma_t):
    """eps alone, for update rules that integrate the noise prediction (DPM-Solver, UniPC)."""
    check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    if prediction_type == "epsilon":
        return model_output
    if prediction_type == "sample":
        return (sample - alpha_t * model_output) / sigma_t
    return alpha_t * model_output + sigma_t * sample


def x0_at_sigma(prediction_type: str, model_output, sample, sigma):
    """x0 = D(x, sigma) at noise level sigma of x = x0 + sigma * eps (float32, in the order of
    operations of diffusers' sigma schedulers): eps -> x - sigma eps; v -> c_out v + c_skip x with
    c_out = -sigma / sqrt(sigma^2 + 1), c_skip = 1 / (sigma^2 + 1); "sample" is x0 itself."""
    if prediction_type == "epsilon":
        return sample - sigma * model_output
    if prediction_type == "v_prediction":
        c = sigma * sigma + np.float32(1)
        return model_output * (-sigma / np.sqrt(c)) + sample / c
    check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    return model_output


def to_d(sample, x0, sigma):
    """The probability-flow derivative dx/dsigma = (x - x0) / sigma (k-diffusion's ``to_d``)."""
    return (sample - x0) / sigma


def threshold_sample(sample: np.ndarray, ratio: float, max_value: float) -> np.ndarray:
    """Dynamic thresholding (Imagen, Saharia et al. 2022): per batch item, clip to the
    ``ratio`` quantile s of |x0| (s clamped to [1, max_value]) and divide by s."""
    dtype = sample.dtype
    work = sample if dtype in (np.float32, np.float64) else sample.astype(np.float32)
    batch = work.shape[0]
    flat = work.reshape(batch, -1)
    s = np.quantile(np.abs(flat), ratio, axis=1).astype(flat.dtype)
    s = np.clip(s, 1, max_value)[:, None]
    return (np.clip(flat, -s, s) / s).reshape(sample.shape).astype(dtype, copy=False)


def clip_predicted_x0(x0: np.ndarray, config) -> np.ndarray:
    """diffusers' x0 post-processing: dynamic thresholding when ``config.thresholding``,
    else a clamp to +-``clip_sample_range`` when ``config.clip_sample`` (absent keys = off)."""
    if getattr(config, "thresholding", False):
        return threshold_sample(x0, config.dynamic_thresholding_ratio, config.sample_max_value)
    if getattr(config, "clip_sample", False):
        limit = config.clip_sample_range
        return np.clip(x0, -limit, limit).astype(x0.dtype, copy=False)
    return x0
