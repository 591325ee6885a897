"""torch's CUDA generator in numpy: ``torch.Generator("cuda").manual_seed(seed)`` followed by
``torch.randn`` / ``torch.rand`` with ``device="cuda"``, without a GPU.

Use it through ``edge_sched.random.TorchGenerator(seed, device="cuda")``. How torch fills a tensor of
``numel`` elements (ATen's ``distribution_nullary_kernel`` over curand's Philox-4x32-10):

- Launch: blocks of 256 threads, ``ceil(numel / 256)`` blocks but at most
  ``multi_processor_count * (max_threads_per_multi_processor // 256)``; ``T`` = 256 x blocks threads.
- Thread ``i`` calls ``curand_init(seed, subsequence=i, offset)``: its k-th draw is one Philox-4x32-10
  block of four 32-bit words, counter ``(offset / 4 + k, i)`` (two 64-bit halves, low words first), key
  the seed's low and high 32 bits.
- A draw gives ``U`` values: ``U = 4`` for float32, float16 and bfloat16 (one word each), ``U = 2`` for
  float64 (two words each). Element ``e`` is value ``(e mod T U) // T`` of draw ``e // (T U)`` of thread
  ``e mod T``. After the call the generator's offset grows by ``4 ceil(numel / (T U))``.
- Uniforms: float ``w 2**-32 + 2**-33`` (float32 arithmetic, in (0, 1]); double
  ``(w0 ^ (w1 << 21)) 2**-53 + 2**-54``. ``torch.rand`` rounds that to the output dtype and turns a 1 into 0.
- Normals (Box-Muller): float, from words (w0, w1) and (w2, w3) in turn: ``u`` the float uniform of w0,
  ``v = w1 (2 pi 2**-32) + pi 2**-32`` (one fused multiply-add), values ``sqrt(-2 log u) sin v`` then
  ``... cos v``; double, from four words: ``u`` the double uniform of (w0, w1), ``v = z 2**-52 + 2**-53``
  with ``z = w2 ^ (w3 << 21)``, values ``sqrt(-2 log u) sinpi(v)`` and ``... cospi(v)``.
  float16 / bfloat16 are the float32 values rounded to nearest even.

Exactness (tests/parity/test_cuda_random.py, against an H200): uniforms are bit-exact in every dtype.
The GPU takes float32 sin/cos from its hardware approximation (``__sincosf``: the angle scaled to turns,
rounded toward zero, which we copy, then a table-driven sine, which we cannot, ~2**-21.4 absolute), so
float32 normals differ by up to 1.3e-6 (the suite's bound is 1e-5), float16 / bfloat16 normals by one ulp
where that moves a rounding (a few ulps for values under 2e-4), float64 normals by 4.4e-16.

The grid depends on the GPU. The default (``multi_processor_count=None``) launches one thread per
element, which is what every GPU does for tensors up to its thread limit below; for larger tensors pass
the GPU's ``torch.cuda.get_device_properties(0).multi_processor_count`` and
``.max_threads_per_multi_processor``:

=====================  ===  ===============  ======================================
GPU                    SMs  threads per SM   default exact up to (numel)
=====================  ===  ===============  ======================================
Tesla T4               40   1024             40,960
Tesla V100             80   2048             163,840
RTX 3060               28   1536             43,008
RTX 3090               82   1536             125,952
RTX 4090               128  1536             196,608
L4                     58   1536             89,088
A100                   108  2048             221,184
H100 SXM, H200         132  2048             270,336
=====================  ===  ===============  ======================================

A 1x4x64x64 latent (16,384 values, SD 1.5 at 512 px) is the same on all of them; 1x4x128x128 (65,536,
SDXL at 1024 px) differs on the T4, the RTX 3060 and the L4 unless their numbers are passed.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["DEFAULT_SEED", "PhiloxCudaGenerator", "torch_seed"]

DEFAULT_SEED = 67280421310721  # torch's default_rng_seed_val
_BLOCK = 256  # threads per block of torch's distribution kernels
_OFFSET_PER_DRAW = 4  # torch advances the offset by 4 per draw of every thread
_MAX_BYTES = 2**31 - 1  # beyond this torch splits the tensor into several launches (not reproduced)

# Philox-4x32-10 constants (Salmon et al. 2011; curand's and torch's values)
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_U32 = 0xFFFFFFFF

_F32_2POW32_INV = np.float32(2.0**-32)
_F32_2POW32_INV_HALF = np.float32(2.0**-33)
# curand's CURAND_2POW32_INV_2PI: 2**-32 times float32(2 pi), a float32 constant
_F32_2POW32_INV_2PI = np.float32(2.0**-32) * np.float32(2 * math.pi)
_F32_INV_2PI = np.float32(1 / (2 * math.pi))

_FLOAT_KINDS = ("float32", "float64", "float16", "bfloat16")


def torch_seed(seed) -> int:
    """``torch.Generator.manual_seed``'s rules: an int in [-2**63, 2**64); negative ones are taken as
    their two's-complement uint64 (so -1 is 2**64 - 1)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}.")
    seed = int(seed)
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"seed must be in [-2**63, 2**64 - 1] (torch's range), got {seed}.")
    return seed + 2**64 if seed < 0 else seed


def _grid_number(value, name: str, minimum: int):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return int(value)


class PhiloxCudaGenerator:
    """The state of ``torch.Generator("cuda")`` (a seed and a Philox offset) and its draws.

    ``multi_processor_count`` / ``max_threads_per_multi_processor``: the GPU whose launch grid to
    reproduce (torch's device-property names), both or neither; None: one thread per element.
    """

    def __init__(self, seed=DEFAULT_SEED, multi_processor_count=None, max_threads_per_multi_processor=None):
        sms = _grid_number(multi_processor_count, "multi_processor_count", 1)
        threads = _grid_number(max_threads_per_multi_processor, "max_threads_per_multi_processor", _BLOCK)
        if (sms is None) != (threads is None):
            raise ValueError(
                "give both multi_processor_count and max_threads_per_multi_processor (the GPU's "
                f"properties) or neither; got {multi_processor_count!r} and {max_threads_per_multi_processor!r}."
            )
        self.multi_processor_count = sms
        self.max_threads_per_multi_processor = threads
        self.manual_seed(seed)

    # -- state -------------------------------------------------------------------------

    def manual_seed(self, seed) -> "PhiloxCudaGenerator":
        self.seed = torch_seed(seed)
        self.offset = 0
        return self

    def get_state(self) -> dict:
        return {"seed": self.seed, "offset": self.offset}

    def set_state(self, state) -> "PhiloxCudaGenerator":
        """From :meth:`get_state`'s dict, or torch's own 16 bytes (``torch_generator.get_state().numpy()``:
        the seed then the offset, little-endian 64-bit)."""
        if isinstance(state, dict):
            seed, offset = state.get("seed"), state.get("offset")
        else:
            raw = np.asarray(state)
            if raw.dtype != np.uint8 or raw.shape != (16,):
                raise ValueError(
                    "a CUDA generator state is a dict {'seed', 'offset'} or torch's 16-byte uint8 state, "
                    f"got {raw.dtype} array of shape {raw.shape}."
                )
            seed, offset = (int(v) for v in raw.view("<u8"))
        seed = torch_seed(seed)
        if isinstance(offset, (bool, np.bool_)) or not isinstance(offset, (int, np.integer)) \
                or not 0 <= offset < 2**64 or offset % 4:
            raise ValueError(f"the Philox offset must be a multiple of 4 in [0, 2**64), got {offset!r}.")
        self.seed, self.offset = seed, int(offset)
        return self

    # -- draws -------------------------------------------------------------------------

    def randn(self, numel: int, dtype: str) -> np.ndarray:
        """``numel`` standard normals, flat, in ``dtype`` (see :func:`_finish` for bfloat16)."""
        _check_size(numel, dtype)
        if dtype == "float64":
            return self._fill(numel, 2, _normal_double)
        return _finish(self._fill(numel, 4, _normal_float), dtype, uniform=False)

    def rand(self, numel: int, dtype: str) -> np.ndarray:
        """``numel`` uniforms on [0, 1), flat, in ``dtype``."""
        _check_size(numel, dtype)
        if dtype == "float64":
            values = self._fill(numel, 2, _uniform_double)
            values[values == 1.0] = 0.0
            return values
        return _finish(self._fill(numel, 4, _uniform_float), dtype, uniform=True)

    def threads(self, numel: int) -> int:
        """Threads of torch's launch for ``numel`` elements."""
        blocks = -(-numel // _BLOCK)
        if self.multi_processor_count is not None:
            blocks = min(blocks, self.multi_processor_count * (self.max_threads_per_multi_processor // _BLOCK))
        return blocks * _BLOCK

    def _fill(self, numel: int, unroll: int, transform) -> np.ndarray:
        out = np.empty(numel, np.float64 if unroll == 2 else np.float32)
        if numel == 0:  # torch launches nothing and leaves the offset alone
            return out
        threads = self.threads(numel)
        stride = threads * unroll
        draws = -(-numel // stride)
        for k in range(draws):
            base = k * stride
            active = min(threads, numel - base)  # threads with at least one element in this draw
            words = _philox(self.seed, self.offset // 4 + k, active)  # curand_init's offset counts words
            counts = [min(max(numel - base - j * threads, 0), active) for j in range(unroll)]
            for j, values in enumerate(transform(words, counts)):
                start = base + j * threads
                out[start : start + counts[j]] = values[: counts[j]]
        self.offset += _OFFSET_PER_DRAW * draws
        return out

    def __repr__(self) -> str:
        return f"PhiloxCudaGenerator(seed={self.seed}, offset={self.offset})"


# -- Philox-4x32-10 ----------------------------------------------------------------------


def _check_size(numel: int, dtype: str) -> None:
    itemsize = {"float64": 8, "float32": 4}.get(dtype, 2)
    if numel and (numel - 1) * itemsize + 1 > _MAX_BYTES:
        raise ValueError(f"CUDA noise over 2**31 - 1 bytes (torch splits such tensors) is not reproduced; "
                         f"got {numel} {dtype} values.")


def _philox(seed: int, block: int, threads: int) -> np.ndarray:
    """Words (4, threads) of Philox-4x32-10 for counters ``(block, thread)``, threads 0..threads-1: the
    ``block``-th draw of each thread's subsequence."""
    c0 = np.full(threads, block & _U32, np.uint32)
    c1 = np.full(threads, (block >> 32) & _U32, np.uint32)
    c2 = np.arange(threads, dtype=np.uint32)
    c3 = np.zeros(threads, np.uint32)
    k0, k1 = seed & _U32, seed >> 32
    for _ in range(10):
        p0 = c0.astype(np.uint64) * _M0
        p1 = c2.astype(np.uint64) * _M1
        hi0, hi1 = (p0 >> np.uint64(32)).astype(np.uint32), (p1 >> np.uint64(32)).astype(np.uint32)
        c0 = hi1 ^ c1 ^ np.uint32(k0)
        c2 = hi0 ^ c3 ^ np.uint32(k1)
        c1, c3 = p1.astype(np.uint32), p0.astype(np.uint32)
        k0, k1 = (k0 + _W0) & _U32, (k1 + _W1) & _U32
    return np.stack([c0, c1, c2, c3])


# -- curand's transforms: each returns the values of the draw's components in order -------------


def _uniform_float(words, counts):
    return [_curand_uniform(words[j, : counts[j]]) for j in range(4)]


def _curand_uniform(w: np.ndarray) -> np.ndarray:
    u = w.astype(np.float32)  # round to nearest, as the GPU's conversion
    u *= _F32_2POW32_INV  # exact: a power of two
    u += _F32_2POW32_INV_HALF
    return u


def _uniform_double(words, counts):
    return [_curand_uniform_double(words[2 * j, : counts[j]], words[2 * j + 1, : counts[j]]) for j in range(2)]


def _curand_uniform_double(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    z = lo.astype(np.uint64) ^ (hi.astype(np.uint64) << np.uint64(21))  # 53 bits
    return z.astype(np.float64) * 2.0**-53 + 2.0**-54


def _normal_float(words, counts):
    out = []
    for pair in range(2):
        n = counts[2 * pair]
        u = _curand_uniform(words[2 * pair, :n])
        radius = np.sqrt(np.float32(-2) * np.log(u.astype(np.float64)).astype(np.float32))  # logf, rounded once
        angle = 2 * np.pi * _sincosf_turns(words[2 * pair + 1, :n]).astype(np.float64)
        out += [np.sin(angle).astype(np.float32) * radius, np.cos(angle).astype(np.float32) * radius]
    return out


def _sincosf_turns(w: np.ndarray) -> np.ndarray:
    """The angle ``v = w C + C/2`` (C = CURAND_2POW32_INV_2PI; one fma, as the GPU contracts it) in
    turns, as the GPU's ``__sincosf`` takes it: ``v * float32(1 / (2 pi))`` rounded toward zero. Its
    hardware sine of those turns is an approximation we cannot reproduce (absolute error ~2**-21.4)."""
    v = (w.astype(np.float32).astype(np.float64) * float(_F32_2POW32_INV_2PI)
         + float(_F32_2POW32_INV_2PI) / 2).astype(np.float32)
    exact = v.astype(np.float64) * float(_F32_INV_2PI)  # exact: 24 x 24 bits
    turns = exact.astype(np.float32)
    rounded_up = turns.astype(np.float64) > exact  # all positive: toward zero is down
    turns[rounded_up] = np.nextafter(turns[rounded_up], np.float32(0))
    return turns


def _normal_double(words, counts):
    n = counts[0]
    radius = np.sqrt(-2.0 * np.log(_curand_uniform_double(words[0, :n], words[1, :n])))
    z = words[2, :n].astype(np.uint64) ^ (words[3, :n].astype(np.uint64) << np.uint64(21))
    v = z.astype(np.float64) * 2.0**-52 + 2.0**-53  # in (0, 2]
    sin, cos = _sincospi(v)
    return [sin * radius, (cos * radius)[: counts[1]]]


def _sincospi(v: np.ndarray):
    """sin(pi v), cos(pi v) with an exact reduction to |r| <= 1/4 (v = q/2 + r)."""
    q = np.rint(2.0 * v)
    r = (v - 0.5 * q) * np.pi  # v - q/2 is exact
    s, c = np.sin(r), np.cos(r)
    quadrant = q.astype(np.int64) & 3
    sin = np.choose(quadrant, [s, c, -s, -c])
    cos = np.choose(quadrant, [c, -s, -c, s])
    return sin, cos


# -- output dtypes -------------------------------------------------------------------------


def _finish(values: np.ndarray, dtype: str, uniform: bool) -> np.ndarray:
    """float32 values as ``dtype``; for ``torch.rand`` a value that rounds to 1 becomes 0."""
    if dtype == "float32":
        out = values
    elif dtype == "float16":
        out = values.astype(np.float16)
    elif dtype == "bfloat16":
        return _to_bfloat16(values, uniform)
    else:
        raise TypeError(f"CUDA noise dtype must be one of {', '.join(_FLOAT_KINDS)}, got {dtype}.")
    if uniform:
        out[out == 1] = 0
    return out


def _to_bfloat16(values: np.ndarray, uniform: bool) -> np.ndarray:
    """Round to bfloat16 (nearest even, as torch): an ``ml_dtypes.bfloat16`` array where ml_dtypes is
    installed, else float32 holding the bfloat16 values (numpy has no bfloat16 of its own)."""
    bits = values.view(np.uint32)
    bits = ((bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
    if uniform:
        bits[bits == 0x3F80] = 0  # 1.0
    try:
        import ml_dtypes
    except ImportError:
        return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return bits.view(ml_dtypes.bfloat16)
