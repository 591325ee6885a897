"""TorchGenerator(device="cuda") against torch's CUDA generator as measured on a GPU.

Ground truth: ``shared/fixtures/cuda_rng`` beside the repository (or ``$EDGE_SCHED_SHARED/fixtures/cuda_rng``;
see tests/shared_fixtures.py; its README says how it was made: torch 2.11 on an H200) and
``tests/fixtures/cuda_rng_extra`` (its README). Bounds, from issue 14: ``rand`` bit-exact in every dtype
(values and the sha256 of the tensor's bytes); ``randn`` within 1e-5 in float32 (the GPU's hardware sine
is an approximation), 1e-12 in float64, and float16 / bfloat16 the rounding of a float32 value within
that 1e-5 (which is one ulp wherever the dtype's ulp exceeds 2e-5, i.e. all but tiny values).
"""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_sched.random import TorchGenerator, rand_tensor, randn_tensor

from ..shared_fixtures import load_meta, require
from .harness import record

F32_BOUND = 1e-5
F64_BOUND = 1e-12
META = load_meta("cuda_rng")
EXTRA = Path(__file__).resolve().parents[1] / "fixtures" / "cuda_rng_extra"
EXTRA_META = json.loads((EXTRA / "meta.json").read_text())

_streams: dict = {}


def streams(folder: Path):
    if folder not in _streams:
        _streams[folder] = np.load(folder / "streams.npz")
    return _streams[folder]


def gpu(meta: dict) -> dict:
    """The measuring GPU's grid: ``TorchGenerator(..., **gpu(meta))``."""
    return {"multi_processor_count": meta["multi_processor_count"],
            "max_threads_per_multi_processor": meta["max_threads_per_multi_processor"]}


def thread_limit(meta: dict) -> int:
    return meta["multi_processor_count"] * (meta["max_threads_per_multi_processor"] // 256) * 256


def cases(kind: str):
    if META is None:  # fails in the test, with the reason (an empty list would skip)
        return [pytest.param(None, id="fixture-missing")]
    return [pytest.param(c, id=f"{c['key']}-{c['fn']}-{c['dtype']}-{'x'.join(map(str, c['shape']))}-seed{c['seed']}")
            for c in META["cases"] if c["kind"] == kind]


def sequences():
    if META is None:
        return [pytest.param(None, id="fixture-missing")]
    seeds = sorted({c["seed"] for c in META["cases"] if c["kind"] == "sequence"})
    return [pytest.param(s, id=f"seed{s}") for s in seeds]


def sequence_cases(seed: int) -> list[dict]:
    return sorted((c for c in META["cases"] if c["kind"] == "sequence" and c["seed"] == seed), key=lambda c: c["pos"])


# -- comparison ---------------------------------------------------------------------------------


def raw_bytes(values: np.ndarray, dtype: str) -> bytes:
    """The tensor's bytes as torch holds them (bfloat16: 2 bytes each)."""
    if dtype == "bfloat16" and values.dtype.itemsize == 4:  # numpy fallback: float32 holding bf16 values
        return (values.view(np.uint32) >> np.uint32(16)).astype(np.uint16).tobytes()
    return values.tobytes()


def _bits(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float16":
        return values.astype(np.float16).view(np.uint16).astype(np.int64)
    return (values.astype(np.float32).view(np.uint32) >> np.uint32(16)).astype(np.int64)


def _from_bits(bits: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float16":
        return bits.astype(np.uint16).view(np.float16).astype(np.float64)
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)


def _ordered(bits):  # sign-magnitude bits -> integers that count representable steps
    return np.where(bits & 0x8000, -(bits & 0x7FFF), bits)


def _unordered(k):
    return np.where(k < 0, 0x8000 | -k, k)


def ulp_distance(ours: np.ndarray, ref: np.ndarray, dtype: str) -> np.ndarray:
    return np.abs(_ordered(_bits(ours, dtype)) - _ordered(_bits(ref, dtype)))


def rounds_within(ours32: np.ndarray, ref: np.ndarray, dtype: str, bound: float) -> np.ndarray:
    """Whether a float32 value within ``bound`` of ``ours32`` rounds to ``ref`` (a float16 / bfloat16 value):
    ``ours32`` lies within ``bound`` of the interval of values rounding to ``ref``."""
    k = _ordered(_bits(ref, dtype))
    value = _from_bits(_unordered(k), dtype)
    below, above = _from_bits(_unordered(k - 1), dtype), _from_bits(_unordered(k + 1), dtype)
    x = ours32.astype(np.float64)
    return (x >= (value + below) / 2 - bound) & (x <= (value + above) / 2 + bound)


def check(case: dict, ours: np.ndarray, folder: Path, label: str, ours32: np.ndarray | None = None) -> None:
    """``ours`` (the whole tensor) against the stored reference of ``case`` at the bounds above."""
    data = streams(folder)
    ref = data[case["key"]].reshape(-1).astype(np.float64)
    assert ours.shape == tuple(case["shape"]), (ours.shape, case["shape"])
    flat = ours.reshape(-1)
    idx = data[case["key"] + "__idx"] if case["stored"] == "subset" else slice(None)
    got = flat[idx].astype(np.float64)
    fn, dtype = case["fn"], case["dtype"]
    diff = np.abs(got - ref)
    err = float(diff.max()) if diff.size else 0.0
    same_bytes = hashlib.sha256(raw_bytes(flat, dtype)).hexdigest() == case["sha256"]
    record(f"CUDA {fn} {dtype} (abs){label}", err)
    record(f"CUDA {fn} {dtype} share not bit-equal{label}", float((diff > 0).mean()) if diff.size else 0.0)
    if fn == "rand":
        np.testing.assert_array_equal(got, ref, err_msg=f"{case['key']}: rand must be bit-exact")
        assert same_bytes, f"{case['key']}: sha256 of our bytes differs from the GPU tensor's"
    elif dtype == "float32":
        assert err <= F32_BOUND, f"{case['key']}: float32 randn off by {err:.3g} (bound {F32_BOUND})"
    elif dtype == "float64":
        assert err <= F64_BOUND, f"{case['key']}: float64 randn off by {err:.3g} (bound {F64_BOUND})"
    else:
        ulps = ulp_distance(got, ref, dtype)
        record(f"CUDA randn {dtype} (ulps){label}", float(ulps.max()) if ulps.size else 0.0)
        assert ours32 is not None
        ok = rounds_within(ours32.reshape(-1)[idx], ref, dtype, F32_BOUND)
        assert ok.all(), (f"{case['key']}: {int((~ok).sum())} {dtype} values are not the rounding of a float32 value "
                          f"within {F32_BOUND} of ours (worst {int(ulps.max())} ulps)")


def float32_twin(seed: int, offset: int, shape, **grid) -> np.ndarray:
    """Our float32 values of the same draw (float16 / bfloat16 round exactly these)."""
    g = TorchGenerator(seed, device="cuda", **grid)
    g.set_state({"seed": g.initial_seed(), "offset": offset})
    return g.randn(shape, np.float32)


def draw_and_check(g: TorchGenerator, case: dict, folder: Path, grid: dict, label: str = "") -> None:
    """Draw ``case`` from ``g`` (made with the keywords ``grid``) and check it."""
    shape, dtype, offset = tuple(case["shape"]), case["dtype"], g.get_state()["offset"]
    ours = getattr(g, case["fn"])(shape, dtype=dtype)
    twin = None
    if case["fn"] == "randn" and dtype in ("float16", "bfloat16"):
        twin = float32_twin(g.initial_seed(), offset, shape, **grid)
    check(case, ours, folder, label, twin)


# -- the shared fixture ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("single"))
def test_fresh_generator_matches_gpu(case):
    folder = require("cuda_rng")
    g = TorchGenerator(case["seed"], device="cuda", **gpu(META))
    draw_and_check(g, case, folder, gpu(META))


@pytest.mark.parametrize("case", cases("single"))
def test_default_grid_matches_gpu_up_to_its_thread_count(case):
    """Without the GPU's numbers: the same tensor wherever the GPU launches one thread per element,
    and (the grid keywords matter) a different one beyond."""
    folder = require("cuda_rng")
    g = TorchGenerator(case["seed"], device="cuda")
    if case["numel"] <= thread_limit(META):
        draw_and_check(g, case, folder, {}, " [default grid]")
    else:
        ours = getattr(g, case["fn"])(tuple(case["shape"]), dtype=case["dtype"]).reshape(-1)
        data = streams(folder)
        idx = data[case["key"] + "__idx"] if case["stored"] == "subset" else slice(None)
        assert np.abs(ours[idx].astype(np.float64) - data[case["key"]].astype(np.float64)).max() > 0.1


@pytest.mark.parametrize("seed", sequences())
def test_sequence_of_draws_matches_gpu(seed):
    """One generator, draws in order: the Philox offset advances as torch's does."""
    folder = require("cuda_rng")
    g = TorchGenerator(seed, device="cuda", **gpu(META))
    for case in sequence_cases(seed):
        draw_and_check(g, case, folder, gpu(META), " [sequence]")


@pytest.mark.parametrize("seed", sequences())
def test_copies_pickles_and_states_continue_the_stream(seed):
    folder = require("cuda_rng")
    draws = sequence_cases(seed)
    g = TorchGenerator(seed, device="cuda", **gpu(META))
    draw_and_check(g, draws[0], folder, gpu(META))
    state = g.get_state()
    twins = [copy.deepcopy(g), pickle.loads(pickle.dumps(g)),
             TorchGenerator(0, device="cuda", **gpu(META)).set_state(state)]
    for case in draws[1:3]:
        draw_and_check(g, case, folder, gpu(META))
    for twin in twins:  # each owns its state: drawing from g did not move them
        assert twin.device == "cuda" and twin.initial_seed() == seed
        for case in draws[1:3]:
            draw_and_check(twin, case, folder, gpu(META))
    g.manual_seed(seed)  # reseeding starts the stream again
    draw_and_check(g, draws[0], folder, gpu(META))


def test_randn_tensor_passes_cuda_dtypes_through():
    """diffusers' ``randn_tensor(shape, generator=cuda_gen, dtype=float16)`` is torch's float16 draw, and
    ``rand_tensor`` with float16 is torch's float16 ``rand`` (which maps values rounding to 1 to 0)."""
    folder = require("cuda_rng")
    for case in META["cases"]:
        if case["kind"] != "single" or case["dtype"] != "float16" or case["numel"] != 16384:
            continue
        fn = randn_tensor if case["fn"] == "randn" else rand_tensor
        ours = fn(tuple(case["shape"]), generator=TorchGenerator(case["seed"], device="cuda"), dtype=np.float16)
        assert ours.dtype == np.float16
        twin = float32_twin(case["seed"], 0, tuple(case["shape"])) if case["fn"] == "randn" else None
        check(case, ours, folder, " [randn_tensor]", twin)
        listed = fn(tuple(case["shape"]), generator=[TorchGenerator(case["seed"], device="cuda")], dtype=np.float16)
        np.testing.assert_array_equal(listed, ours)


def test_bfloat16_type():
    out = TorchGenerator(0, device="cuda").randn((4,), dtype="bfloat16")
    try:
        import ml_dtypes
    except ImportError:
        assert out.dtype == np.float32
    else:
        assert out.dtype == ml_dtypes.bfloat16
        np.testing.assert_array_equal(TorchGenerator(0, device="cuda").randn((4,), dtype=ml_dtypes.bfloat16), out)


# -- tests/fixtures/cuda_rng_extra (seeds across the range, draws of several rounds, torch's state) ---------


def _extra_singles():
    return [pytest.param(c, id=f"{c['key']}-{c['fn']}-{c['dtype']}-seed{c['seed']}") for c in EXTRA_META["singles"]]


@pytest.mark.parametrize("case", _extra_singles())
def test_seeds_across_torchs_range(case):
    g = TorchGenerator(case["seed"], device="cuda", **gpu(EXTRA_META))
    assert g.initial_seed() == case["initial_seed"]
    draw_and_check(g, case, EXTRA, gpu(EXTRA_META), " [extra]")


def test_offsets_and_torch_states_of_a_long_sequence():
    """Draws whose threads loop (numel > threads x unroll), empty draws, every dtype: after each draw our
    offset is torch's, and torch's own 16-byte state, set on a fresh generator, continues the stream."""
    seq = EXTRA_META["sequence"]
    g = TorchGenerator(seq["seed"], device="cuda", **gpu(EXTRA_META))
    for i, case in enumerate(seq["draws"]):
        draw_and_check(g, case, EXTRA, gpu(EXTRA_META), " [extra]")
        assert g.get_state() == {"seed": case["seed_after"], "offset": case["offset_after"]}, case["key"]
        if i + 1 < len(seq["draws"]):
            resumed = TorchGenerator(0, device="cuda", **gpu(EXTRA_META))
            resumed.set_state(streams(EXTRA)[case["key"] + "__state"])
            draw_and_check(resumed, seq["draws"][i + 1], EXTRA, gpu(EXTRA_META), " [extra]")


def test_manual_seed_rules_as_measured_on_gpu():
    for entry in EXTRA_META["manual_seed"]:
        if "error" in entry:
            with pytest.raises(ValueError, match=str(entry["seed"])):
                TorchGenerator(entry["seed"], device="cuda")
        else:
            assert TorchGenerator(entry["seed"], device="cuda").initial_seed() == entry["initial_seed"]


# -- seeds and bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, -1, -5, 2**63 - 1, 2**63, -(2**63), 2**64 - 1, 2**32 + 3])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_seed_range_is_torchs(seed, device):
    """torch.Generator.manual_seed's int rules (the same Python binding for every device)."""
    assert TorchGenerator(seed, device=device).initial_seed() == torch.Generator().manual_seed(seed).initial_seed()


@pytest.mark.parametrize("seed", [2**64, -(2**63) - 1, 10**30])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_seed_outside_torchs_range_is_refused(seed, device):
    with pytest.raises((RuntimeError, ValueError), match="Overflow"):
        torch.Generator().manual_seed(seed)
    with pytest.raises(ValueError, match=re.escape(f"2**64 - 1] (torch's range), got {seed}.")):
        TorchGenerator(seed, device=device)
    with pytest.raises(ValueError, match=str(seed)):
        TorchGenerator(0, device=device).manual_seed(seed)


@pytest.mark.parametrize("seed", [1.5, True, "3", None])
def test_seed_that_is_not_an_int_is_refused(seed):
    with pytest.raises((TypeError, RuntimeError)):
        torch.Generator().manual_seed(seed)
    with pytest.raises(TypeError, match="seed must be an int"):
        TorchGenerator(seed, device="cuda")


@pytest.mark.parametrize("device", ["gpu", "CUDA0", "cuda:x", "mps", 0, None])
def test_unknown_device_is_refused(device):
    with pytest.raises(ValueError, match=r"device must be 'cpu' or 'cuda'.*got " + re.escape(repr(device))):
        TorchGenerator(0, device=device)


def test_cuda_device_with_index():
    assert TorchGenerator(0, device="cuda:1").device == "cuda:1"
    np.testing.assert_array_equal(TorchGenerator(0, device="cuda:1").rand((9,)), TorchGenerator(0, device="cuda").rand((9,)))


@pytest.mark.parametrize("grid, message", [
    (dict(multi_processor_count=0, max_threads_per_multi_processor=2048), "multi_processor_count must be at least 1, got 0"),
    (dict(multi_processor_count=-3, max_threads_per_multi_processor=2048), "multi_processor_count must be at least 1, got -3"),
    (dict(multi_processor_count=132, max_threads_per_multi_processor=0), "max_threads_per_multi_processor must be at least 256, got 0"),
    (dict(multi_processor_count=132, max_threads_per_multi_processor=128), "at least 256, got 128"),
    (dict(multi_processor_count=132), "give both multi_processor_count and max_threads_per_multi_processor"),
    (dict(max_threads_per_multi_processor=2048), "give both"),
])
def test_bad_grid_numbers_are_refused(grid, message):
    with pytest.raises(ValueError, match=message):
        TorchGenerator(0, device="cuda", **grid)


def test_grid_numbers_must_be_ints_and_cuda_only():
    with pytest.raises(TypeError, match="multi_processor_count must be an int"):
        TorchGenerator(0, device="cuda", multi_processor_count=13.0, max_threads_per_multi_processor=2048)
    with pytest.raises(ValueError, match="apply to device='cuda' only"):
        TorchGenerator(0, multi_processor_count=132, max_threads_per_multi_processor=2048)


def test_dtypes_per_device():
    with pytest.raises(TypeError, match="float16"):  # the CPU path draws float32 and casts, as before
        TorchGenerator(0).randn((3,), dtype=np.float16)
    assert TorchGenerator(0, device="cuda").randn((3,), dtype=np.float16).dtype == np.float16
    with pytest.raises(TypeError, match="CUDA noise dtype must be one of float32, float64, float16, bfloat16"):
        TorchGenerator(0, device="cuda").rand((3,), dtype=np.int32)


def test_bad_states_are_refused():
    g = TorchGenerator(0, device="cuda")
    with pytest.raises(ValueError, match="multiple of 4"):
        g.set_state({"seed": 0, "offset": 6})
    with pytest.raises(ValueError, match="16-byte"):
        g.set_state(np.zeros(8, np.uint8))
    with pytest.raises(ValueError, match="seed must be in"):
        g.set_state({"seed": 2**64, "offset": 0})


def test_tensors_torch_splits_are_refused():
    """Over 2**31 - 1 bytes torch launches per 32-bit-indexable piece, each advancing the offset again."""
    g = TorchGenerator(0, device="cuda")
    with pytest.raises(ValueError, match="over 2\\*\\*31 - 1 bytes.*536870913 float32"):
        g.randn((2**29 + 1,))
    with pytest.raises(ValueError, match="1073774592 float16"):
        g.rand((2**15, 2**15 + 1), dtype=np.float16)
    assert g.get_state()["offset"] == 0
