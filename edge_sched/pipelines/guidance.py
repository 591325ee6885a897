"""Classifier-free guidance, the guidance rescale of Lin et al. 2023 ("Common Diffusion Noise Schedules and
Sample Steps are Flawed", section 3.4), and the guidance-scale embedding of guidance-distilled UNets
(``time_cond_proj_dim``: LCM), as diffusers' pipelines compute them."""

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


def guidance_scale_embedding(w, embedding_dim: int) -> np.ndarray:
    """[len(w), embedding_dim] float32: sin / cos of ``1000 w`` at geometric frequencies (zero-padded when odd)."""
    w = np.asarray(w, dtype=np.float32).reshape(-1) * np.float32(1000.0)
    half = embedding_dim // 2
    if half < 2:
        raise ValueError(f"time_cond_proj_dim must be at least 4 for a guidance embedding, got {embedding_dim}")
    step = np.log(np.float32(10000.0)) / np.float32(half - 1)
    # float32 arguments, functions evaluated in float64 and rounded: torch's float32 exp / sin / cos are
    # (nearly) correctly rounded, numpy's float32 ones are not (1-ulp misses, amplified by w * 1000)
    freqs = np.exp((np.arange(half, dtype=np.float32) * -step).astype(np.float64)).astype(np.float32)
    angles = (w[:, None] * freqs[None, :]).astype(np.float64)
    emb = np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)
    if embedding_dim % 2:
        emb = np.pad(emb, ((0, 0), (0, 1)))
    return emb.astype(np.float32, copy=False)
