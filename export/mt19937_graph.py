"""torch's CPU noise as ONNX nodes: ``torch.Generator().manual_seed(seed)`` then ``torch.randn`` /
``torch.rand`` calls of one size (16 values or more), float32, from an int64 ``seed`` tensor, as
:class:`edge_sched.random.TorchGenerator` draws them (see edge_sched/random.py for torch's rules and
edge_sched/avx_mathfun.py for its float32 log / sincos).

- MT19937: the state from the seed's low 32 bits (init_genrand, 623 sequential steps: a ``Loop``), then
  one ``Loop`` iteration per 624 words: the twist in four vectorized pieces (words 0-226 read only old
  words; 227-453 read the new 0-226; 454-622 the new 227-395; 623 the new 0 and 396), and the tempering.
- Each draw takes its words in call order: ``randn`` of n values n words, plus 16 more when n is not a
  multiple of 16 (torch redraws the last block); ``rand`` n words.
- Uniforms ``(w & (2**24 - 1)) 2**-24``; normals by torch's AVX2 Box-Muller over blocks of 16 with
  avx_mathfun's polynomials, each fused multiply-add computed in float64 and rounded to float32 (as
  edge_sched.avx_mathfun does). The inputs here are multiples of 2**-24, so ``frexp`` is read off the
  24-bit integer's bit length, and the sign / quadrant logic of ``sincos`` is done with ``Where``.

All in uint32 / int32 / float32 / float64 ONNX Runtime CPU kernels (``BitwiseXor`` / ``BitwiseAnd``:
opset 18). The uint32 arithmetic relies on wrapping products, which ONNX Runtime's CPU kernels give;
OpenVINO is not offered these graphs (its CPU plugin's integer arithmetic is not exact, see
edge_sched/denoise_graph.py).
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto, helper

from .onnx_nodes import Nodes

MIN_OPSET = 18
KINDS = ("normal", "uniform")
U32, I32, I64 = TensorProto.UINT32, TensorProto.INT32, TensorProto.INT64
F32, F64, BOOL = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.BOOL
_N = 624
_UPPER, _LOWER, _MATRIX_A = 0x80000000, 0x7FFFFFFF, 0x9908B0DF

# avx_mathfun.h's constants as the float32 values torch stores (edge_sched/avx_mathfun.py's)
_SQRTHF = np.float32(0.707106781186547524)
_LOG_P = [np.float32(v) for v in (
    7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
    -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)]
_LOG_Q1, _LOG_Q2 = np.float32(-2.12194440e-4), np.float32(0.693359375)
_FOPI = np.float32(1.27323954473516)
_DP_SUM = (float(np.float32(-0.78515625)) + float(np.float32(-2.4187564849853515625e-4))
           + float(np.float32(-3.77489497744594108e-8)))
_COS_P = [float(np.float32(v)) for v in (2.443315711809948e-005, -1.388731625493765e-003, 4.166664568298827e-002)]
_SIN_P = [float(np.float32(v)) for v in (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)]
_THETA_SCALE = np.float32(2 * np.pi) * np.float32(2.0**-24)


def words_of(numel: int, kinds: list[str]) -> list[tuple[int, int]]:
    """(first word, words taken) of each draw, in order."""
    if numel < 16:
        raise ValueError(f"torch draws fewer than 16 normals one by one in float64; {numel} values are not built")
    out, start = [], 0
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"CPU draws of kind {kind!r} are not built; kinds: {', '.join(KINDS)}")
        taken = numel + (16 if kind == "normal" and numel % 16 else 0)
        out.append((start, taken))
        start += taken
    return out


def cpu_draws(b: Nodes, seed: str, numel: int, kinds: list[str]) -> str:
    """Nodes computing draws ``0 .. len(kinds) - 1`` of a fresh CPU generator seeded with the int64 scalar
    ``seed``; returns the name of the [len(kinds), numel] float32 result."""
    spans = words_of(numel, kinds)
    total = spans[-1][0] + spans[-1][1]
    words = _mt_words(b, seed, total)  # [total] uint32
    rows = []
    for (start, taken), kind in zip(spans, kinds):
        w = b.op("Slice", words, b.const([start]), b.const([start + taken]), b.const([0]))
        low24 = b.op("BitwiseAnd", w, b.const(np.uint32((1 << 24) - 1)))
        k = b.cast(low24, I32)
        if kind == "uniform":
            row = b.op("Mul", b.cast(k, F32), b.const(np.float32(2.0**-24)))
        else:
            row = _normals(b, k, numel)
        rows.append(b.op("Unsqueeze", row, b.const([0])))
    return rows[0] if len(rows) == 1 else b.op("Concat", *rows, axis=0)


# ---------------------------------------------------------------------------- MT19937
def _mt_words(b: Nodes, seed: str, total: int) -> str:
    state = _init_genrand(b, seed)
    twists = -(-total // _N)
    body = Nodes("mt_twist/")
    i_in, cond_in, mt = "mt_twist/i", "mt_twist/cond", "mt_twist/state"
    new = _twist(body, mt)
    tempered = _temper(body, new)
    cond_out = body.op("Identity", cond_in)
    state_out = body.op("Identity", new)
    graph = helper.make_graph(
        body.nodes, "mt19937_twist",
        [helper.make_tensor_value_info(i_in, I64, []), helper.make_tensor_value_info(cond_in, BOOL, []),
         helper.make_tensor_value_info(mt, U32, [_N])],
        [helper.make_tensor_value_info(cond_out, BOOL, []), helper.make_tensor_value_info(state_out, U32, [_N]),
         helper.make_tensor_value_info(tempered, U32, [_N])],
        body.initializers)
    _, blocks = b.ops("Loop", [b.const(np.int64(twists)), b.const(np.bool_(True)), state], 2, body=graph)
    flat = b.op("Reshape", blocks, b.const([-1]))
    return b.op("Slice", flat, b.const([0]), b.const([total]), b.const([0]))


def _init_genrand(b: Nodes, seed: str) -> str:
    """mt[0] = seed & 0xffffffff; mt[i] = 1812433253 (mt[i-1] ^ (mt[i-1] >> 30)) + i, in uint32."""
    s0 = b.cast(b.cast(seed, TensorProto.UINT64), U32)  # the low word (two's complement for negatives)
    body = Nodes("mt_seed/")
    i_in, cond_in, prev = "mt_seed/i", "mt_seed/cond", "mt_seed/prev"
    mixed = body.op("BitwiseXor", prev, body.op("BitShift", prev, body.const(np.uint32(30)), direction="RIGHT"))
    index = body.op("Add", body.cast(i_in, U32), body.const(np.uint32(1)))
    value = body.op("Add", body.op("Mul", mixed, body.const(np.uint32(1812433253))), index)
    scan = body.op("Unsqueeze", value, body.const([0]), out="mt_seed/scan")  # [1] rows: OpenVINO stacks scalars as [n, 1]
    graph = helper.make_graph(
        body.nodes + [helper.make_node("Identity", [cond_in], ["mt_seed/cond_out"])], "mt19937_seed",
        [helper.make_tensor_value_info(i_in, I64, []), helper.make_tensor_value_info(cond_in, BOOL, []),
         helper.make_tensor_value_info(prev, U32, [])],
        [helper.make_tensor_value_info("mt_seed/cond_out", BOOL, []), helper.make_tensor_value_info(value, U32, []),
         helper.make_tensor_value_info(scan, U32, [1])],
        body.initializers)
    _, rest = b.ops("Loop", [b.const(np.int64(_N - 1)), b.const(np.bool_(True)), s0], 2, body=graph)
    return b.op("Concat", b.op("Unsqueeze", s0, b.const([0])), b.op("Reshape", rest, b.const([-1])), axis=0)


def _slice(b: Nodes, x: str, start: int, stop: int) -> str:
    return b.op("Slice", x, b.const([start]), b.const([stop]), b.const([0]))


def _twist_piece(b: Nodes, cur: str, nxt: str, far: str) -> str:
    """new = far ^ (y >> 1) ^ (y odd ? MATRIX_A : 0), y = (cur & UPPER) | (nxt & LOWER)."""
    y = b.op("BitwiseOr", b.op("BitwiseAnd", cur, b.const(np.uint32(_UPPER))),
             b.op("BitwiseAnd", nxt, b.const(np.uint32(_LOWER))))
    mag = b.op("Mul", b.op("BitwiseAnd", y, b.const(np.uint32(1))), b.const(np.uint32(_MATRIX_A)))
    return b.op("BitwiseXor", b.op("BitwiseXor", far, b.op("BitShift", y, b.const(np.uint32(1)), direction="RIGHT")),
                mag)


def _twist(b: Nodes, mt: str) -> str:
    a = _twist_piece(b, _slice(b, mt, 0, 227), _slice(b, mt, 1, 228), _slice(b, mt, 397, 624))
    bb = _twist_piece(b, _slice(b, mt, 227, 454), _slice(b, mt, 228, 455), a)
    c = _twist_piece(b, _slice(b, mt, 454, 623), _slice(b, mt, 455, 624), _slice(b, bb, 0, 169))
    d = _twist_piece(b, _slice(b, mt, 623, 624), _slice(b, a, 0, 1), _slice(b, bb, 169, 170))
    return b.op("Concat", a, bb, c, d, axis=0)


def _temper(b: Nodes, y: str) -> str:
    def shift(x, n, direction):
        return b.op("BitShift", x, b.const(np.uint32(n)), direction=direction)

    y = b.op("BitwiseXor", y, shift(y, 11, "RIGHT"))
    y = b.op("BitwiseXor", y, b.op("BitwiseAnd", shift(y, 7, "LEFT"), b.const(np.uint32(0x9D2C5680))))
    y = b.op("BitwiseXor", y, b.op("BitwiseAnd", shift(y, 15, "LEFT"), b.const(np.uint32(0xEFC60000))))
    return b.op("BitwiseXor", y, shift(y, 18, "RIGHT"))


# ---------------------------------------------------------------------------- Box-Muller (torch's NormalFill16)
def _fma32(b: Nodes, a64: str, m64: str, c: str) -> str:
    """float32(a m + c) with the product exact in float64 (a, m float32 values as float64; c float64)."""
    return b.cast(b.op("Add", b.op("Mul", a64, m64), c), F32)


def _normals(b: Nodes, k: str, numel: int) -> str:
    """torch.randn's float32 values from the draw's 24-bit integers ``k`` (numel, plus 16 for a tail)."""
    whole = numel - numel % 16
    values = _box_muller(b, _slice(b, k, 0, whole), whole)
    if numel % 16:
        tail = _box_muller(b, _slice(b, k, numel, numel + 16), 16)
        values = b.op("Concat", _slice(b, values, 0, numel - 16), tail, axis=0)
    return values


def _box_muller(b: Nodes, k: str, n: int) -> str:
    """Blocks of 16: u1 = 1 - k[j] 2**-24 and u2 = k[j + 8] 2**-24 for j < 8; r = sqrt(-2 log u1),
    values r cos(2 pi u2) at j and r sin(2 pi u2) at j + 8."""
    blocks = b.op("Reshape", k, b.const([n // 16, 2, 8]))
    k1 = b.op("Reshape", _slice_axis(b, blocks, 0, 1, 1), b.const([-1]))
    k2 = b.op("Reshape", _slice_axis(b, blocks, 1, 2, 1), b.const([-1]))
    radius = b.op("Sqrt", b.op("Mul", _log_ps(b, b.op("Sub", b.const(np.int32(1 << 24)), k1)), b.const(np.float32(-2))))
    theta = b.op("Mul", b.cast(k2, F32), b.const(_THETA_SCALE))
    cos, sin = _cos_sin_ps(b, theta)
    zero = b.const(np.float32(0))  # torch's fma(x, std, mean) turns -0 into +0
    cos = b.op("Add", b.op("Mul", cos, radius), zero)
    sin = b.op("Add", b.op("Mul", sin, radius), zero)
    shape = b.const([n // 16, 1, 8])
    out = b.op("Concat", b.op("Reshape", cos, shape), b.op("Reshape", sin, shape), axis=1)
    return b.op("Reshape", out, b.const([-1]))


def _slice_axis(b: Nodes, x: str, start: int, stop: int, axis: int) -> str:
    return b.op("Slice", x, b.const([start]), b.const([stop]), b.const([axis]))


def _log_ps(b: Nodes, big_k: str) -> str:
    """log256_ps of x = K 2**-24 (int32 K in [1, 2**24]), as edge_sched.avx_mathfun.log_ps."""
    # frexp: x = m 2**e, m in [0.5, 1): with L the bit length of K, m = K 2**-L, e = L - 24
    powers = b.const((1 << np.arange(25, dtype=np.int64)).astype(np.int32))
    k_col = b.op("Unsqueeze", big_k, b.const([-1]))
    length = b.op("ReduceSum", b.cast(b.op("GreaterOrEqual", k_col, powers), I32), b.const([-1]), keepdims=0)
    scale = b.op("Gather", b.const(np.ldexp(np.float32(1), -np.arange(26)).astype(np.float32)), length, axis=0)
    m = b.op("Mul", b.cast(big_k, F32), scale)
    e = b.op("Sub", length, b.const(np.int32(24)))
    doubled = b.op("Less", m, b.const(_SQRTHF))
    e = b.op("Sub", e, b.cast(doubled, I32))
    m = b.op("Where", doubled, b.op("Add", m, m), m)
    xr = b.op("Sub", m, b.const(np.float32(1)))
    x64 = b.cast(xr, F64)
    y = _fma32(b, x64, b.const(np.float64(_LOG_P[0])), b.const(np.float64(_LOG_P[1])))
    for p in _LOG_P[2:]:
        y = _fma32(b, b.cast(y, F64), x64, b.const(np.float64(p)))
    y = b.op("Mul", y, xr)
    z = b.op("Mul", xr, xr)
    e32 = b.cast(e, F32)
    y = _fma32(b, b.cast(y, F64), b.cast(z, F64), b.cast(b.op("Mul", e32, b.const(_LOG_Q1)), F64))
    y = b.op("Sub", y, b.op("Mul", z, b.const(np.float32(0.5))))
    xr = b.op("Add", xr, y)
    return b.op("Add", xr, b.op("Mul", e32, b.const(_LOG_Q2)))


def _cos_sin_ps(b: Nodes, x: str) -> tuple[str, str]:
    """sincos256_ps of float32 x >= 0, as edge_sched.avx_mathfun.cos_sin_ps: (cos, sin)."""
    j = b.cast(b.op("Mul", x, b.const(_FOPI)), I32)  # truncates
    j = b.op("BitwiseAnd", b.op("Add", j, b.const(np.int32(1))), b.const(np.int32(-2)))
    xr = b.cast(b.op("Add", b.op("Mul", b.cast(j, F64), b.const(np.float64(_DP_SUM))), b.cast(x, F64)), F32)
    z = b.op("Mul", xr, xr)
    z64, x64 = b.cast(z, F64), b.cast(xr, F64)

    def poly(p):
        y = _fma32(b, z64, b.const(np.float64(p[0])), b.const(np.float64(p[1])))
        y = _fma32(b, b.cast(y, F64), z64, b.const(np.float64(p[2])))
        return b.op("Mul", y, z)

    yc, ys = poly(_COS_P), poly(_SIN_P)
    # fma(y, z, -z/2) as z (y - 1/2), then + 1; fma(y, x, x) as x (y + 1)
    cos = b.op("Add", b.cast(b.op("Mul", b.op("Add", b.cast(yc, F64), b.const(np.float64(-0.5))), z64), F32),
               b.const(np.float32(1)))
    sin = b.op("Add", b.cast(b.op("Mul", b.op("Add", b.cast(ys, F64), b.const(np.float64(1))), x64), F32),
               b.const(np.float32(0)))
    # quadrant: where j & 2 the two swap; cos changes sign where (j & 2) xor (j & 4), sin where j & 4
    bit2 = b.op("Equal", b.op("BitwiseAnd", j, b.const(np.int32(2))), b.const(np.int32(2)))
    bit4 = b.op("Equal", b.op("BitwiseAnd", j, b.const(np.int32(4))), b.const(np.int32(4)))
    c, s = b.op("Where", bit2, sin, cos), b.op("Where", bit2, cos, sin)
    c = b.op("Where", b.op("Xor", bit2, bit4), b.op("Neg", c), c)
    s = b.op("Where", bit4, b.op("Neg", s), s)
    return c, s


__all__ = ["KINDS", "MIN_OPSET", "cpu_draws", "words_of"]
