"""Model-output conventions and sample clipping, shared by the update rules.

For a sample x_t = alpha_t * x0 + sigma_t * eps, a network predicts one of
eps ("epsilon"), x0 ("sample"), or v = alpha_t * eps - sigma_t * x0 ("v_prediction").
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
