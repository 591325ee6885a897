"""Classifier-free guidance, and the guidance rescale of Lin et al. 2023 ("Common Diffusion Noise
Schedules and Sample Steps are Flawed", section 3.4), as diffusers' pipelines apply them."""

from __future__ import annotations

import numpy as np


def classifier_free_guidance(uncond: np.ndarray, cond: np.ndarray, scale: float, rescale: float = 0.0) -> np.ndarray:
    """``uncond + scale * (cond - uncond)``; with ``rescale > 0`` the result's per-sample standard
    deviation is pulled back towards the conditional prediction's (fixes overexposure with zero-SNR)."""
    guided = uncond + np.float32(scale) * (cond - uncond)
    if rescale > 0:
        axes = tuple(range(1, cond.ndim))
        # torch.std is the unbiased estimate (ddof=1)
        std_cond = cond.std(axis=axes, keepdims=True, ddof=1)
        std_guided = guided.std(axis=axes, keepdims=True, ddof=1)
        rescaled = guided * (std_cond / std_guided)
        guided = np.float32(rescale) * rescaled + np.float32(1 - rescale) * guided
    return guided.astype(np.float32, copy=False)
