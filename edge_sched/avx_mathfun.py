"""torch's SIMD ``log256_ps`` / ``sincos256_ps`` (``ATen/native/cpu/avx_mathfun.h``), bit for bit.

torch's CPU ``randn`` turns uniforms into normals with these Cephes-style float32 polynomials
(its AVX2 kernel, which the AVX512 capability runs too). torch's build lets the compiler contract
``a * b + c`` into fused multiply-adds; its machine code fuses every Horner step of the three
polynomials, the log's ``y * z + e * q1``, the cosine's ``y * z - z / 2``, the sine's
``y * x + x`` and the angle reduction's steps. A fused multiply-add of float32 values is
computed here in float64 and rounded to float32: float64 holds the product of two float32
values exactly; where the float64 sum is exact too (the log's Horner steps, the angle
reduction) the one rounding is the fused operation's, elsewhere the sum is rounded twice, which
changes the float32 result only if the float64 sum lands exactly halfway between two float32
values. The last cosine and sine steps are taken as ``z (y - 1/2)`` and ``x (y + 1)``, equal
but for the same kind of case. Products exact in float32 (``e * q2``, ``z / 2``) are plain
float32 operations.

So bit-exactness rests on a check: for every input the Box-Muller transform can pass (the 2**24
values of each function), against torch's header compiled with the same contractions, there is
no difference (tests/parity/test_random.py runs it and compares whole draws with torch). Other
inputs are computed the same way; they were not all compared.

Every pass writes into preallocated rows of a :class:`Workspace`; callers cut longer arrays
into pieces of its size.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Workspace", "log_ps", "cos_sin_ps"]

_F32, _F64, _I32 = np.float32, np.float64, np.int32

# avx_mathfun.h's constants, as the float32 values torch stores
_SQRTHF = _F32(0.707106781186547524)
_LOG_P = [_F32(v) for v in (
    7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
    -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
)]
_LOG_Q1 = _F32(-2.12194440e-4)
_LOG_Q2 = _F32(0.693359375)
_FOPI = _F32(1.27323954473516)  # 4 / pi
_DP_SUM = float(_F32(-0.78515625)) + float(_F32(-2.4187564849853515625e-4)) + float(_F32(-3.77489497744594108e-8))
_COS_P = (2.443315711809948e-005, -1.388731625493765e-003, 4.166664568298827e-002)
_SIN_P = (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)
# the two polynomials side by side, rows (cos, sin), as columns that broadcast over a row pair
_COS_SIN_P = [np.array([[_F32(c)], [_F32(s)]], _F64) for c, s in zip(_COS_P, _SIN_P)]
_PLUS_ONE_ZERO = np.array([[1], [0]], _F32)
_MINUS_HALF_PLUS_ONE = np.array([[-0.5], [1]], _F64)
_SIGN = _I32(-(2**31))


class Workspace:
    """Scratch rows for :func:`log_ps` and :func:`cos_sin_ps` on arrays of up to ``size`` elements."""

    def __init__(self, size: int):
        self.size = int(size)
        self._f32 = np.empty((4, self.size), _F32)
        self._f64 = np.empty((4, self.size), _F64)
        self._full = _Rows(self._f32, self._f64)  # the views, made once: each costs a microsecond

    def __reduce__(self):
        # copies and pickles get fresh rows: copied views would no longer share their memory
        return Workspace, (self.size,)

    def rows(self, n: int) -> "_Rows":
        if n == self.size:
            return self._full
        if n > self.size:
            raise ValueError(f"a Workspace of size {self.size} cannot hold {n} elements.")
        return _Rows(self._f32[:, :n], self._f64[:, :n])


class _Rows:
    """Named views of a Workspace's rows (float32 rows 0-3, float64 rows 0-3)."""

    def __init__(self, f32: np.ndarray, f64: np.ndarray):
        i32 = f32.view(_I32)
        self.f32_0, self.f32_1, self.f32_2, self.f32_3 = f32
        self.i32_0, self.i32_1, self.i32_2, self.i32_3 = i32
        self.i32_01, self.f32_23 = i32[:2], f32[2:4]
        self.f64_0, self.f64_1 = f64[0], f64[1]
        self.f64_01, self.f64_23 = f64[:2], f64[2:4]
        self.f64_2, self.f64_3 = f64[2], f64[3]


def log_ps(x: np.ndarray, out: np.ndarray, work: Workspace) -> None:
    """``out = log256_ps(x)`` for a 1-D float32 ``x`` of positive normal numbers (``out`` may be ``x``).

    torch's other cases (zero, negative, subnormal, inf, NaN) are left out: Box-Muller's
    ``1 - u`` lies in [2**-24, 1].
    """
    r = work.rows(x.shape[0])
    m, xr, y, e, doubled, x64, t = r.f32_0, r.f32_1, r.f32_2, r.i32_3, r.i32_2, r.f64_0, r.f64_1
    # x = m 2**e, m in [0.5, 1): avx_mathfun's mantissa and exponent fields
    np.frexp(x, out=(m, e))
    np.less(m, _SQRTHF, out=doubled)  # there m is doubled and e lowered by one
    np.subtract(e, doubled, out=e)
    np.ldexp(m, doubled, out=xr)
    np.subtract(xr, _F32(1), out=xr)  # exact
    z = m
    # Horner with fused steps: y = fma(y, x, p), float64 y * x + p rounded to float32
    np.copyto(x64, xr)
    np.multiply(x64, _LOG_P[0], out=t)
    np.add(t, _LOG_P[1], out=y)
    for p in _LOG_P[2:]:
        np.multiply(y, x64, out=t)
        np.add(t, p, out=y)
    np.multiply(y, xr, out=y)
    np.multiply(xr, xr, out=z)
    np.multiply(y, z, out=t, dtype=_F64)
    np.multiply(e, _LOG_Q1, out=y, dtype=_F32, casting="unsafe")
    np.add(t, y, out=y)  # fma(y, z, e q1)
    np.multiply(z, _F32(0.5), out=z)
    np.subtract(y, z, out=y)
    np.add(xr, y, out=xr)
    np.multiply(e, _LOG_Q2, out=y, dtype=_F32, casting="unsafe")  # exact: q2 has 9 bits
    np.add(xr, y, out=out)


def cos_sin_ps(x: np.ndarray, out: np.ndarray, work: Workspace) -> None:
    """``out[0], out[1] = cos(x), sin(x)`` as ``sincos256_ps``, for a 1-D float32 ``x >= 0``.

    ``out`` is a (2, len(x)) float32 array (a row may be ``x`` itself). Negative ``x`` is left
    out: Box-Muller's angles lie in [0, 2 pi).
    """
    r = work.rows(x.shape[0])
    j, z, xr, t, z64 = r.i32_1, r.f32_2, r.f32_3, r.f64_01, r.f64_2
    # octant j = (trunc(x 4/pi) + 1) & ~1
    np.multiply(x, _FOPI, out=xr)
    np.copyto(j, xr, casting="unsafe")  # truncates
    np.add(j, 1, out=j)
    np.bitwise_and(j, -2, out=j)
    # x - j pi/4 as torch's x + j dp1 + j dp2 (both exact: j <= 8, x >= pi/4 where j > 0), then
    # fma(j, dp3, x): in float64 the whole sum is exact, so one rounding gives the same float32
    np.multiply(j, _DP_SUM, out=r.f64_0)
    np.add(r.f64_0, x, out=xr)
    np.multiply(xr, xr, out=z)
    np.copyto(r.f64_23, r.f32_23)  # (z, x) in float64
    # both polynomials at once, rows (cos, sin); fused steps in float64, rounded to float32
    np.multiply(z64, _COS_SIN_P[0], out=t)
    np.add(t, _COS_SIN_P[1], out=out)
    np.copyto(t, out)
    np.multiply(t, z64, out=t)
    np.add(t, _COS_SIN_P[2], out=out)
    np.multiply(out, z, out=out)
    # fma(y, z, -z/2) as z (y - 1/2), fma(y, x, x) as x (y + 1) (see the module doc)
    np.copyto(t, out)
    np.add(t, _MINUS_HALF_PLUS_ONE, out=t)
    np.multiply(t, r.f64_23, out=out)
    np.add(out, _PLUS_ONE_ZERO, out=out)  # cos + 1; the sine's + 0 is torch's select
    # quadrant, on the int32 bits: where j & 2 the rows swap; then the signs (cos: (j & 2) ^ (j & 4),
    # sin: j & 4). After j << 29, bit 31 holds j & 4 and bit 30 holds j & 2.
    bits, signs = out.view(_I32), r.i32_01  # signs: rows (cos, sin)
    cos_sign, swap, diff = r.i32_0, r.i32_3, r.i32_2
    np.left_shift(j, 29, out=j)
    np.left_shift(j, 1, out=swap)
    np.bitwise_xor(j, swap, out=cos_sign)
    np.right_shift(swap, 31, out=swap)  # all ones where j & 2
    np.bitwise_and(signs, _SIGN, out=signs)
    np.bitwise_xor(bits[0], bits[1], out=diff)
    np.bitwise_and(diff, swap, out=diff)
    np.bitwise_xor(signs, diff, out=signs)
    np.bitwise_xor(bits, signs, out=bits)
