"""The few torch names a diffusers script uses around a pipeline, without torch, so that the script
ports by changing its imports: ``import edge_sched.torch_compat as torch``.

- ``torch.Generator(device="cpu" | "cuda").manual_seed(s)`` and ``torch.manual_seed(s)``: the same noise
  as torch's CPU or CUDA generator (:class:`edge_sched.random.TorchGenerator`);
- ``torch.float16`` / ``float32`` / ``bfloat16`` (for ``torch_dtype=``; numpy dtypes where numpy has them);
- ``torch.device(...)``, ``torch.cuda.is_available()`` (False: nothing here runs on CUDA through torch),
  ``torch.backends.mps.is_available()`` (False), ``torch.cuda.empty_cache()`` (nothing to free);
- ``torch.no_grad()`` / ``torch.inference_mode()`` (context managers and decorators that do nothing:
  there are no gradients here), ``torch.randn(shape, generator=...)`` (numpy, torch's numbers),
  ``torch.tensor`` / ``from_numpy`` / ``cat`` (numpy arrays).

Anything else a script takes from torch is not here: this is not torch, and tensors are numpy arrays.
"""

from __future__ import annotations

import contextlib
import types

import numpy as np

from .random import TorchGenerator, randn_tensor


class _DType:
    """A dtype numpy lacks (bfloat16), named as torch names it."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"torch_compat.{self.name}"


float16 = half = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
bfloat16 = _DType("bfloat16")
int64 = long = np.dtype(np.int64)


def Generator(device="cpu") -> TorchGenerator:  # noqa: N802 - torch's name
    """``torch.Generator(device)``: seed it with ``.manual_seed(s)``."""
    return TorchGenerator(device=str(getattr(device, "type", device)))


def manual_seed(seed: int) -> TorchGenerator:
    """``torch.manual_seed(s)``: torch returns its (seeded) default CPU generator; so does this."""
    return TorchGenerator(seed)


class device:  # noqa: N801 - torch's name
    """``torch.device("cuda:0")``: its ``type`` and ``index``."""

    def __init__(self, type: str, index: int | None = None):  # noqa: A002 - torch's argument name
        name, _, number = str(type).partition(":")
        self.type, self.index = name, int(number) if number else index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    __repr__ = __str__


cuda = types.SimpleNamespace(is_available=lambda: False, device_count=lambda: 0, empty_cache=lambda: None,
                             manual_seed=lambda seed: None)
backends = types.SimpleNamespace(mps=types.SimpleNamespace(is_available=lambda: False, is_built=lambda: False))


class _NoGrad(contextlib.ContextDecorator):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def no_grad() -> _NoGrad:
    return _NoGrad()


def inference_mode(mode: bool = True) -> _NoGrad:
    return _NoGrad()


def tensor(data, dtype=None, device=None, **_ignored) -> np.ndarray:
    return np.asarray(data, dtype=dtype)


def from_numpy(array) -> np.ndarray:
    return np.asarray(array)


def cat(tensors, dim: int = 0) -> np.ndarray:
    return np.concatenate(tensors, axis=dim)


def randn(*shape, generator=None, dtype=None, device=None, **_ignored) -> np.ndarray:
    """``torch.randn(shape, generator=g)`` with torch's numbers (float32 unless ``dtype``)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return randn_tensor(tuple(shape), generator=generator, dtype=np.float32 if dtype is None else dtype)
