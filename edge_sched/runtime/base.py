"""The one small interface every engine implements: a loaded graph with named, typed inputs and outputs.

A :class:`Component` takes numpy arrays by input name and returns numpy arrays by output name.
It checks the names, casts each input to the graph's declared dtype (fp16 graphs get fp16
inputs; the scheduler math around them stays float32) and checks ranks and static dimensions,
so a mismatch is a readable error naming the component, the input and both shapes instead of an
engine stack trace.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


class EngineError(RuntimeError):
    """A graph could not be loaded or run (missing/corrupt file, unknown device or provider, bad feed)."""


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: ``shape`` holds ints for static dims and None for dynamic ones."""

    name: str
    shape: tuple[int | None, ...] | None  # None: rank unknown
    dtype: np.dtype

    def describe(self) -> str:
        dims = "?" if self.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"
        return f"{self.name}: {self.dtype.name} {dims}"

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(d is not None for d in self.shape)


class Component:
    """A loaded graph. Engines subclass it and implement ``_run`` and ``release``."""

    engine = "?"

    def __init__(self, name: str, path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec]):
        self.name, self.path = name, Path(path)
        self.inputs = {s.name: s for s in inputs}
        self.outputs = {s.name: s for s in outputs}

    def __repr__(self) -> str:
        ins = ", ".join(s.describe() for s in self.inputs.values())
        outs = ", ".join(s.describe() for s in self.outputs.values())
        return f"<{type(self).__name__} {self.name} ({ins}) -> ({outs})>"

    def __call__(self, **feeds) -> dict[str, np.ndarray]:
        return self._run(self.prepare(feeds))

    def prepare(self, feeds: dict) -> dict[str, np.ndarray]:
        """Check names, ranks and static dims; cast to the declared dtypes."""
        missing = [n for n in self.inputs if n not in feeds]
        unknown = [n for n in feeds if n not in self.inputs]
        if missing or unknown:
            raise EngineError(
                f"{self.name} ({self.path}): expected inputs {self.describe_inputs()}; "
                f"missing {missing or 'none'}, unexpected {unknown or 'none'}"
            )
        out = {}
        for name, value in feeds.items():
            spec = self.inputs[name]
            arr = np.asarray(value)
            if arr.dtype != spec.dtype:
                arr = arr.astype(spec.dtype)
            if spec.shape is not None:
                if arr.ndim != len(spec.shape) or any(d is not None and d != a for d, a in zip(spec.shape, arr.shape)):
                    raise EngineError(
                        f"{self.name} ({self.path}): input {spec.describe()} cannot take an array of shape "
                        f"{list(arr.shape)}"
                    )
            # not np.ascontiguousarray: it turns 0-d arrays (scalar timesteps) into 1-d ones
            out[name] = arr if arr.flags.c_contiguous else arr.copy(order="C")
        return out

    def describe_inputs(self) -> str:
        return "(" + ", ".join(s.describe() for s in self.inputs.values()) + ")"

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def release(self) -> None:
        """Free the engine's memory; the component cannot run afterwards."""


_NUMPY_DTYPES = {
    "float": np.float32, "float32": np.float32, "f32": np.float32,
    "float16": np.float16, "f16": np.float16, "half": np.float16,
    "double": np.float64, "float64": np.float64, "f64": np.float64,
    "int64": np.int64, "i64": np.int64, "int32": np.int32, "i32": np.int32,
    "int8": np.int8, "i8": np.int8, "uint8": np.uint8, "u8": np.uint8, "bool": np.bool_, "boolean": np.bool_,
}


def numpy_dtype(engine_type: str) -> np.dtype:
    """'tensor(float16)', 'f16', 'int64_t' ... -> numpy dtype."""
    key = str(engine_type).strip().lower()
    if key.startswith("tensor(") and key.endswith(")"):
        key = key[7:-1]
    key = key.removesuffix("_t")
    if key not in _NUMPY_DTYPES:
        raise EngineError(f"unsupported tensor element type {engine_type!r}")
    return np.dtype(_NUMPY_DTYPES[key])
