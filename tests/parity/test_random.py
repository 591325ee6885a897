"""TorchGenerator against torch.Generator("cpu"), draw for draw, in the same test run."""

import numpy as np
import pytest
import torch

from diffusers.utils.torch_utils import randn_tensor as torch_randn_tensor
from edge_sched.random import TorchGenerator, as_generator, rand_tensor, randn_tensor

from .harness import record

SEEDS = [0, 1, 7, 42, 2**31 + 5, 123456789012, -5]
SHAPES = [(1,), (3,), (15,), (16,), (17,), (5, 7), (33,), (3, 5, 7), (2, 4, 8, 8), (1, 4, 64, 64), (0,)]
# Sequences of calls on one generator: the order and mix of draws is part of the state.
CALLS = ["randn", "rand", "randn", "randn", "rand", "randn"]
# float32 normals of 16+ elements: torch uses SIMD (Sleef, ~1 ulp) log/sin/cos, we round float64
# values once; the bound for these is an absolute 1e-6.
F32_ABS_BOUND = 1e-6



def _ulps(ours: np.ndarray, ref: np.ndarray) -> float:
    if ref.size == 0:
        return 0.0
    return float((np.abs(ours.astype(np.float64) - ref) / np.spacing(np.abs(ref).astype(ref.dtype))).max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("seed", SEEDS)
def test_sequence_of_draws_matches_torch(seed, shape, dtype):
    ref_gen = torch.Generator("cpu").manual_seed(seed)
    ours = TorchGenerator(seed)
    for call in CALLS:
        ref = getattr(torch, call)(shape, generator=ref_gen, dtype=getattr(torch, dtype)).numpy()
        got = getattr(ours, call)(shape, dtype=dtype)
        assert got.dtype == ref.dtype and got.shape == ref.shape
        exact = call == "rand" or dtype == "float64" or ref.size < 16
        if exact:
            np.testing.assert_array_equal(got, ref, err_msg=f"{call} {shape} {dtype}")
        else:
            err = float(np.abs(got.astype(np.float64) - ref).max())
            assert err <= F32_ABS_BOUND, f"{call} {shape}: {err:.3g} ({_ulps(got, ref)} ulps)"
        if ref.size:  # the summary at the end of the run prints the worst difference
            record(f"TorchGenerator {call} {dtype} (abs)", float(np.abs(got.astype(np.float64) - ref).max()))


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
    assert float(np.abs(got - ref.numpy()).max()) <= F32_ABS_BOUND


def test_int_seed_means_torch_generator():
    np.testing.assert_array_equal(randn_tensor((2, 3), generator=5), TorchGenerator(5).randn((2, 3)))
    np.testing.assert_array_equal(rand_tensor((4,), generator=[5]), TorchGenerator(5).rand((4,)))


def test_numpy_generator_is_accepted():
    out = randn_tensor((2, 3), generator=np.random.default_rng(0), dtype=np.float64)
    np.testing.assert_array_equal(out, np.random.default_rng(0).standard_normal((2, 3)))
    assert isinstance(as_generator(None), np.random.Generator)


def test_bad_generators_are_clear_errors():
    with pytest.raises(TypeError, match="generator must be"):
        randn_tensor((2,), generator="seed")
    with pytest.raises(ValueError, match="one generator per batch item"):
        randn_tensor((3, 2), generator=[TorchGenerator(0), TorchGenerator(1)])
    with pytest.raises(TypeError, match="float32 or float64"):
        TorchGenerator(0).randn((2,), dtype=np.int32)
