"""numpy versions of the few torch CPU kernels whose rounding diffusers' numbers depend on.

diffusers builds its beta tables with ``torch.linspace`` and ``torch.cumprod`` in float32.
Those kernels do not round like numpy's, so a plain numpy port drifts by an ulp here
and there. Each function below reproduces the torch kernel bit for bit (checked in
tests/parity/test_schedule_math.py), except the float32 exp / log / expm1: torch's (MKL, SLEEF)
are not correctly rounded and neither are numpy's SIMD float32 ones (differently); ``f32_exp``,
``f32_expm1`` and ``f32_log`` return the correctly rounded value (the float64 function rounded
once), at most one ulp from torch's (DEVELOPERS.md: about 1% / 5-7.5% of values are).
"""

from __future__ import annotations

import numpy as np


def f32_exp(x) -> np.ndarray:
    return np.exp(np.asarray(x, dtype=np.float64)).astype(np.float32)


def f32_expm1(x) -> np.ndarray:
    return np.expm1(np.asarray(x, dtype=np.float64)).astype(np.float32)


def f32_log(x) -> np.ndarray:
    """log 0 = -inf and log of a negative = NaN, as torch's, without numpy's warnings."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.asarray(x, dtype=np.float64)).astype(np.float32)


def linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """``torch.linspace(start, end, steps, dtype=torch.float32)``.

    torch computes a float32 step, then ``start + step * i`` for the first half and
    ``end - step * (steps - 1 - i)`` for the second, each as one fused multiply-add.
    float64 arithmetic on the float32 operands gives the same single rounding.
    """
    if steps == 1:
        return np.array([start], dtype=np.float32)
    start32, end32 = np.float32(start), np.float32(end)
    step32 = np.float32((end32 - start32) / np.float32(steps - 1))
    i = np.arange(steps, dtype=np.float64)
    head = np.float64(start32) + np.float64(step32) * i
    tail = np.float64(end32) - np.float64(step32) * (steps - 1 - i)
    return np.where(i < steps // 2, head, tail).astype(np.float32)


def cumprod_f32(values: np.ndarray) -> np.ndarray:
    """``torch.cumprod`` of a float32 vector: torch accumulates in float64 on the CPU."""
    return np.cumprod(np.asarray(values, dtype=np.float64)).astype(np.float32)


def row_norms_f32(rows: np.ndarray) -> np.ndarray:
    """``torch.norm(rows, dim=-1)`` of float32 rows, as torch's CPU kernel sums: squares (each
    rounded to float32) accumulated in 8 float32 lanes (lane j takes elements j, j + 8, ...),
    the lanes added left to right, then the leftover tail elements one by one, then sqrt.
    Bit-exact for row lengths that are multiples of 8 (every latent: C x H x W with H, W
    multiples of 8); with a tail of 1-7 elements about 1% of rows differ by an ulp."""
    rows = np.asarray(rows, dtype=np.float32)
    n = rows.shape[-1]
    main = n - n % 8
    squares = rows * rows
    lanes = squares[..., :main].reshape(*rows.shape[:-1], main // 8, 8)
    # cumsum accumulates sequentially in float32 (np.sum would sum pairwise)
    acc = np.cumsum(lanes, axis=-2, dtype=np.float32)[..., -1, :] if main else np.zeros((*rows.shape[:-1], 8), np.float32)
    total = np.cumsum(np.concatenate([acc, squares[..., main:]], axis=-1), axis=-1, dtype=np.float32)[..., -1]
    return np.sqrt(total)


def sum_axis0_f32(values: np.ndarray) -> np.ndarray:
    """``values.sum(0)`` in torch's CPU order when axis 0 is strided and the columns are
    contiguous (a class axis of (batch, classes, pixels) moved first), torch's cascade sum:
    rows are added one by one into blocks of 2**p rows, p = max(4, ceil(log2 n) // 4); each
    finished block goes into a chain of 3 more accumulators (level j passes its sum on to level
    j + 1 every 2**(p j) rows); then the leftover rows are summed and the levels are added in.
    Bit-exact for the columns torch sums in groups of 4 vectors (all of them when the column
    count is a multiple of 64); torch sums the other columns with 4 interleaved partial sums.
    Up to 16 rows this is the plain running sum."""
    values = np.asarray(values)
    n = values.shape[0]
    power = max(4, (max(n, 1) - 1).bit_length() // 4)
    block, mask = 1 << power, (1 << power) - 1
    acc = [np.zeros(values.shape[1:], values.dtype) for _ in range(4)]
    i = 0
    while i + block <= n:
        for row in values[i:i + block]:
            acc[0] += row
        i += block
        for j in range(1, 4):
            acc[j] += acc[j - 1]
            acc[j - 1] = np.zeros_like(acc[j - 1])
            if i & (mask << (j * power)):
                break
    for row in values[i:]:
        acc[0] += row
    for j in range(1, 4):
        acc[0] += acc[j]
    return acc[0]
