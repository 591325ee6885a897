"""Record the numpy operations a function performs on stand-in arrays, as ONNX nodes.

A :class:`Traced` value stands for a tensor of a graph being built. It implements numpy's
override protocols (``__array_ufunc__``, NEP 13; ``__array_function__``, NEP 18), so unchanged
numpy code that computes with it, ``c * x + y`` or ``np.sqrt(x)`` or ``np.clip(x, -1, 1)``, adds
one ONNX node per numpy operation instead of computing. Everything that is not a Traced value
(plan-time numpy arrays and scalars, Python numbers) is a constant of the graph, converted to the
dtype numpy itself would convert it to (``ufunc.resolve_dtypes``: NEP 50 promotion, Python
scalars weak), so the graph repeats numpy's arithmetic operation for operation: float32 stays
float32 and a float64 constant promotes as it does in numpy.

Python control flow that reads data (``if x.max() > 0``, ``float(x)``) cannot be traced and
raises :class:`TraceError`, as does any numpy function the tracer does not know.

``np.asarray`` / ``np.array`` / ``np.asanyarray`` / ``np.ascontiguousarray`` are not overridable
by the protocols; inside :func:`tracing` they return a Traced argument as it is (cast where a
dtype is given) and call numpy for anything else.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

import numpy as np
from onnx import TensorProto, helper, numpy_helper


class TraceError(ValueError):
    """The traced code did something a graph cannot record (data-dependent Python, an unknown op)."""


ONNX_DTYPES = {
    np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.bool_): TensorProto.BOOL,
}

# numpy ufunc -> ONNX operator with the same element-wise semantics (IEEE basic ops are exact
# in both; exp / log / tanh are each library's own approximations)
_UFUNC_OPS = {
    np.add: "Add", np.subtract: "Sub", np.multiply: "Mul", np.true_divide: "Div", np.negative: "Neg",
    np.sqrt: "Sqrt", np.exp: "Exp", np.log: "Log", np.tanh: "Tanh", np.sin: "Sin", np.cos: "Cos",
    np.absolute: "Abs", np.maximum: "Max", np.minimum: "Min", np.sign: "Sign", np.reciprocal: "Reciprocal",
    np.floor: "Floor", np.ceil: "Ceil", np.greater: "Greater", np.greater_equal: "GreaterOrEqual",
    np.less: "Less", np.less_equal: "LessOrEqual", np.equal: "Equal", np.logical_and: "And",
    np.logical_or: "Or", np.logical_not: "Not", np.isnan: "IsNaN",
}


@dataclass
class Node:
    op: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)


class Recorder:
    """The nodes and constants of one trace, in the order the code produced them.

    Constants are not de-duplicated by value: each use is its own constant, so two traces of the
    same code on different plan values have the same structure (``export/step_graph.py`` relies
    on that to merge the steps of a schedule into one graph with per-step tables)."""

    def __init__(self, sample_shape=None):
        self.nodes: list[Node] = []
        self.consts: dict[str, np.ndarray] = {}
        self.inputs: dict[str, Traced] = {}
        self._count = 0
        # dims of the traced sample: a constant with one of them (>1) would bake the trace's shape in
        self._sample_dims = {d for d in (sample_shape or ()) if d > 1}

    def fresh(self, prefix: str = "v") -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def input(self, name: str, shape, dtype) -> "Traced":
        value = Traced(self, name, tuple(shape), np.dtype(dtype))
        self.inputs[name] = value
        return value

    def const(self, value, *, operand=True) -> str:
        """A new constant; ``operand``: an element-wise operand (not an axis list or a shape)."""
        array = np.asarray(value)
        if array.dtype not in ONNX_DTYPES:
            raise TraceError(f"a constant of dtype {array.dtype} has no ONNX tensor type here")
        if operand and any(d in self._sample_dims for d in array.shape):
            raise TraceError(
                f"a plan-time constant of shape {array.shape} has a dimension of the traced sample "
                f"({sorted(self._sample_dims)}): the step would only work for that shape"
            )
        name = self.fresh("c")
        self.consts[name] = array
        return name

    def shape_tensor(self, sizes) -> str:
        """A 1-D int64 tensor of ``sizes``: sizes read from a traced shape (:class:`Dim`) are taken from
        the runtime shape, -1 stays -1; another size of the traced sample's would be baked in: refused."""
        sizes = [s if isinstance(s, Dim) else int(s) for s in sizes]
        baked = [s for s in sizes if not isinstance(s, Dim) and s in self._sample_dims]
        if baked:
            raise TraceError(f"a shape {tuple(sizes)} holds the traced sample's size {baked[0]} as a number, "
                             "not read from a shape: the graph would only work for the traced shape")
        if not any(isinstance(s, Dim) for s in sizes):
            return self.const(np.asarray(sizes, dtype=np.int64), operand=False)
        parts = []
        for s in sizes:
            if isinstance(s, Dim):
                full = self.emit("Shape", [s.source.name], (s.source.ndim,), np.int64)
                axis = self.const(np.asarray([s.axis], dtype=np.int64), operand=False)
                parts.append(self.emit("Gather", [full.name, axis], (1,), np.int64, axis=0).name)
            else:
                parts.append(self.const(np.asarray([s], dtype=np.int64), operand=False))
        return self.emit("Concat", parts, (len(sizes),), np.int64, axis=0).name

    def emit(self, op: str, inputs, shape, dtype, **attrs) -> "Traced":
        out = Traced(self, self.fresh(), tuple(shape), np.dtype(dtype))
        self.nodes.append(Node(op, list(inputs), [out.name], attrs))
        return out

    def emit_many(self, op: str, inputs, specs, **attrs) -> list:
        """A node of several outputs, ``specs``: [(shape, dtype)] of each."""
        outs = [Traced(self, self.fresh(), tuple(shape), np.dtype(dtype)) for shape, dtype in specs]
        self.nodes.append(Node(op, list(inputs), [o.name for o in outs], attrs))
        return outs

    def cast(self, value, dtype) -> str:
        """The name of ``value`` (Traced or constant) as ``dtype``."""
        dtype = np.dtype(dtype)
        if isinstance(value, Traced):
            return value.name if value.dtype == dtype else value.astype(dtype).name
        return self.const(np.asarray(value).astype(dtype) if isinstance(value, np.ndarray | np.generic)
                          else np.asarray(value, dtype=dtype))

    def graph(self, name: str, inputs, outputs, *, dynamic: bool = True):
        """An ``onnx.GraphProto`` of the recorded nodes from ``inputs`` to ``outputs`` (Traced values);
        ``dynamic``: every axis of unknown size (else the traced sizes)."""
        def info(v: Traced):
            shape = [None] * v.ndim if dynamic else list(v._shape)
            return helper.make_tensor_value_info(v.name, ONNX_DTYPES[v.dtype], shape)

        nodes = [helper.make_node(n.op, n.inputs, n.outputs, **n.attrs) for n in self.nodes]
        inits = [numpy_helper.from_array(a, k) for k, a in self.consts.items()]
        return helper.make_graph(nodes, name, [info(v) for v in inputs], [info(v) for v in outputs], inits)


def _dtype_of(x):
    """What ``ufunc.resolve_dtypes`` takes for an operand: a dtype, or the Python type of a weak scalar."""
    if isinstance(x, Traced):
        return x.dtype
    if isinstance(x, bool):
        return np.dtype(np.bool_)
    if type(x) in (int, float, complex):
        return type(x)
    return np.asarray(x).dtype


def _shape_of(x):
    return x._shape if isinstance(x, Traced) else np.shape(x)


def _recorder_of(values) -> Recorder:
    recs = {id(v.rec): v.rec for v in values if isinstance(v, Traced)}
    if len(recs) != 1:
        raise TraceError("an operation mixes values of two traces (state kept where the tracer does not look)"
                         if recs else "no traced operand")
    return next(iter(recs.values()))


def apply_ufunc(ufunc, *operands) -> "Traced":
    """One numpy ufunc call with numpy's own loop dtypes, as ONNX Cast(s) + one operator."""
    rec = _recorder_of(operands)
    try:
        loop = ufunc.resolve_dtypes(tuple(_dtype_of(x) for x in operands) + (None,) * ufunc.nout)
    except (TypeError, np.exceptions.DTypePromotionError) as e:
        raise TraceError(f"numpy.{ufunc.__name__} on {[_dtype_of(x) for x in operands]}: {e}") from e
    in_dtypes, out_dtype = loop[: ufunc.nin], loop[-1]
    shape = np.broadcast_shapes(*(_shape_of(x) for x in operands))
    names = [rec.cast(x, dt) for x, dt in zip(operands, in_dtypes)]
    if ufunc is np.square:
        return rec.emit("Mul", [names[0], names[0]], shape, out_dtype)
    if ufunc is np.positive:
        return rec.emit("Identity", names, shape, out_dtype)
    if ufunc is np.not_equal:
        eq = rec.emit("Equal", names, shape, np.bool_)
        return rec.emit("Not", [eq.name], shape, out_dtype)
    if ufunc is np.power:
        return rec.emit("Pow", names, shape, out_dtype)
    op = _UFUNC_OPS.get(ufunc)
    if op is None:
        raise TraceError(f"numpy.{ufunc.__name__} has no ONNX counterpart in the step tracer")
    return rec.emit(op, names, shape, out_dtype)


def _power(base, exponent):
    """``base ** exponent`` as ndarray.__pow__ computes it: numpy's fast paths for 2, 0.5, -1, 1."""
    if isinstance(base, Traced) and not isinstance(exponent, Traced) and np.ndim(exponent) == 0:
        e = float(np.asarray(exponent))
        # the fast path keeps the base's dtype only where the exponent would not promote it
        same = apply_ufunc(np.power, base, exponent).dtype == base.dtype
        if same and e == 2.0:
            return apply_ufunc(np.square, base)
        if same and e == 0.5:
            return apply_ufunc(np.sqrt, base)
        if same and e == -1.0:
            return apply_ufunc(np.reciprocal, base)
        if same and e == 1.0:
            return apply_ufunc(np.positive, base)
    return apply_ufunc(np.power, base, exponent)


class Dim(int):
    """A size read from a Traced value's shape: an int that remembers where it came from, so that
    ``x.reshape(batch, -1)`` or ``y.reshape(x.shape)`` reshape to the runtime sizes, not the traced ones."""

    def __new__(cls, value, source: "Traced", axis: int):
        dim = super().__new__(cls, value)
        dim.source, dim.axis = source, axis
        return dim


class Traced:
    """A tensor of the graph being recorded: shape and dtype known, values not."""

    __slots__ = ("rec", "name", "_shape", "dtype")

    def __init__(self, rec: Recorder, name: str, shape: tuple, dtype: np.dtype):
        self.rec, self.name, self._shape, self.dtype = rec, name, tuple(int(d) for d in shape), dtype

    def __repr__(self) -> str:
        return f"Traced({self.name}, shape={self._shape}, dtype={self.dtype})"

    # -- shape ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return tuple(Dim(d, self, i) for i, d in enumerate(self._shape))

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def size(self) -> int:
        return int(np.prod(self._shape))

    def __len__(self) -> int:
        return self.shape[0]

    def reshape(self, *shape):
        shape = tuple(shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)
        new = np.empty(self._shape, dtype=np.bool_).reshape(shape).shape  # numpy checks it
        if new == self._shape:
            return self
        return self.rec.emit("Reshape", [self.name, self.rec.shape_tensor(shape)], new, self.dtype)

    # -- values -----------------------------------------------------------------------
    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        dtype = np.dtype(dtype)
        if dtype not in ONNX_DTYPES:
            raise TraceError(f"astype({dtype}): no ONNX tensor type")
        if dtype == self.dtype:
            return self.copy() if copy else self
        return self.rec.emit("Cast", [self.name], self._shape, dtype, to=ONNX_DTYPES[dtype])

    def copy(self, order="K"):
        return self.rec.emit("Identity", [self.name], self._shape, self.dtype)

    def clip(self, a_min=None, a_max=None):
        return np.clip(self, a_min, a_max)

    # reductions and the like: as numpy functions (refused unless the tracer knows them)
    def sum(self, *a, **k): return np.sum(self, *a, **k)
    def mean(self, *a, **k): return np.mean(self, *a, **k)
    def max(self, *a, **k): return np.max(self, *a, **k)
    def min(self, *a, **k): return np.min(self, *a, **k)
    def any(self, *a, **k): return np.any(self, *a, **k)
    def all(self, *a, **k): return np.all(self, *a, **k)

    def _refuse(self, *args, **kwargs):
        raise TraceError(
            f"the traced code reads the values of {self!r} in Python (bool / float / int / item / "
            "conversion to a numpy array): data-dependent control flow cannot be recorded as a graph"
        )

    __bool__ = __float__ = __int__ = __index__ = __complex__ = item = tolist = __iter__ = _refuse

    def __array__(self, *args, **kwargs):
        self._refuse()

    def __setitem__(self, key, value):
        raise TraceError(f"in-place assignment into {self!r} cannot be recorded")

    def __getitem__(self, key):
        return _index(self, key)

    # -- operators: through numpy's ufuncs so that promotion is numpy's ----------------
    def __add__(self, o): return apply_ufunc(np.add, self, o)
    def __radd__(self, o): return apply_ufunc(np.add, o, self)
    def __sub__(self, o): return apply_ufunc(np.subtract, self, o)
    def __rsub__(self, o): return apply_ufunc(np.subtract, o, self)
    def __mul__(self, o): return apply_ufunc(np.multiply, self, o)
    def __rmul__(self, o): return apply_ufunc(np.multiply, o, self)
    def __truediv__(self, o): return apply_ufunc(np.true_divide, self, o)
    def __rtruediv__(self, o): return apply_ufunc(np.true_divide, o, self)
    def __pow__(self, o): return _power(self, o)
    def __rpow__(self, o): return apply_ufunc(np.power, o, self)
    def __neg__(self): return apply_ufunc(np.negative, self)
    def __pos__(self): return apply_ufunc(np.positive, self)
    def __abs__(self): return apply_ufunc(np.absolute, self)
    def __lt__(self, o): return apply_ufunc(np.less, self, o)
    def __le__(self, o): return apply_ufunc(np.less_equal, self, o)
    def __gt__(self, o): return apply_ufunc(np.greater, self, o)
    def __ge__(self, o): return apply_ufunc(np.greater_equal, self, o)
    def __eq__(self, o): return apply_ufunc(np.equal, self, o)
    def __ne__(self, o): return apply_ufunc(np.not_equal, self, o)
    __hash__ = object.__hash__

    # -- the numpy protocols -------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":
            raise TraceError(f"numpy.{ufunc.__name__}.{method} is not supported by the step tracer")
        out = kwargs.pop("out", None)
        if kwargs:
            raise TraceError(f"numpy.{ufunc.__name__} with {sorted(kwargs)} is not supported by the step tracer")
        if out is not None:
            raise TraceError(f"numpy.{ufunc.__name__}(..., out=...): in-place results cannot be recorded")
        return apply_ufunc(ufunc, *inputs)

    def __array_function__(self, func, types, args, kwargs):
        handler = _FUNCTIONS.get(func)
        if handler is None:
            raise TraceError(f"numpy.{func.__name__} is not supported by the step tracer")
        return handler(*args, **kwargs)


# ---------------------------------------------------------------------------- numpy functions
def _clip(a, a_min=None, a_max=None, out=None, **kwargs):
    if out is not None or kwargs:
        raise TraceError("numpy.clip with out= or extra arguments is not supported by the step tracer")
    # numpy's clip is minimum(maximum(a, a_min), a_max), with its promotion
    if a_min is not None:
        a = apply_ufunc(np.maximum, a, a_min)
    if a_max is not None:
        a = apply_ufunc(np.minimum, a, a_max)
    return a


def _where(condition, x=None, y=None):
    if x is None or y is None:
        raise TraceError("numpy.where(condition) (indices of the true values) depends on data")
    rec = _recorder_of((condition, x, y))
    dtype = np.result_type(_dummy(x), _dummy(y))
    shape = np.broadcast_shapes(_shape_of(condition), _shape_of(x), _shape_of(y))
    cond = rec.cast(condition, np.bool_)
    return rec.emit("Where", [cond, rec.cast(x, dtype), rec.cast(y, dtype)], shape, dtype)


def _dummy(x):
    """An operand for numpy's own dtype rules: a one-element array of a Traced value's dtype."""
    if isinstance(x, Traced):
        return np.zeros((1,) * max(x.ndim, 1), dtype=x.dtype)
    return x


def _result_type(*arrays_and_dtypes):
    return np.result_type(*(_dummy(x) for x in arrays_and_dtypes))


def _copy(a, order="K", subok=False):
    return a.copy()


def _reshape(a, *args, **kwargs):
    shape = kwargs.pop("shape", kwargs.pop("newshape", None)) if not args else args[0]
    return a.reshape(shape)


def _shape(a):
    return a.shape


def _ndim(a):
    return a.ndim


def _full_like(a, fill_value, dtype=None, **kwargs):
    rec = a.rec
    dtype = np.dtype(dtype or a.dtype)
    shape = rec.emit("Shape", [a.name], (a.ndim,), np.int64)
    value = helper.make_tensor("value", ONNX_DTYPES[dtype], [1], [np.asarray(fill_value, dtype=dtype).item()])
    return rec.emit("ConstantOfShape", [shape.name], a._shape, dtype, value=value)


def _zeros_like(a, dtype=None, **kwargs):
    return _full_like(a, 0, dtype)


def _ones_like(a, dtype=None, **kwargs):
    return _full_like(a, 1, dtype)


def _concatenate(arrays, axis=0, **kwargs):
    if kwargs:
        raise TraceError(f"numpy.concatenate with {sorted(kwargs)} is not supported by the step tracer")
    arrays = list(arrays)
    rec = _recorder_of(arrays)
    dtype = np.result_type(*(_dummy(x) for x in arrays))
    shapes = [_shape_of(x) for x in arrays]
    shape = np.concatenate([np.empty(s, dtype=np.bool_) for s in shapes], axis=axis).shape
    axis = axis % len(shape)
    return rec.emit("Concat", [rec.cast(x, dtype) for x in arrays], shape, dtype, axis=axis)


def _index(a: Traced, key):
    """Basic indexing (ints, slices, Ellipsis, None) as Slice, Squeeze, Unsqueeze."""
    key = key if isinstance(key, tuple) else (key,)
    if any(isinstance(k, bool) or not (k is None or k is Ellipsis or isinstance(k, (slice, int, np.integer)))
           for k in key):
        raise TraceError(f"indexing {a!r} with {key!r}: only ints, slices, ... and None are traced")
    probe = np.empty(a._shape, dtype=np.bool_)
    result_shape = probe[key].shape  # numpy's rules and checks
    if Ellipsis not in key:
        key = key + (Ellipsis,)
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    expanded = []
    for k in key:
        expanded.extend([slice(None)] * (a.ndim - n_real) if k is Ellipsis else [k])
    real = [k for k in expanded if k is not None]
    # ONNX Slice reads negative and out-of-range bounds as Python does: the numbers stay as written,
    # so the graph slices the runtime sizes (x[..., -1], x[:, ::2] on any shape)
    big = 2**62
    starts, ends, axes, steps = [], [], [], []
    for ax, k in enumerate(real):
        if isinstance(k, slice):
            step = 1 if k.step is None else int(k.step)
            if (k.start, k.stop, step) == (None, None, 1):
                continue
            start = int(k.start) if k.start is not None else (0 if step > 0 else big)
            stop = int(k.stop) if k.stop is not None else (big if step > 0 else -big)
        else:
            start, step = int(k), 1
            stop = start + 1 if start != -1 else big
        starts.append(start), ends.append(stop), axes.append(ax), steps.append(step)
    kept = tuple(k if isinstance(k, slice) else slice(int(k), int(k) + 1 if int(k) != -1 else None) for k in real)
    rec, value = a.rec, a
    if starts:
        consts = [rec.const(np.asarray(v, dtype=np.int64), operand=False) for v in (starts, ends, axes, steps)]
        value = rec.emit("Slice", [value.name, *consts], probe[kept].shape, a.dtype)
    squeeze = [ax for ax, k in enumerate(real) if not isinstance(k, slice)]
    if squeeze:
        shape = tuple(d for ax, d in enumerate(value._shape) if ax not in squeeze)
        axes_ = rec.const(np.asarray(squeeze, dtype=np.int64), operand=False)
        value = rec.emit("Squeeze", [value.name, axes_], shape, a.dtype)
    unsqueeze = [i for i, k in enumerate(k for k in expanded if k is None or isinstance(k, slice)) if k is None]
    if unsqueeze:
        axes_ = rec.const(np.asarray(unsqueeze, dtype=np.int64), operand=False)
        value = rec.emit("Unsqueeze", [value.name, axes_], result_shape, a.dtype)
    assert value._shape == result_shape, (value._shape, result_shape)
    return value


def _quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, **kwargs):
    """numpy's "linear" quantile (Hyndman & Fan 7) of one scalar ``q`` along one axis, step for step:
    the sorted values at floor((n - 1) q) and the next index, interpolated by numpy's ``_lerp`` in the
    dtype numpy uses (the array's for a Python-number ``q``, float64 otherwise)."""
    if out is not None or keepdims or method != "linear" or kwargs.get("weights") is not None or axis is None \
            or np.ndim(q) != 0 or isinstance(q, Traced) or not isinstance(axis, (int, np.integer)):
        raise TraceError("numpy.quantile is traced only for a scalar q, one int axis, method='linear', "
                         "keepdims=False")
    if not 0 <= float(q) <= 1:
        raise ValueError("Quantiles must be in the range [0, 1]")
    rec, axis = a.rec, int(axis) % a.ndim
    weak = type(q) in (int, float)
    f64, i64 = np.dtype(np.float64), np.dtype(np.int64)
    shape = rec.emit("Shape", [a.name], (a.ndim,), i64)
    n = rec.emit("Gather", [shape.name, rec.const(np.asarray(axis, np.int64), operand=False)], (), i64, axis=0)
    count = rec.emit("Unsqueeze", [n.name, rec.const(np.asarray([0], np.int64), operand=False)], (1,), i64)
    ordered = rec.emit_many("TopK", [a.name, count.name], [(a._shape, a.dtype), (a._shape, i64)],
                            axis=axis, largest=0, sorted=1)[0]
    last = apply_ufunc(np.subtract, n, 1)  # n - 1, exact
    virtual = apply_ufunc(np.multiply, last.astype(f64), np.float64(q))
    floor = apply_ufunc(np.floor, virtual)
    above = apply_ufunc(np.greater_equal, virtual, last.astype(f64))
    below = apply_ufunc(np.less, virtual, 0.0)
    prev = _where(above, np.int64(-1), _where(below, np.int64(0), floor.astype(i64)))
    nxt = _where(above, np.int64(-1), _where(below, np.int64(0), apply_ufunc(np.add, floor, 1.0).astype(i64)))
    gamma = apply_ufunc(np.subtract, virtual, prev.astype(f64))
    kept = tuple(d for i, d in enumerate(a._shape) if i != axis)
    lo = rec.emit("Gather", [ordered.name, prev.name], kept, a.dtype, axis=axis)
    hi = rec.emit("Gather", [ordered.name, nxt.name], kept, a.dtype, axis=axis)
    # numpy's _lerp(lo, hi, t): lo + (hi - lo) t, and hi - (hi - lo)(1 - t) where t >= 0.5
    t = gamma.astype(a.dtype) if weak else gamma
    one_minus_t = apply_ufunc(np.subtract, 1.0, gamma)
    one_minus_t = one_minus_t.astype(a.dtype) if weak else one_minus_t
    diff = apply_ufunc(np.subtract, hi, lo)
    low_side = apply_ufunc(np.add, lo, apply_ufunc(np.multiply, diff, t))
    high_side = apply_ufunc(np.subtract, hi, apply_ufunc(np.multiply, diff, one_minus_t))
    return _where(apply_ufunc(np.greater_equal, gamma, 0.5), high_side, low_side)


_FUNCTIONS = {
    np.clip: _clip, np.where: _where, np.result_type: _result_type, np.copy: _copy, np.reshape: _reshape,
    np.shape: _shape, np.ndim: _ndim, np.zeros_like: _zeros_like, np.ones_like: _ones_like,
    np.full_like: _full_like, np.concatenate: _concatenate, np.quantile: _quantile,
}


# ---------------------------------------------------------------------------- np.asarray & co
_PATCHED = ("asarray", "asanyarray", "array", "ascontiguousarray")
_lock = threading.RLock()


def _passing_traced(original):
    def convert(a, dtype=None, *args, **kwargs):
        if isinstance(a, Traced):
            return a if dtype is None else a.astype(dtype, copy=False)
        if isinstance(a, (list, tuple)) and any(isinstance(v, Traced) for v in a):
            raise TraceError("a list holding traced values cannot become a numpy array")
        return original(a, dtype, *args, **kwargs)

    convert.__wrapped__ = original
    return convert


@contextlib.contextmanager
def tracing():
    """Within this block numpy's array constructors pass Traced values through (see the module doc)."""
    with _lock:
        originals = {name: getattr(np, name) for name in _PATCHED}
        try:
            for name, fn in originals.items():
                setattr(np, name, _passing_traced(fn))
            yield
        finally:
            for name, fn in originals.items():
                setattr(np, name, fn)


__all__ = ["ONNX_DTYPES", "Node", "Recorder", "TraceError", "Traced", "apply_ufunc", "tracing"]
