"""edge_sched.brownian on its own terms: a Brownian motion, seeded, queried in any order.
(Its bits against torchsde: tests/parity/test_brownian.py.)

Statistical checks use many independent elements (every element of the array is its own
Brownian motion) and fixed seeds, so they are deterministic; the bounds are 5 standard errors
of the estimator for Gaussian data (a correct implementation fails one with probability below
1e-6 per seed, and the seeds are fixed).
"""

import math

import numpy as np
import pytest

from edge_sched.brownian import BrownianInterval, BrownianTreeNoiseSampler

N = 200_000  # independent paths (array elements)
T0, T1 = 0.0292, 14.6146  # the span of Stable Diffusion's sigmas


def _tree(seed=0, shape=(N,)):
    return BrownianInterval(T0, T1, shape, seed)


@pytest.mark.parametrize("a,b", [(T0, T1), (1.0, 1.5), (0.03, 0.0301), (7.3, 7.300001), (2.0, 9.0)])
def test_increment_variance_is_the_interval_length(a, b):
    inc = _tree(seed=1)(a, b).astype(np.float64)
    # sample variance of N(0, s^2) data: standard error s^2 sqrt(2 / (N - 1))
    rel_se = math.sqrt(2 / (N - 1))
    assert abs(inc.var() / (b - a) - 1) < 5 * rel_se
    # and mean 0: standard error sqrt((b - a) / N)
    assert abs(inc.mean()) < 5 * math.sqrt((b - a) / N)


@pytest.mark.parametrize("first,second", [((0.5, 1.0), (1.0, 3.0)),  # adjacent (shared end point)
                                          ((0.1, 0.2), (5.0, 5.1)),  # far apart
                                          ((2.0, 2.0001), (2.0001, 2.0002))])  # tiny, adjacent
def test_disjoint_increments_are_independent(first, second):
    tree = _tree(seed=2)
    x, y = tree(*first), tree(*second)
    # correlation of independent Gaussians: standard error 1 / sqrt(N)
    assert abs(np.corrcoef(x, y)[0, 1]) < 5 / math.sqrt(N)
    # and the increments add up (W is one path): W(a, c) = W(a, b) + W(b, c), to float32 rounding
    if first[1] == second[0]:
        np.testing.assert_allclose(tree(first[0], second[1]), x + y, rtol=0, atol=1e-5)


def test_overlapping_increments_have_the_overlap_as_covariance():
    tree = _tree(seed=3)
    x, y = tree(1.0, 3.0).astype(np.float64), tree(2.0, 4.0).astype(np.float64)
    # Cov(W(3) - W(1), W(4) - W(2)) = 1 (the overlap [2, 3]); standard error ~ sqrt(2*2 + 1) / sqrt(N)
    assert abs(np.mean(x * y) - 1.0) < 5 * math.sqrt(5 / N)


def test_same_seed_and_query_same_value_in_any_order():
    queries = [(0.03, 14.6), (7.3, 10.0), (1.0, 3.14159), (0.5, 0.5000011), (0.0292, 14.6146), (2.0, 2.5)]
    forward = _tree(seed=4, shape=(3, 5))
    values = {q: forward(*q) for q in queries}
    for order in (queries[::-1], sorted(queries), queries[3:] + queries[:3]):
        tree = _tree(seed=4, shape=(3, 5))
        for q in order:
            np.testing.assert_array_equal(tree(*q), values[q])
    # asking again (cached or not) gives the same bits
    for q in queries:
        np.testing.assert_array_equal(forward(*q), values[q])
    # a different seed, a different path
    assert not np.array_equal(_tree(seed=5, shape=(3, 5))(1.0, 3.14159), values[(1.0, 3.14159)])


def test_end_points_and_clamping():
    tree = _tree(seed=6, shape=(4,))
    np.testing.assert_array_equal(tree(T0, T0), 0.0)
    np.testing.assert_array_equal(tree(2.0, 2.0), 0.0)
    # queries outside the span are clamped into it, as torchsde does
    np.testing.assert_array_equal(tree(0.0, 1.0), tree(T0, 1.0))
    np.testing.assert_array_equal(tree(1.0, 99.0), tree(1.0, T1))
    # times closer than the tolerance (1e-6) are one time
    np.testing.assert_array_equal(tree(2.0, 2.0000001), 0.0)


def test_noise_sampler_is_unit_normal_signed_and_batched_by_seed():
    sampler = BrownianTreeNoiseSampler((N,), T0, T1, seed=7)
    z = sampler(3.0, 2.5)  # a step down in sigma, as a sampler takes them
    assert z.dtype == np.float32 and z.shape == (N,)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / (N - 1)) and abs(z.mean()) < 5 / math.sqrt(N)
    np.testing.assert_array_equal(sampler(2.5, 3.0), -z)
    # float64 trees for float64 samples
    assert BrownianTreeNoiseSampler((3,), T0, T1, seed=7, dtype=np.float64)(3.0, 2.5).dtype == np.float64
    # one seed per batch item: item k is the unbatched sampler with seed k
    batched = BrownianTreeNoiseSampler((2, 3, 4), T0, T1, seed=[11, 12])
    single = BrownianTreeNoiseSampler((3, 4), T0, T1, seed=12)
    np.testing.assert_array_equal(batched(3.0, 2.5)[1], single(3.0, 2.5))


def test_cuda_trees_draw_from_the_cuda_generator():
    # torchsde seeds torch.Generator(device) for every node; on "cuda" that is torch's Philox stream
    # (edge_sched.random.TorchGenerator(seed, device="cuda")), another path than the CPU one
    cpu = BrownianTreeNoiseSampler((2, 16), T0, T1, seed=3)
    cuda = BrownianTreeNoiseSampler((2, 16), T0, T1, seed=3, device="cuda")
    z = cuda(3.0, 2.5)
    assert z.shape == (2, 16) and np.isfinite(z).all()
    assert not np.allclose(z, cpu(3.0, 2.5))


def test_bad_input():
    with pytest.raises(ValueError, match="entropy"):
        BrownianInterval(0.0, 1.0, (2,), entropy=-1)
    with pytest.raises(ValueError, match="finite"):
        BrownianInterval(0.0, math.inf, (2,), entropy=0)
    with pytest.raises(ValueError, match="t0 <= t1"):
        BrownianInterval(2.0, 1.0, (2,), entropy=0)
    with pytest.raises(ValueError, match="ta <= tb"):
        BrownianInterval(0.0, 1.0, (2,), entropy=0)(0.75, 0.5)
    with pytest.raises(ValueError, match="device"):
        BrownianInterval(0.0, 1.0, (2,), entropy=0, device="mps")
    with pytest.raises(TypeError, match="float16"):
        BrownianInterval(0.0, 1.0, (2,), entropy=0, dtype=np.float16)
    with pytest.raises(ValueError, match="one seed per batch item"):
        BrownianTreeNoiseSampler((3, 2), 0.0, 1.0, seed=[1, 2])
