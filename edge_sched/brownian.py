"""Seedable Brownian motion queried at any time, in any order (numpy; no torchsde).

A Brownian tree (as in torchsde's BrownianTree / k-diffusion's BrownianTreeNoiseSampler): on
[t0, t1], W(t0) = 0 and W(t1) ~ N(0, t1 - t0). Any other W(t) is found by bisection: on an interval
[a, b] with known W(a), W(b), the midpoint value is a Brownian-bridge draw

    W(m) = (W(a) + W(b)) / 2 + sqrt((b - a) / 4) * z,    m = (a + b) / 2,

and the search continues in the half holding t until the interval is shorter than ``tol`` times
the whole span (default 1e-10: about 33 levels), where W is interpolated linearly: an increment
over an interval of length d then has variance d minus at most tol * (t1 - t0) / 2, i.e. exact
to 1e-3 relative down to d = 1e-6 on Stable Diffusion's sigma span [0.03, 14.6]. Each node's z comes from its own generator, seeded by (seed, node index),
so W(t) depends only on the seed and t: the same query gives the same value whatever was asked
before. Increments over disjoint intervals are independent and W(b) - W(a) ~ N(0, b - a).

diffusers' DPMSolverSDEScheduler draws its noise as BrownianTreeNoiseSampler(sigma, sigma_next):
the increment between the two noise levels divided by sqrt(|sigma_next - sigma|), i.e. a standard
normal per element; :class:`BrownianTreeNoiseSampler` is that interface. Its values are not
torchsde's (a different generator), so a torch pipeline and ours share noise statistics, not bits.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import numpy as np

_CACHE_NODES = 512  # bisection nodes kept per tree (each is one array of the sample's shape)


class BrownianTree:
    """W on [t0, t1] for arrays of ``shape`` (every element an independent Brownian motion).

    ``tree(ta, tb)`` is the increment W(tb) - W(ta) (any order of ta, tb inside the span);
    ``tree.value(t)`` is W(t). Values are float64.
    """

    def __init__(self, t0: float, t1: float, shape: Sequence[int], seed: int, tol: float = 1e-10, max_depth: int = 64):
        t0, t1 = float(t0), float(t1)
        if not (math.isfinite(t0) and math.isfinite(t1)):
            raise ValueError(f"BrownianTree needs a finite span; got t0={t0!r}, t1={t1!r}.")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"BrownianTree seed must be a non-negative int, got {seed!r}.")
        if not 0 < tol < 1:
            raise ValueError(f"BrownianTree tol must be in (0, 1), got {tol!r}.")
        self.t0, self.t1 = min(t0, t1), max(t0, t1)
        self.shape = tuple(int(s) for s in shape)
        self.seed = int(seed)
        self._min_width = tol * (self.t1 - self.t0)
        self._max_depth = max_depth
        self._w1 = self._normal(1) * math.sqrt(self.t1 - self.t0)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def _normal(self, node: int) -> np.ndarray:
        return np.random.default_rng([self.seed, node]).standard_normal(self.shape)

    def _midpoint(self, node: int, wa: np.ndarray, wb: np.ndarray, width: float) -> np.ndarray:
        w = self._cache.get(node)
        if w is None:
            w = 0.5 * (wa + wb) + math.sqrt(width / 4) * self._normal(node)
            self._cache[node] = w
            if len(self._cache) > _CACHE_NODES:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(node)
        return w

    def value(self, t: float) -> np.ndarray:
        """W(t) for t in [t0, t1]."""
        t = float(t)
        if not self.t0 <= t <= self.t1:
            # a query a rounding error outside (a float32 sigma round-tripped through log/exp) is
            # taken at the end point, as torchsde does (it warns)
            slack = 1e-6 * max(abs(self.t0), abs(self.t1))
            if not self.t0 - slack <= t <= self.t1 + slack:
                raise ValueError(f"time {t!r} is outside the tree's span [{self.t0!r}, {self.t1!r}].")
            t = min(max(t, self.t0), self.t1)
        a, b = self.t0, self.t1
        wa, wb = np.zeros(self.shape), self._w1
        if t == a:  # (also the whole of an empty span)
            return wa
        if t == b:
            return wb
        # children of heap node k are 2k and 2k + 1 (the root span [t0, t1] is node 1)
        node, depth = 1, 0
        while b - a > self._min_width and depth < self._max_depth:
            m = 0.5 * (a + b)
            node = 2 * node
            wm = self._midpoint(node, wa, wb, b - a)
            if t == m:
                return wm
            if t < m:
                b, wb = m, wm
            else:
                a, wa, node = m, wm, node + 1
            depth += 1
        return wa + (t - a) / (b - a) * (wb - wa)

    def __call__(self, ta: float, tb: float) -> np.ndarray:
        """The increment W(tb) - W(ta)."""
        return self.value(tb) - self.value(ta)


class BrownianTreeNoiseSampler:
    """Unit-variance noise for a step between two noise levels, from a Brownian tree over
    [sigma_min, sigma_max]: (W(sigma_next) - W(sigma)) / sqrt(|sigma_next - sigma|).

    ``seed`` is one int, or one int per batch item (then ``shape[0]`` trees of ``shape[1:]``,
    as diffusers' BatchedBrownianTree does with a list of seeds). Returns float32 arrays.
    """

    def __init__(self, shape: Sequence[int], sigma_min: float, sigma_max: float, seed, tol: float = 1e-10):
        shape = tuple(shape)
        if isinstance(seed, (list, tuple)):
            if not shape or len(seed) != shape[0]:
                raise ValueError(f"one seed per batch item expected ({shape[0] if shape else 0}), got {len(seed)}.")
            self.trees = [BrownianTree(sigma_min, sigma_max, shape[1:], s, tol) for s in seed]
            self.batched = True
        else:
            self.trees = [BrownianTree(sigma_min, sigma_max, shape, seed, tol)]
            self.batched = False

    def __call__(self, sigma: float, sigma_next: float) -> np.ndarray:
        sigma, sigma_next = float(sigma), float(sigma_next)
        increments = [tree(sigma, sigma_next) for tree in self.trees]
        w = np.stack(increments) if self.batched else increments[0]
        return (w / math.sqrt(abs(sigma_next - sigma))).astype(np.float32)


__all__ = ["BrownianTree", "BrownianTreeNoiseSampler"]
