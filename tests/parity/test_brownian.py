"""edge_sched.brownian against torchsde, through diffusers' own BrownianTreeNoiseSampler: the same
seed, span, shape and queries give the same bits. (diffusers divides the increment by torch's
float32 sqrt of the step, which is an ulp off for ~1 in 6 values: bit for bit where diffusers takes
correctly rounded square roots, within that ulp of stock diffusers.)"""

import math
import sys
import warnings

import numpy as np
import pytest
import torch
import torchsde

import diffusers.schedulers.scheduling_dpmsolver_sde as diffusers_sde
from edge_sched.brownian import BrownianInterval, BrownianTreeNoiseSampler

from .harness import ieee_sqrt_in_torch, record

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torchsde warns on clamped queries

SD_SPAN = (0.029167534, 14.614647)  # Stable Diffusion's positive sigmas, as float32 values
AUDIO_SPAN = (0.3, 500.0)  # CosineDPMSolverMultistepScheduler's defaults


def _sde_queries(lo, hi, steps=12):
    """DPM-Solver SDE's query pattern (start -> midpoint, start -> next) plus a few out of range."""
    s = np.exp(np.linspace(math.log(hi), math.log(lo), steps)).astype(np.float32)
    q = []
    for a, b in zip(s[:-1], s[1:]):
        m = np.float32(math.sqrt(float(a) * float(b)))
        q += [(a, m), (a, b)]
    q += [(s[-3], np.float32(0)), (np.float32(hi * 1.5), s[2]), (s[3], s[7]), (s[7], s[3]), (s[0], s[-1])]
    return q


def _bits_differ(ours: np.ndarray, ref: np.ndarray) -> int:
    assert ours.dtype == ref.dtype and ours.shape == ref.shape, (ours.dtype, ref.dtype, ours.shape, ref.shape)
    as_int = {4: np.uint32, 8: np.uint64}[ours.dtype.itemsize]
    return int((ours.view(as_int) != ref.view(as_int)).sum())


CASES = [
    # (shape, dtype, seed or seeds, span)
    ((2, 4, 8, 8), np.float32, 7, SD_SPAN),
    ((1, 4, 64, 64), np.float32, 2**63 - 2, SD_SPAN),
    ((3, 5), np.float32, 0, SD_SPAN),  # fewer than 16 elements: torch's scalar normals
    ((2, 4, 8, 8), np.float64, 12345, SD_SPAN),
    ((2, 4, 8, 8), np.float32, [5, 2**40 + 3], SD_SPAN),  # one tree per batch item
    ((1, 2, 16, 8), np.float32, 3, AUDIO_SPAN),
    ((2, 3, 7), np.float32, 4, (AUDIO_SPAN[1], AUDIO_SPAN[0])),  # a span given high to low (sign flip)
]


@pytest.mark.parametrize("shape,dtype,seed,span", CASES, ids=lambda v: str(v)[:40])
def test_noise_sampler_is_torchsdes_bit_for_bit(shape, dtype, seed, span):
    lo, hi = span
    x = torch.zeros(shape, dtype=getattr(torch, np.dtype(dtype).name))
    ours = BrownianTreeNoiseSampler(shape, lo, hi, seed, dtype=dtype)
    ref = diffusers_sde.BrownianTreeNoiseSampler(x, lo, hi, seed)
    stock = diffusers_sde.BrownianTreeNoiseSampler(x, lo, hi, seed)
    differing, worst = 0, 0.0
    for a, b in _sde_queries(min(span), max(span)):
        got = ours(a, b)
        with ieee_sqrt_in_torch():
            differing += _bits_differ(got, ref(torch.tensor(a), torch.tensor(b)).numpy())
        expected = stock(torch.tensor(a), torch.tensor(b)).numpy()
        np.testing.assert_allclose(got, expected, rtol=2 * np.finfo(np.float32).eps, atol=0)  # (float32 divisor)
        worst = max(worst, float(np.abs(got - expected).max()))
    assert differing == 0, f"{differing} values differ"
    record("BrownianTreeNoiseSampler vs torchsde (values differing)", differing)
    record("BrownianTreeNoiseSampler vs torchsde (stock torch sqrt)", worst)


def test_answers_do_not_depend_on_earlier_queries():
    # torchsde's halfway tree: its values depend on the seed and the query only; so do ours
    queries = _sde_queries(*SD_SPAN)
    order = np.random.default_rng(0).permutation(len(queries))
    ref = torchsde.BrownianInterval(t0=float(np.float32(SD_SPAN[0])), t1=float(np.float32(SD_SPAN[1])), size=(4, 9),
                                    entropy=99, tol=1e-6, pool_size=24, halfway_tree=True)
    ours = BrownianInterval(np.float32(SD_SPAN[0]), np.float32(SD_SPAN[1]), (4, 9), 99)
    fresh = BrownianInterval(np.float32(SD_SPAN[0]), np.float32(SD_SPAN[1]), (4, 9), 99)
    for k in order:
        a, b = sorted(float(v) for v in queries[k])
        got = ours(a, b)
        assert _bits_differ(got, ref(a, b).numpy()) == 0
        np.testing.assert_array_equal(got, BrownianInterval(np.float32(SD_SPAN[0]), np.float32(SD_SPAN[1]), (4, 9),
                                                            99)(a, b))
        np.testing.assert_array_equal(got, fresh(a, b))


def test_query_closer_than_the_tolerance():
    # two times that round to the same 6-decimal time (CosineDPM's last step with
    # final_sigmas_type="sigma_min": 0.29999998 -> 0.30000001): torchsde recurses without end there,
    # ours gives the increment between two equal times, zero
    ta, tb = float(np.float32(0.29999998)), float(np.float32(0.3))
    ref = torchsde.BrownianInterval(t0=0.3, t1=500.0, size=(3,), entropy=1, tol=1e-6, pool_size=24, halfway_tree=True)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)  # (fail fast)
    try:
        with pytest.raises(RecursionError), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref(ta, tb)
    finally:
        sys.setrecursionlimit(limit)
    np.testing.assert_array_equal(BrownianInterval(0.3, 500.0, (3,), 1)(ta, tb), np.zeros(3, np.float32))
