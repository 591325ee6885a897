"""torchsde's Brownian noise, in numpy: the same seed gives diffusers' DPM-Solver SDE noise.

diffusers draws the noise of DPMSolverSDEScheduler and CosineDPMSolverMultistepScheduler from
``torchsde.BrownianInterval(t0, t1, entropy=seed, tol=1e-6, pool_size=24, halfway_tree=True)``
(no Levy area). :class:`BrownianInterval` computes what that object returns:

- Times are rounded to ``ndigits = -int(log10(tol))`` decimals (6): the span's end points, each
  query's end points and every split point. The tree is dyadic: node [s, e] splits at
  round((s + e) / 2); the root is [round(t0), round(t1)].
- Randomness: the root's W(t0, t1) is ``randn(seed_0) * sqrt(t1 - t0)`` (unrounded t0, t1), seed_0
  the first word of ``SeedSequence(entropy, pool_size=24).generate_state(3)``. The node at depth d
  whose path from the root reads as the integer k (left 0, right 1, first step most significant)
  splits with the noise ``randn(seed)``, seed the first word of
  ``SeedSequence(entropy, spawn_key=(k, d), pool_size=24).generate_state(4)``. ``randn(seed)`` is a
  freshly seeded torch generator of the tree's device: ``torch.randn(shape, generator=
  torch.Generator(device).manual_seed(seed))``, i.e. :class:`edge_sched.random.TorchGenerator`.
- A split of a node with increment W into [s, m], [m, e] is the Brownian bridge, in the tree's
  dtype with the float64 scalars rounded to it (as torch multiplies a tensor by a Python float):
  W_left = (W * (m - s)) * (1 / (e - s)) + sqrt((m - s) (e - m) / (e - s)) * z,  W_right = W - W_left.
- A query [ta, tb] is clamped into the span (torchsde warns), rounded, and answered as the sum,
  left to right, of the largest tree nodes that tile it. The result depends only on the seed,
  the span, the shape, the dtype and the query: not on earlier queries or on what is cached.
  Two times that round to the same time give zero (torchsde recurses without end on them when
  they differed before rounding: CosineDPM's last step with final_sigmas_type="sigma_min").

:class:`BrownianTreeNoiseSampler` is diffusers' wrapper (scheduling_dpmsolver_sde.py): sigmas are
taken as float32 like ``torch.as_tensor(sigma)``, one tree per seed when given one seed per batch
item, and the increment is divided by sqrt(|sigma_next - sigma|) (float32).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import numpy as np

from .random import TorchGenerator

_F32 = np.float32
_CACHE_SPLITS = 64  # split nodes whose left child is kept (one array each; the right is parent - left), per tree
DEVICES = ("cpu", "cuda")


def _node_seed(entropy: int, pool_size: int, key: int | None = None, depth: int = 0, words: int = 4) -> int:
    spawn_key = () if key is None else (key, depth)
    return int(np.random.SeedSequence(entropy=entropy, spawn_key=spawn_key, pool_size=pool_size)
               .generate_state(words)[0])


def _fresh_generator(seed: int, device: str) -> TorchGenerator:
    """``torch.Generator(device).manual_seed(seed)``, in numpy."""
    return TorchGenerator(seed, device=device)


class BrownianInterval:
    """torchsde.BrownianInterval(t0, t1, size=shape, dtype, device, entropy, tol, pool_size,
    halfway_tree=True): ``tree(ta, tb)`` is the increment W(tb) - W(ta) for ta <= tb."""

    def __init__(self, t0: float, t1: float, shape: Sequence[int], entropy: int, dtype=np.float32,
                 device: str = "cpu", tol: float = 1e-6, pool_size: int = 24):
        t0, t1 = float(t0), float(t1)
        if not (math.isfinite(t0) and math.isfinite(t1)) or t0 > t1:
            raise ValueError(f"BrownianInterval needs finite t0 <= t1; got t0={t0!r}, t1={t1!r}.")
        if isinstance(entropy, bool) or not isinstance(entropy, (int, np.integer)) or entropy < 0:
            raise ValueError(f"BrownianInterval entropy (seed) must be a non-negative int, got {entropy!r}.")
        if not 0 < tol < 1:
            raise ValueError(f"BrownianInterval tol must be in (0, 1) (a halfway tree needs one), got {tol!r}.")
        if device not in DEVICES:
            raise ValueError(f"BrownianInterval device must be one of {DEVICES}, got {device!r}.")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"BrownianInterval dtype must be float32 or float64, got {self.dtype}.")
        self.shape = tuple(int(s) for s in shape)
        self.entropy, self.pool_size, self.device = int(entropy), int(pool_size), device
        self._ndigits = -int(math.log10(tol))
        self.start, self.end = self._round(t0), self._round(t1)
        root_seed = _node_seed(self.entropy, self.pool_size, words=3)
        self._w_root = self._randn(root_seed) * self.dtype.type(math.sqrt(t1 - t0))
        self._left: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()  # the recently split nodes

    def _round(self, t: float) -> float:
        return round(t, self._ndigits)

    def _randn(self, seed: int) -> np.ndarray:
        return _fresh_generator(seed, self.device).randn(self.shape, self.dtype)

    def _children(self, depth: int, key: int, start: float, mid: float, end: float, w: np.ndarray):
        """The increments over [start, mid] and [mid, end] of the node (depth, key), whose is ``w``."""
        left = self._left.get((depth, key))
        if left is None:
            scalar = self.dtype.type
            left_diff, right_diff, h_reciprocal = mid - start, end - mid, 1 / (end - start)
            z = self._randn(_node_seed(self.entropy, self.pool_size, key, depth))
            left = (w * scalar(left_diff)) * scalar(h_reciprocal)
            left += scalar(math.sqrt(left_diff * right_diff * h_reciprocal)) * z
            self._left[(depth, key)] = left
            if len(self._left) > _CACHE_SPLITS:
                self._left.popitem(last=False)
        else:
            self._left.move_to_end((depth, key))
        return left, w - left

    def _tiles(self, ta: float, tb: float) -> list[np.ndarray]:
        """Increments of the largest nodes tiling [ta, tb] (rounded, start <= ta < tb <= end), in order."""
        out: list[np.ndarray] = []
        pending = [(0, 0, self.start, self.end, self._w_root, ta, tb)]
        while pending:
            depth, key, start, end, w, a, b = pending.pop()
            while not (a == start and b == end):
                mid = self._round(0.5 * (end + start))
                w_left, w_right = self._children(depth, key, start, mid, end, w)
                depth, key = depth + 1, 2 * key
                if b <= mid:
                    end, w = mid, w_left
                elif a >= mid:
                    start, w, key = mid, w_right, key + 1
                else:  # both halves: the right one after the left one is done
                    pending.append((depth, key + 1, mid, end, w_right, mid, b))
                    end, w, b = mid, w_left, mid
            out.append(w)
        return out

    def __call__(self, ta: float, tb: float) -> np.ndarray:
        ta, tb = (min(max(float(t), self.start), self.end) for t in (ta, tb))
        if ta > tb:
            raise ValueError(f"BrownianInterval query needs ta <= tb; got ta={ta!r}, tb={tb!r}.")
        ta, tb = self._round(ta), self._round(tb)
        if ta == tb:  # zero; (torchsde recurses without end where only the rounding made them equal)
            return np.zeros(self.shape, self.dtype)
        tiles = self._tiles(ta, tb)
        w = tiles[0].copy()  # (tiles may be cached arrays)
        for tile in tiles[1:]:
            w += tile
        return w


def _float32(value) -> np.float32:
    """A sigma as ``torch.as_tensor(sigma)`` holds it: float32."""
    return _F32(float(value))


class BrownianTreeNoiseSampler:
    """diffusers' BrownianTreeNoiseSampler (torchsde), without torch: unit-variance noise
    (W(sigma_next) - W(sigma)) / sqrt(|sigma_next - sigma|) from Brownian trees over
    [sigma_min, sigma_max].

    ``seed`` is one int, or one int per batch item (then ``shape[0]`` trees of ``shape[1:]``, as
    diffusers' BatchedBrownianTree does with a list of seeds). ``dtype`` is the sample's (torchsde
    draws in it); ``device`` the torch device whose generator torchsde seeds ("cpu" or "cuda").
    """

    def __init__(self, shape: Sequence[int], sigma_min: float, sigma_max: float, seed, dtype=np.float32,
                 device: str = "cpu"):
        shape = tuple(int(s) for s in shape)
        t0, t1 = _float32(sigma_min), _float32(sigma_max)
        self.sign = 1.0 if t0 < t1 else -1.0
        t0, t1 = min(t0, t1), max(t0, t1)
        if isinstance(seed, (list, tuple)):
            if not shape or len(seed) != shape[0]:
                raise ValueError(f"one seed per batch item expected ({shape[0] if shape else 0}), got {len(seed)}.")
            seeds, tree_shape, self.batched = list(seed), shape[1:], True
        else:
            seeds, tree_shape, self.batched = [seed], shape, False
        self.trees = [BrownianInterval(t0, t1, tree_shape, s, dtype=dtype, device=device) for s in seeds]

    def __call__(self, sigma: float, sigma_next: float) -> np.ndarray:
        a, b = _float32(sigma), _float32(sigma_next)
        lo, hi, sign = (a, b, 1.0) if a < b else (b, a, -1.0)
        increments = [tree(lo, hi) for tree in self.trees]
        w = np.stack(increments) if self.batched else increments[0]
        if self.sign * sign < 0:
            w = -w
        return w / w.dtype.type(np.sqrt(np.abs(b - a)))


__all__ = ["BrownianInterval", "BrownianTreeNoiseSampler", "DEVICES"]
