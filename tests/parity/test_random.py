"""TorchGenerator against torch.Generator("cpu"), draw for draw, in the same test run, bit for bit.

float32 normals of 16+ elements follow torch's AVX2 kernel (``NormalFill16`` with avx_mathfun.h's
log256_ps / sincos256_ps, emulated by edge_sched.avx_mathfun), which torch runs when its CPU
capability is AVX2 or AVX512; its DEFAULT capability (glibc logf / cosf / sinf) gives other bits.
"""

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusers.utils.torch_utils import randn_tensor as torch_randn_tensor
from edge_sched.avx_mathfun import Workspace, cos_sin_ps, log_ps
from edge_sched.random import (
    NoiseSource, NumpyGenerator, TorchGenerator, as_generator, rand_tensor, randn_tensor,
)

from .harness import record

SEEDS = [0, 1, 7, 42, 2**31 + 5, 123456789012, -5]
SHAPES = [(1,), (3,), (15,), (16,), (17,), (5, 7), (33,), (3, 5, 7), (2, 4, 8, 8), (1, 4, 64, 64), (0,)]
# Sequences of calls on one generator: the order and mix of draws is part of the state.
CALLS = ["randn", "rand", "randn", "randn", "rand", "randn"]
# sizes of one draw: blocks of 16 and not, one and several of the Box-Muller pieces (16384 pairs)
SIZES = [16, 17, 31, 32, 100, 4 * 64 * 64, (2, 4, 128, 128), 3 * 32768 + 47, 1000003]
CAPABILITY = torch.backends.cpu.get_cpu_capability()


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _mismatches(got: np.ndarray, ref: np.ndarray) -> int:
    assert got.dtype == ref.dtype and got.shape == ref.shape
    return int(np.count_nonzero(_bits(got) != _bits(ref)))


def test_torch_runs_the_avx2_normal_kernel_here():
    # the bit tests below hold for torch's AVX2 kernel; DEFAULT would be a different reference
    assert CAPABILITY in ("AVX2", "AVX512"), CAPABILITY


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("seed", SEEDS)
def test_sequence_of_draws_matches_torch(seed, shape, dtype):
    ref_gen = torch.Generator("cpu").manual_seed(seed)
    ours = TorchGenerator(seed)
    for call in CALLS:
        ref = getattr(torch, call)(shape, generator=ref_gen, dtype=getattr(torch, dtype)).numpy()
        got = getattr(ours, call)(shape, dtype=dtype)
        assert _mismatches(got, ref) == 0, f"{call} {shape} {dtype}"
        if ref.size:  # the summary at the end of the run prints the worst difference
            record(f"TorchGenerator {call} {dtype} (abs)", float(np.abs(got.astype(np.float64) - ref).max()))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 3, 42, 2**32 + 9, -7])
def test_randn_bits_over_sizes_on_one_generator(seed, dtype):
    ref_gen, ours = torch.Generator("cpu").manual_seed(seed), TorchGenerator(seed)
    sizes = SIZES if dtype == "float32" else SIZES[:-1]  # float64 goes through libm per element
    mismatched = 0
    for size in sizes:
        ref = torch.randn(size, generator=ref_gen, dtype=getattr(torch, dtype)).numpy()
        got = ours.randn(size, dtype=dtype)
        bad = _mismatches(got, ref)
        mismatched += bad
        assert bad == 0, f"seed {seed} size {size} {dtype}: {bad} of {ref.size} values differ ({CAPABILITY})"
    record(f"TorchGenerator randn {dtype} 16+ (bits differing)", mismatched)


def test_long_sequence_of_mixed_draws_on_one_generator():
    pick = np.random.default_rng(5)  # chooses the calls only
    ref_gen, ours = torch.Generator("cpu").manual_seed(2024), TorchGenerator(2024)
    for i in range(300):
        n = int(pick.choice([1, 2, 3, 15, 16, 17, 31, 32, 33, 100, 257, 4096, 5000, 40007]))
        call = str(pick.choice(["randn", "randn", "rand"]))
        dtype = str(pick.choice(["float32", "float32", "float64"]))
        ref = getattr(torch, call)(n, generator=ref_gen, dtype=getattr(torch, dtype)).numpy()
        assert _mismatches(getattr(ours, call)(n, dtype=dtype), ref) == 0, f"call {i}: {call}({n}, {dtype})"


@pytest.mark.parametrize("seed, index", [(6931, 4787), (6399, 6835)])
def test_uniform_zero_gives_plus_zero_normals(seed, index):
    # the uniform at `index` is exactly 0 and opens its block's pair: u1 = 1, log 0, radius -0;
    # torch's fma(x, std, mean) makes both normals of the pair +0 (cos is > 0 at 6931, < 0 at 6399)
    n = (index // 16 + 1) * 16
    assert torch.rand(n, generator=torch.Generator("cpu").manual_seed(seed))[index] == 0
    ref = torch.randn(n, generator=torch.Generator("cpu").manual_seed(seed)).numpy()
    assert _bits(ref)[index] == 0 and _bits(ref)[index + 8] == 0
    assert _mismatches(TorchGenerator(seed).randn(n), ref) == 0


_HARNESS = r"""
#include <cstdint>
#include <ATen/native/cpu/avx_mathfun.h>
extern "C" {
void log_many(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, log256_ps(_mm256_loadu_ps(x + i)));
}
void sincos_many(const float* x, float* s, float* c, int64_t n) {
  for (int64_t i = 0; i + 8 <= n; i += 8) {
    __m256 a, b;
    sincos256_ps(_mm256_loadu_ps(x + i), &a, &b);
    _mm256_storeu_ps(s + i, a);
    _mm256_storeu_ps(c + i, b);
  }
}
// NormalFill16<float, true> (DistributionTemplates.h) with mean 0, std 1, over blocks of 16
void normal_fill(float* d, int64_t n) {
  const __m256 two_pi = _mm256_set1_ps(2.0f * 3.14159265358979323846), one = _mm256_set1_ps(1.0f);
  const __m256 minus_two = _mm256_set1_ps(-2.0f), mean = _mm256_set1_ps(0.0f), stdv = _mm256_set1_ps(1.0f);
  for (int64_t i = 0; i + 16 <= n; i += 16) {
    const __m256 u1 = _mm256_sub_ps(one, _mm256_loadu_ps(d + i));
    const __m256 u2 = _mm256_loadu_ps(d + i + 8);
    const __m256 radius = _mm256_sqrt_ps(_mm256_mul_ps(minus_two, log256_ps(u1)));
    __m256 s, c;
    sincos256_ps(_mm256_mul_ps(two_pi, u2), &s, &c);
    _mm256_storeu_ps(d + i, _mm256_fmadd_ps(_mm256_mul_ps(radius, c), stdv, mean));
    _mm256_storeu_ps(d + i + 8, _mm256_fmadd_ps(_mm256_mul_ps(radius, s), stdv, mean));
  }
}
}
"""


@pytest.fixture(scope="module")
def torch_avx_mathfun(tmp_path_factory):
    """torch's own avx_mathfun.h, compiled as torch builds its AVX2 kernels (-mavx2 -mfma: the
    compiler contracts the same multiply-adds), checked against torch.randn before use."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler to build torch's avx_mathfun.h with")
    folder = tmp_path_factory.mktemp("avx_mathfun")
    source, lib = folder / "harness.cpp", folder / "harness.so"
    source.write_text(_HARNESS)
    include = Path(torch.__file__).parent / "include"
    subprocess.run([cxx, "-O2", "-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2", "-fPIC", "-shared", f"-I{include}",
                    str(source), "-o", str(lib)], check=True, capture_output=True)
    harness = ctypes.CDLL(str(lib))
    harness.log_many.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    harness.sincos_many.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    harness.normal_fill.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    gen = torch.Generator("cpu")
    for seed in range(4):
        uniforms = torch.rand(1 << 18, generator=gen.manual_seed(seed)).numpy().copy()
        harness.normal_fill(uniforms.ctypes.data, uniforms.size)
        assert _mismatches(uniforms, torch.randn(1 << 18, generator=gen.manual_seed(seed)).numpy()) == 0
    return harness


def test_log_and_sincos_bit_exact_for_every_box_muller_input(torch_avx_mathfun):
    # Box-Muller passes u1 = 1 - k 2**-24 and theta = k (2 pi 2**-24) (float32), k < 2**24: all of them
    piece = 1 << 18
    work = Workspace(piece)
    ours, log_ref, sin_ref, cos_ref = (np.empty(piece, np.float32) for _ in range(4))
    cos_sin = np.empty((2, piece), np.float32)
    mismatched = {"log": 0, "cos": 0, "sin": 0}
    for start in range(0, 1 << 24, piece):
        k = np.arange(start, start + piece, dtype=np.int32).astype(np.float32)
        u1 = np.float32(1) - k * np.float32(2.0**-24)
        theta = k * (np.float32(2 * np.pi) * np.float32(2.0**-24))
        assert u1.dtype == theta.dtype == np.float32
        torch_avx_mathfun.log_many(u1.ctypes.data, log_ref.ctypes.data, piece)
        torch_avx_mathfun.sincos_many(theta.ctypes.data, sin_ref.ctypes.data, cos_ref.ctypes.data, piece)
        log_ps(u1, ours, work)
        cos_sin_ps(theta, cos_sin, work)
        mismatched["log"] += _mismatches(ours, log_ref)
        mismatched["cos"] += _mismatches(cos_sin[0], cos_ref)
        mismatched["sin"] += _mismatches(cos_sin[1], sin_ref)
    for name, count in mismatched.items():
        record(f"avx_mathfun {name}, all 2**24 inputs (bits differing)", count)
    assert mismatched == {"log": 0, "cos": 0, "sin": 0}


def test_small_normal_cache_survives_between_calls_and_reseed_clears_it():
    ref_gen, ours = torch.Generator("cpu").manual_seed(3), TorchGenerator(3)
    for n in (1, 1, 3, 1, 20, 1):
        np.testing.assert_array_equal(ours.randn((n,), dtype=np.float64),
                                      torch.randn(n, generator=ref_gen, dtype=torch.float64).numpy())
    ref_gen.manual_seed(3)
    ours.manual_seed(3)
    np.testing.assert_array_equal(ours.randn((1,)), torch.randn(1, generator=ref_gen).numpy())


def test_copies_continue_the_stream_on_their_own():
    import copy
    import pickle

    g = TorchGenerator(12)
    g.randn((5,))
    twins = [copy.deepcopy(g), pickle.loads(pickle.dumps(g))]
    expected = [g.randn((40,)), g.rand((7,))]
    for twin in twins:  # each copy owns its state: drawing from g did not move them
        np.testing.assert_array_equal(twin.randn((40,)), expected[0])
        np.testing.assert_array_equal(twin.rand((7,)), expected[1])


@pytest.mark.parametrize("size", [40, 4 * 64 * 64, 3 * 32768 + 47])
def test_copies_after_large_draws_continue_as_torch(size):
    import copy
    import pickle

    ref_gen, g = torch.Generator("cpu").manual_seed(21), TorchGenerator(21)
    assert _mismatches(g.randn(size), torch.randn(size, generator=ref_gen).numpy()) == 0
    twins = [copy.deepcopy(g), pickle.loads(pickle.dumps(g))]  # the generator's scratch rows come along
    ref = torch.randn(size, generator=ref_gen).numpy()
    for twin in [*twins, g]:
        assert _mismatches(twin.randn(size), ref) == 0


def test_state_round_trip():
    g = TorchGenerator(11)
    g.randn((3,))
    state = g.get_state()
    a = g.randn((40,))
    g.set_state(state)
    np.testing.assert_array_equal(g.randn((40,)), a)


@pytest.mark.parametrize("generators", [1, 3])
def test_randn_tensor_with_a_list_of_generators_matches_diffusers(generators):
    shape = (generators, 4, 8, 8)
    ref = torch_randn_tensor(shape, generator=[torch.Generator("cpu").manual_seed(s) for s in range(generators)])
    got = randn_tensor(shape, generator=[TorchGenerator(s) for s in range(generators)])
    assert _mismatches(got, ref.numpy()) == 0


def test_int_seed_means_torch_generator():
    np.testing.assert_array_equal(randn_tensor((2, 3), generator=5), TorchGenerator(5).randn((2, 3)))
    np.testing.assert_array_equal(rand_tensor((4,), generator=[5]), TorchGenerator(5).rand((4,)))


def test_numpy_generator_is_accepted():
    out = randn_tensor((2, 3), generator=np.random.default_rng(0), dtype=np.float64)
    np.testing.assert_array_equal(out, np.random.default_rng(0).standard_normal((2, 3)))
    fresh = as_generator(None)  # fresh OS entropy, as a numpy-backed noise source
    assert isinstance(fresh, NumpyGenerator) and isinstance(fresh, NoiseSource)


@pytest.mark.parametrize("make", [lambda: TorchGenerator(5), lambda: TorchGenerator(5, device="cuda"),
                                  lambda: NumpyGenerator(5), lambda: as_generator(np.random.default_rng(5))],
                         ids=["torch-cpu", "torch-cuda", "numpy", "numpy-wrapped"])
def test_noise_sources_share_one_protocol(make):
    """randn / rand with shape and dtype, the seed, and a copy that continues the same stream."""
    gen = make()
    assert isinstance(gen, NoiseSource)
    assert gen.initial_seed() == 5
    gen.randn((3, 17))
    twin = gen.copy()
    for shape in [(2, 40), (5,), (1, 4, 8, 8)]:
        np.testing.assert_array_equal(gen.randn(shape), twin.randn(shape))
        np.testing.assert_array_equal(gen.rand(shape, dtype=np.float64), twin.rand(shape, dtype=np.float64))
    assert gen.randn((4, 4)).dtype == np.float32 and gen.rand(3, dtype=np.float64).dtype == np.float64


def test_a_users_noise_source_is_accepted():
    class Constant:
        def randn(self, shape, dtype=np.float32):
            return np.full(shape, 0.5, dtype)

        def rand(self, shape, dtype=np.float32):
            return np.full(shape, 0.25, dtype)

        def initial_seed(self):
            return 0

        def copy(self):
            return Constant()

    assert isinstance(Constant(), NoiseSource)
    np.testing.assert_array_equal(randn_tensor((2, 3), generator=Constant(), dtype=np.float16),
                                  np.full((2, 3), 0.5, np.float16))
    np.testing.assert_array_equal(rand_tensor((2, 3), generator=[Constant(), Constant()]), np.full((2, 3), 0.25))


def test_bad_generators_are_clear_errors():
    with pytest.raises(TypeError, match="generator must be"):
        randn_tensor((2,), generator="seed")
    with pytest.raises(ValueError, match="one generator per batch item"):
        randn_tensor((3, 2), generator=[TorchGenerator(0), TorchGenerator(1)])
    with pytest.raises(TypeError, match="float32 or float64"):
        TorchGenerator(0).randn((2,), dtype=np.int32)
