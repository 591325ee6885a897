"""Noise sources: the same seed gives the same noise as torch, without torch.

:class:`TorchGenerator` reproduces ``torch.Generator("cpu").manual_seed(seed)`` followed by
``torch.randn`` / ``torch.rand`` calls, in the order they are made. How torch's CPU kernels
turn the Mersenne Twister (MT19937) stream into numbers:

- uniform float32: one 32-bit draw, ``(u32 & (2**24 - 1)) * 2**-24``;
  uniform float64: two 32-bit draws joined high-then-low, ``(u64 & (2**53 - 1)) * 2**-53``.
- normal, 16 or more elements (contiguous): all uniforms of the tensor are drawn first; then each
  block of 16 is turned into 16 normals by Box-Muller (u1 = 1 - data[j], u2 = data[j + 8] for
  j < 8: data[j] = r cos(theta), data[j + 8] = r sin(theta), r = sqrt(-2 log u1), theta = 2 pi u2).
  If the size is not a multiple of 16, 16 fresh uniforms replace the last 16 values and that
  tail block is transformed again.
- normal, fewer than 16 elements: element by element in float64, u1 and u2 each from two 32-bit
  draws, r = sqrt(-2 log(1 - u2)), theta = 2 pi u1, value r cos(theta); r sin(theta) is cached
  in the generator and is the next such element (the cache survives between calls, so it is
  state, and ``manual_seed`` clears it).

Every value is bit-exact (tests/parity/test_random.py compares the bits). float32 normals of 16+
elements: torch's AVX2 kernel, which it runs on AVX2 and AVX512 machines, takes the log and
sincos from avx_mathfun.h's Cephes polynomials in float32, with the multiply-adds its compiler
fused; :mod:`edge_sched.avx_mathfun` repeats that arithmetic. float64 normals of 16+ elements:
the C library's log and sincos, as torch. torch run with its DEFAULT CPU capability
(``ATEN_CPU_CAPABILITY=default``, or a CPU without AVX2) uses glibc's float32 logf / cosf / sinf
for float32 instead, which differ from the AVX2 kernel in about 40% of the values (403,811 of
1,048,576 measured); we follow the AVX2 kernel. float64 is the same on both.
"""

from __future__ import annotations

import copy
import math
from typing import Protocol, Sequence, Union, runtime_checkable

import numpy as np

from .avx_mathfun import Workspace, cos_sin_ps, log_ps
from .cuda_random import DEFAULT_SEED, PhiloxCudaGenerator, torch_seed

__all__ = ["NoiseSource", "NumpyGenerator", "TorchGenerator", "GeneratorLike", "as_generator", "randn_tensor",
           "rand_tensor"]

_MASK24 = np.uint32((1 << 24) - 1)
_MASK53 = np.uint64((1 << 53) - 1)
_TWO_PI32 = np.float32(2 * np.pi)
_BOX_MULLER_CHUNK = 16384  # pairs per pass: large enough that numpy's per-call cost fades


@runtime_checkable
class NoiseSource(Protocol):
    """What every ``generator=`` argument becomes (as Apple's RandomSource, openvino.genai's Generator):
    normals and uniforms of a shape and dtype drawn in call order, the seed it started from, and an
    independent copy that continues the same stream. :class:`TorchGenerator` (torch's CPU or CUDA
    numbers) and :class:`NumpyGenerator` implement it; so can a user's own class."""

    def randn(self, shape, dtype=np.float32) -> np.ndarray: ...

    def rand(self, shape, dtype=np.float32) -> np.ndarray: ...

    def initial_seed(self) -> int: ...

    def copy(self) -> "NoiseSource": ...


class TorchGenerator:
    """``torch.Generator(device).manual_seed(seed)``, in numpy.

    ``device="cpu"`` (the default): torch's Mersenne Twister noise, as above. ``device="cuda"``:
    torch's CUDA generator (Philox through curand, :mod:`edge_sched.cuda_random`), whose noise also
    depends on the GPU's launch grid for large tensors: ``multi_processor_count`` and
    ``max_threads_per_multi_processor`` name that GPU (None: one thread per element, right on any GPU
    up to its thread limit; the module's table lists common ones).

    >>> g = TorchGenerator(7)
    >>> x = g.randn((1, 4, 64, 64))        # == torch.randn(1, 4, 64, 64, generator=g_torch)
    >>> x = TorchGenerator(7, device="cuda").randn((1, 4, 64, 64))  # == torch's on the GPU
    """

    def __init__(self, seed: int = DEFAULT_SEED, device: str = "cpu", *,
                 multi_processor_count: int | None = None, max_threads_per_multi_processor: int | None = None):
        self.device = _device(device)
        self._cuda = None
        if self.device != "cpu":
            self._cuda = PhiloxCudaGenerator(seed, multi_processor_count, max_threads_per_multi_processor)
        elif multi_processor_count is not None or max_threads_per_multi_processor is not None:
            raise ValueError("multi_processor_count and max_threads_per_multi_processor apply to device='cuda' "
                             f"only, got them with device={device!r}.")
        self.manual_seed(seed)

    # -- state -------------------------------------------------------------------------

    def manual_seed(self, seed: int) -> "TorchGenerator":
        """Reseed (the CPU generator keeps the low 32 bits for its Mersenne Twister state)."""
        if self._cuda is not None:
            self._cuda.manual_seed(seed)
            return self
        seed = torch_seed(seed)
        self._seed = seed
        # numpy's legacy seeding is MT19937's init_genrand, exactly torch's initialisation
        self._mt = np.random.RandomState(seed & 0xFFFFFFFF)._bit_generator
        # the same stream, as 32-bit words straight into a uint32 array: for the full uint32 range
        # numpy hands out the generator's words unchanged (random_raw would widen them to uint64, a
        # temporary twice the size). tests/parity/test_random.py holds the result to torch's bits.
        self._words = np.random.Generator(self._mt)
        self._next_normal: float | None = None
        return self

    def initial_seed(self) -> int:
        return self._cuda.seed if self._cuda is not None else self._seed

    def get_state(self) -> dict:
        """A copy of the generator state (restore with :meth:`set_state`); CUDA: seed and Philox offset."""
        if self._cuda is not None:
            return self._cuda.get_state()
        return {"mt": self._mt.state, "next_normal": self._next_normal, "seed": self._seed}

    def set_state(self, state: dict) -> "TorchGenerator":
        if self._cuda is not None:  # also takes torch's 16-byte CUDA state
            self._cuda.set_state(state)
            return self
        self._mt.state = state["mt"]
        self._next_normal = state["next_normal"]
        self._seed = state["seed"]
        return self

    # -- raw draws ---------------------------------------------------------------------

    def _u64(self, n: int) -> np.ndarray:
        pairs = self._mt.random_raw(2 * n).reshape(n, 2)
        return (pairs[:, 0] << np.uint64(32)) | pairs[:, 1]

    def _low24(self, n: int) -> np.ndarray:
        """The low 24 bits of the next ``n`` 32-bit words, as int32 (exact in float32)."""
        words = self._words.integers(0, 1 << 32, size=n, dtype=np.uint32).view(np.int32)
        np.bitwise_and(words, np.int32(_MASK24), out=words)
        return words

    def _uniform(self, n: int, dtype) -> np.ndarray:
        if dtype == np.float64:
            return (self._u64(n) & _MASK53).astype(np.float64) * 2.0**-53
        ints = self._low24(n)
        out = ints.view(np.float32)  # converted in place
        np.multiply(ints, np.float32(2.0**-24), out=out, dtype=np.float32)
        return out

    # -- torch.rand / torch.randn ------------------------------------------------------

    def rand(self, shape: Sequence[int] | int, dtype=np.float32) -> np.ndarray:
        """``torch.rand(shape, generator=g, dtype=dtype)``: uniform on [0, 1)."""
        if self._cuda is not None:
            shape = _shape(shape)
            return self._cuda.rand(_numel(shape), _float_dtype(dtype, self.device)).reshape(shape)
        shape, dtype = _shape(shape), _float_dtype(dtype)
        return self._uniform(_numel(shape), dtype).reshape(shape)

    def randn(self, shape: Sequence[int] | int, dtype=np.float32) -> np.ndarray:
        """``torch.randn(shape, generator=g, dtype=dtype)``: standard normal."""
        if self._cuda is not None:
            shape = _shape(shape)
            return self._cuda.randn(_numel(shape), _float_dtype(dtype, self.device)).reshape(shape)
        shape, dtype = _shape(shape), _float_dtype(dtype)
        n = _numel(shape)
        if n >= 16 and dtype == np.float32:
            whole = n - n % 16
            # the 24-bit integers live in `out` until the transform overwrites them
            ints = self._low24(n)
            out = ints.view(np.float32)
            _box_muller_f32(ints[:whole], out[:whole], self._scratch(whole // 2))
            if n % 16:  # 16 fresh draws replace the last 16 values
                _box_muller_f32(self._low24(16), out[n - 16 :], self._scratch(8))
        elif n >= 16:
            values = self._uniform(n, dtype)
            out = _box_muller_blocks(values[: n - n % 16], dtype)
            if n % 16:
                tail = _box_muller_blocks(self._uniform(16, dtype), dtype)
                out = np.concatenate([out[: n - 16], tail])
        else:
            out = np.array([self._normal_scalar() for _ in range(n)], dtype=np.float64).astype(dtype)
        return out.reshape(shape)

    def _scratch(self, size: int) -> "_BoxMullerWork":
        """Work rows for the Box-Muller transform of ``size`` pairs (taken in pieces of at most
        _BOX_MULLER_CHUNK), kept between calls: fresh buffers would be page-faulted in on every draw."""
        size = min(size, _BOX_MULLER_CHUNK)
        cached = self.__dict__.get("_work")
        if not isinstance(cached, _BoxMullerWork) or cached.size < size:  # (older pickles hold an array)
            if size <= 8:
                return _BoxMullerWork(size)
            cached = self._work = _BoxMullerWork(size)
        return cached

    def _normal_scalar(self) -> float:
        if self._next_normal is not None:
            value, self._next_normal = self._next_normal, None
            return value
        u1, u2 = self._uniform(2, np.float64)
        r = math.sqrt(-2.0 * math.log1p(-float(u2)))
        theta = 2.0 * math.pi * float(u1)
        self._next_normal = r * math.sin(theta)
        return r * math.cos(theta)

    def copy(self) -> "TorchGenerator":
        """An independent generator continuing this one's stream."""
        return copy.deepcopy(self)

    def __repr__(self) -> str:
        if self._cuda is not None:
            return f"TorchGenerator(seed={self._cuda.seed}, device={self.device!r}, offset={self._cuda.offset})"
        return f"TorchGenerator(seed={self._seed})"


def _box_muller_blocks(uniforms: np.ndarray, dtype) -> np.ndarray:
    """torch's 16-wide Box-Muller over consecutive blocks of 16 float64 uniforms.

    torch calls the C library's log and sincos here (numpy's SIMD float64 log/sin/cos can differ
    in the last bit); Python's math functions are the same C library calls.
    """
    if dtype != np.float64:
        raise TypeError(f"_box_muller_blocks is the float64 path, got {dtype}; float32 goes through _box_muller_f32.")
    blocks = uniforms.reshape(-1, 2, 8)
    u1 = 1 - blocks[:, 0]
    u2 = blocks[:, 1]
    radius = np.sqrt(-2 * _libm(math.log, u1))
    theta = 2.0 * np.pi * u2
    out = np.stack([radius * _libm(math.cos, theta), radius * _libm(math.sin, theta)], axis=1).reshape(-1)
    return np.add(out, 0.0, out=out)  # torch's fma(x, std, mean) turns -0 (from u1 = 1) into +0


class _BoxMullerWork:
    """Scratch of :func:`_box_muller_f32` for up to ``size`` pairs: two float32 rows (the halves of
    the blocks, then cos and sin), the radius row and the polynomials' Workspace."""

    def __init__(self, size: int):
        self.size = int(size)
        self.rows = np.empty((3, self.size), np.float32)
        self.mathfun = Workspace(self.size)
        self._full = self.views(self.size)  # made once: each view costs a microsecond

    def __reduce__(self):
        # copies and pickles get fresh scratch: copied views would no longer share their memory
        return _BoxMullerWork, (self.size,)

    def views(self, n: int):
        if n == self.size and "_full" in self.__dict__:
            return self._full
        pair, radius = self.rows[:2, :n], self.rows[2, :n]
        return pair, pair.view(np.int32), pair.view("V32"), radius


# (1 - u, theta) from the pair rows' integers (k1, k2): (-(k1 - 2**24) 2**-24, k2 (2 pi 2**-24)),
# with u = k 2**-24; exact but for theta's one rounding (a power-of-two scaling changes none)
_PAIR_SHIFT = np.array([[1 << 24], [0]], np.int32)
_PAIR_SCALE = np.array([[-(2.0**-24)], [_TWO_PI32 * np.float32(2.0**-24)]], np.float32)


def _box_muller_f32(k: np.ndarray, out: np.ndarray, work: _BoxMullerWork) -> None:
    """float32 normals into ``out`` from 24-bit integers ``k`` (u = k / 2**24), blocks of 16:
    torch's AVX2 ``NormalFill16`` bit for bit (log and sincos from :mod:`edge_sched.avx_mathfun`).

    Pieces of ``work.size`` pairs at a time: the 8 + 8 halves of the blocks are split into two
    rows by one copy (of 32-byte items), every pass writes in place into ``work``, and one copy
    interleaves the cos and sin rows back into blocks. Each piece of ``k`` is read completely
    before that piece of ``out`` is written, so the two may be the same memory.
    """
    nb, step = k.size // 16, work.size // 8
    blocks, out_blocks = k.reshape(nb, 2, 8).view("V32"), out.reshape(nb, 2, 8).view("V32")
    for b0 in range(0, nb, step):
        b1 = min(nb, b0 + step)
        pair, pair_int, pair_v32, radius = work.views(8 * (b1 - b0))
        # rows: k[j] and k[j + 8] of every block
        np.copyto(pair_v32, blocks[b0:b1, :, 0].T)
        np.subtract(pair_int, _PAIR_SHIFT, out=pair_int)
        np.multiply(pair_int, _PAIR_SCALE, out=pair, dtype=np.float32, casting="unsafe")
        log_ps(pair[0], radius, work.mathfun)
        np.multiply(radius, np.float32(-2), out=radius)
        np.sqrt(radius, out=radius)
        cos_sin_ps(pair[1], pair, work.mathfun)
        np.multiply(pair, radius, out=pair)
        np.add(pair, np.float32(0), out=pair)  # torch's fma(x, std, mean) turns -0 (radius -0) into +0
        np.copyto(out_blocks[b0:b1, :, 0], pair_v32.T)


def _libm(fn, values: np.ndarray) -> np.ndarray:
    return np.fromiter(map(fn, values.ravel().tolist()), dtype=np.float64, count=values.size).reshape(values.shape)


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimension in shape {shape}.")
    return shape


def _numel(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _device(device) -> str:
    if isinstance(device, str):
        name = device.strip().lower()
        head, colon, index = name.partition(":")
        if name == "cpu" or (head == "cuda" and (not colon or index.isdigit())):
            return name
    raise ValueError(f"device must be 'cpu' or 'cuda' (or 'cuda:N'), got {device!r}.")


_CUDA_DTYPES = ("float32", "float64", "float16", "bfloat16")


def _float_dtype(dtype, device: str = "cpu"):
    """The CPU generator's dtype (float32 / float64); for CUDA the dtype's name, bfloat16 included."""
    if device != "cpu":
        name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
        if name not in _CUDA_DTYPES:
            raise TypeError(f"CUDA noise dtype must be one of {', '.join(_CUDA_DTYPES)}, got {dtype!r}.")
        return name
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        raise TypeError("draw float16 noise as float32 and cast it; torch's CPU float16 path differs.")
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"noise dtype must be float32 or float64, got {dtype}.")
    return dtype


class NumpyGenerator:
    """numpy's own generator (PCG64 unless given another) as a noise source: seedable and fast, but not
    torch's numbers. Other numpy Generator methods (``integers``, ...) pass through."""

    def __init__(self, seed=None):
        self._gen = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def randn(self, shape, dtype=np.float32) -> np.ndarray:
        return self._gen.standard_normal(_shape(shape), dtype=_float_dtype(dtype))

    def rand(self, shape, dtype=np.float32) -> np.ndarray:
        return self._gen.random(_shape(shape), dtype=_float_dtype(dtype))

    def initial_seed(self) -> int:
        """The entropy numpy seeded the stream with, as an int (0 for a bit generator without a seed)."""
        entropy = getattr(getattr(self._gen.bit_generator, "seed_seq", None), "entropy", None)
        if entropy is None:
            return 0
        if isinstance(entropy, (int, np.integer)):
            return int(entropy)
        return int.from_bytes(np.asarray(entropy, dtype=np.uint64).tobytes(), "little")

    def copy(self) -> "NumpyGenerator":
        return NumpyGenerator(copy.deepcopy(self._gen))

    def __getattr__(self, name):
        if name == "_gen":  # while unpickling, before the instance's state is back
            raise AttributeError(name)
        return getattr(self._gen, name)

    def __repr__(self) -> str:
        return f"NumpyGenerator({self._gen!r})"


GeneratorLike = Union[NoiseSource, np.random.Generator, int, None]


def as_generator(generator: GeneratorLike) -> NoiseSource:
    """The noise source a ``generator=`` argument means: an int seed is ``TorchGenerator(seed)``, a numpy
    Generator is wrapped as :class:`NumpyGenerator`, None is fresh OS entropy (numpy), and any
    :class:`NoiseSource` is used as it is."""
    if isinstance(generator, (TorchGenerator, NumpyGenerator)):
        return generator
    if isinstance(generator, np.random.Generator):
        return NumpyGenerator(generator)
    if generator is None:
        return NumpyGenerator()
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return TorchGenerator(int(generator))
    if isinstance(generator, NoiseSource):
        return generator
    raise TypeError(
        "generator must be an edge_sched.random.TorchGenerator, a numpy.random.Generator, an int seed, any "
        "edge_sched.random.NoiseSource, a list of those (one per batch item), or None; "
        f"got {type(generator).__name__}."
    )


def _draw(generator, shape, dtype, kind: str) -> np.ndarray:
    gen = as_generator(generator)
    if isinstance(gen, TorchGenerator) and gen.device != "cpu":
        # torch's GPU kernels draw float16 / bfloat16 directly (rounding float32 values)
        return gen.randn(shape, dtype) if kind == "normal" else gen.rand(shape, dtype)
    dtype = np.dtype(dtype)
    draw_dtype = np.float32 if dtype == np.float16 else _float_dtype(dtype)
    out = gen.randn(shape, draw_dtype) if kind == "normal" else gen.rand(shape, draw_dtype)
    return out.astype(dtype, copy=False)


def randn_tensor(shape, generator=None, dtype=np.float32, **_ignored) -> np.ndarray:
    """Standard-normal noise as diffusers' ``randn_tensor`` draws it.

    With a list of generators (one per batch item) each item is drawn from its own generator
    with shape ``(1, *shape[1:])`` and the items are concatenated. Extra keyword arguments
    (``device=``, ``layout=``) are accepted and ignored, so ported calls keep working.
    """
    return _per_item(shape, generator, dtype, "normal")


def rand_tensor(shape, generator=None, dtype=np.float32) -> np.ndarray:
    """Uniform [0, 1) noise, with the same generator rules as :func:`randn_tensor`."""
    return _per_item(shape, generator, dtype, "uniform")


def _per_item(shape, generator, dtype, kind):
    shape = _shape(shape)
    if isinstance(generator, (list, tuple)):
        if len(generator) == 1:
            generator = generator[0]
        else:
            if not shape or len(generator) != shape[0]:
                raise ValueError(
                    f"got a list of {len(generator)} generators for a batch of shape {shape}: "
                    "pass one generator per batch item."
                )
            return np.concatenate([_draw(g, (1, *shape[1:]), dtype, kind) for g in generator], axis=0)
    return _draw(generator, shape, dtype, kind)
