"""torch's CUDA noise as ONNX nodes: ``torch.Generator("cuda").manual_seed(seed)`` then ``torch.randn`` /
``torch.rand`` calls of one size, from an int64 ``seed`` tensor, as :mod:`edge_sched.cuda_random` draws
them (Philox-4x32-10 as curand, torch's offsets, curand's uniform and Box-Muller; see that module for
the rules and the exactness).

The launch grid is ``PhiloxCudaGenerator``'s default, one thread per element (what every GPU launches
for tensors up to its thread limit, 270,336 values on an H200; see edge_sched/cuda_random.py's table):
element ``e`` of draw ``d`` is the first value of Philox block ``(offset_d / 4, e)``, and every call
advances the offset by 4. All draws are computed at once, as rows of one tensor.

Philox multiplies 32-bit words into 64-bit products: the nodes do that in uint64 ``Mul``, take the
halves with ``BitShift`` and a ``Cast`` to uint32 (which wraps), and mix with ``BitwiseXor`` (opset
18). ONNX Runtime's CPU kernels implement those types. OpenVINO's CPU plugin does not compute 64-bit
integer arithmetic exactly, so these graphs are for ONNX Runtime only.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from .onnx_nodes import Nodes

MIN_OPSET = 18  # BitwiseXor
_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_ROUNDS = 10
_BLOCK = 256
KINDS = ("normal", "uniform")
U32, U64, F32, F64, I64 = TensorProto.UINT32, TensorProto.UINT64, TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64


def cuda_draws(b: Nodes, seed: str, numel: int, kinds: list[str]) -> str:
    """Nodes computing draws ``0 .. len(kinds) - 1`` of a fresh CUDA generator seeded with the int64
    scalar ``seed``: draw ``d`` is ``torch.randn(numel)`` ("normal") or ``torch.rand(numel)`` ("uniform"),
    float32. Returns the name of the [len(kinds), numel] float32 result."""
    bad = sorted(set(kinds) - set(KINDS))
    if bad:
        raise ValueError(f"CUDA draws of kind {bad[0]!r} are not built; kinds: {', '.join(KINDS)}")
    draws = len(kinds)
    # counter (offset / 4, 0) in words 0-1 (the offset is 4 d: d < 2**32), thread e in word 2, word 3 zero
    shape = b.const(np.array([draws, numel], dtype=np.int64))
    c0 = b.op("Expand", b.const(np.arange(draws, dtype=np.uint32).reshape(draws, 1)), shape)
    c2 = b.op("Expand", b.const(np.arange(numel, dtype=np.uint32).reshape(1, numel)), shape)
    c1 = c3 = b.op("Expand", b.const(np.zeros((1, 1), np.uint32)), shape)
    # the key: the seed's two's-complement low and high words (torch takes -1 as 2**64 - 1)
    seed64 = b.cast(seed, U64)
    k0 = b.cast(seed64, U32)
    k1 = b.cast(b.op("BitShift", seed64, b.const(np.uint64(32)), direction="RIGHT"), U32)
    m0, m1, shift = b.const(np.uint64(_M0)), b.const(np.uint64(_M1)), b.const(np.uint64(32))
    for r in range(_ROUNDS):
        # round keys k + r W (mod 2**32)
        key0 = b.cast(b.op("Add", b.cast(k0, U64), b.const(np.uint64(r * _W0))), U32)
        key1 = b.cast(b.op("Add", b.cast(k1, U64), b.const(np.uint64(r * _W1))), U32)
        p0 = b.op("Mul", b.cast(c0, U64), m0)
        p1 = b.op("Mul", b.cast(c2, U64), m1)
        hi0 = b.cast(b.op("BitShift", p0, shift, direction="RIGHT"), U32)
        hi1 = b.cast(b.op("BitShift", p1, shift, direction="RIGHT"), U32)
        new_c0 = b.op("BitwiseXor", b.op("BitwiseXor", hi1, c1), key0)
        new_c2 = b.op("BitwiseXor", b.op("BitwiseXor", hi0, c3), key1)
        c1, c3 = b.cast(p1, U32), b.cast(p0, U32)
        c0, c2 = new_c0, new_c2
    w0, w1 = c0, c1
    rows = []
    if "uniform" in kinds:
        rows.append(("uniform", _torch_rand(b, w0)))
    if "normal" in kinds:
        rows.append(("normal", _normal(b, w0, w1)))
    if len(rows) == 1:
        return rows[0][1]
    is_normal = b.const(np.array([k == "normal" for k in kinds]).reshape(draws, 1))
    values = dict(rows)
    return b.op("Where", is_normal, values["normal"], values["uniform"])


def _uniform(b: Nodes, w: str) -> str:
    """curand_uniform: ``float(w) 2**-32 + 2**-33`` in float32, in (0, 1]."""
    u = b.op("Mul", b.cast(w, F32), b.const(np.float32(2.0**-32)))
    return b.op("Add", u, b.const(np.float32(2.0**-33)))


def _torch_rand(b: Nodes, w: str) -> str:
    """torch.rand turns curand's 1.0 into 0."""
    u = _uniform(b, w)
    one = b.op("Equal", u, b.const(np.float32(1.0)))
    return b.op("Where", one, b.const(np.float32(0.0)), u)


def _normal(b: Nodes, w0: str, w1: str) -> str:
    """curand_normal's first value: ``sqrt(-2 log u) sin(v)`` (see cuda_random._normal_float)."""
    u = _uniform(b, w0)
    log_u = b.cast(b.op("Log", b.cast(u, F64)), F32)  # logf, rounded once
    radius = b.op("Sqrt", b.op("Mul", b.const(np.float32(-2.0)), log_u))
    c = float(np.float32(2.0**-32) * np.float32(2 * math.pi))  # CURAND_2POW32_INV_2PI, a float32
    # v = w C + C / 2 with one rounding (the GPU's fma): exact in float64, then to float32
    v = b.cast(b.op("Add", b.op("Mul", b.cast(b.cast(w1, F32), F64), b.const(np.float64(c))),
                    b.const(np.float64(c / 2))), F32)
    # __sincosf takes v / (2 pi) as float32(v) * float32(1 / (2 pi)) rounded toward zero
    exact = b.op("Mul", b.cast(v, F64), b.const(np.float64(np.float32(1 / (2 * math.pi)))))
    nearest = b.cast(exact, F32)
    # the float32 below a positive float32 x is x (1 - 2**-24) rounded to nearest (exact in float64)
    below = b.cast(b.op("Mul", b.cast(nearest, F64), b.const(np.float64(1 - 2.0**-24))), F32)
    turns = b.op("Where", b.op("Greater", b.cast(nearest, F64), exact), below, nearest)
    angle = b.op("Mul", b.const(np.float64(2 * np.pi)), b.cast(turns, F64))
    return b.op("Mul", b.cast(b.op("Sin", angle), F32), radius)


__all__ = ["KINDS", "MIN_OPSET", "cuda_draws"]
