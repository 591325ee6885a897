"""``precision=``: one argument for how a pipeline computes, reconciled with the engine-level
``inference_precision=`` and diffusers' ``torch_dtype=`` so that two of them can never silently disagree.

- ``"exact"`` (the default): float32 everywhere, the parity mode (what the runtime did before ``precision=``).
- ``"fast"``: the device's own default. OpenVINO: its default inference precision (bf16 on CPUs with
  AVX-512 BF16 or AMX, f16 on GPUs). ONNX Runtime: the folder's fp16 graphs (``model.fp16.onnx`` ...)
  on providers that compute in fp16 (CUDA, DirectML, CoreML, ...); on the CPU provider float32, with a
  note: its fp16 graphs were no faster on the SD1.5-size suite (24.8 s against 26.0 s, within the
  machine's noise) and peaked at 1.22x the memory (benchmarks/RESULTS.md, weight precision).
- ``"f32"``, ``"bf16"``, ``"f16"``: that precision by name. OpenVINO takes it as its inference precision
  (a device without it computes in another one: the engine warns, naming it); ONNX Runtime has no
  bf16, and f16 needs fp16 graphs in the folder.
"""

from __future__ import annotations

import dataclasses

from .keywords import warn_once

PRECISIONS = ("exact", "fast", "f32", "bf16", "f16")
#: OpenVINO's INFERENCE_PRECISION_HINT per mode (None: the device's default)
OPENVINO_HINT = {"exact": "f32", "fast": None, "f32": "f32", "bf16": "bf16", "f16": "f16"}
#: torch_dtype names (keywords.dtype_name) each mode agrees with
AGREEING_DTYPES = {"exact": ("fp32",), "f32": ("fp32",), "fast": ("fp16", "bf16"), "bf16": ("bf16",), "f16": ("fp16",)}
#: ONNX Runtime providers that run the CPU's float32 kernels: fp16 graphs do not help there
CPU_PROVIDERS = ("CPUExecutionProvider", "XnnpackExecutionProvider", "ACLExecutionProvider",
                 "ArmNNExecutionProvider")
_UNSET = object()


class PrecisionError(ValueError):
    """A bad ``precision=``, or one that contradicts ``inference_precision=`` / ``torch_dtype=`` / ``variant=``."""


@dataclasses.dataclass(frozen=True)
class PrecisionPlan:
    """What a ``precision=`` means on one backend: OpenVINO's hint, and the graph variant for ONNX Runtime."""

    mode: str
    inference_precision: str | None  # OpenVINO's hint (None: the device default)
    variant: str | None  # graph files to load ("fp16") or None (the folder's default files)


def check_precision(precision) -> str:
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise PrecisionError(f"precision={precision!r} is not a precision mode; choose one of "
                             f"{', '.join(map(repr, PRECISIONS))}")
    return precision


def check_agreement(precision: str, *, inference_precision=_UNSET, dtype: str | None = None,
                    variant: str | None = None) -> None:
    """Refuse a ``precision=`` that another argument of the same call contradicts (names both)."""
    hint = OPENVINO_HINT[precision]
    if inference_precision is not _UNSET and inference_precision != hint:
        raise PrecisionError(
            f"precision={precision!r} means inference_precision={hint!r}"
            f"{' (the device default)' if hint is None else ''}, but inference_precision={inference_precision!r} "
            "was given too; pass only one of them")
    if dtype is not None and dtype not in AGREEING_DTYPES[precision]:
        raise PrecisionError(
            f"precision={precision!r} contradicts torch_dtype ({dtype}); with precision={precision!r} pass "
            f"torch_dtype {' or '.join(AGREEING_DTYPES[precision])}, or leave torch_dtype out")
    if variant == "fp16" and precision in ("exact", "f32", "bf16"):
        raise PrecisionError(f"precision={precision!r} contradicts variant='fp16' (fp16 weight files); "
                             "leave one of them out")


def plan_precision(precision: str, backend: str, graphs, *, providers=None, dtype: str | None = None) -> PrecisionPlan:
    """The plan for ``precision`` on ``backend``, given the folder's graphs (``Graphs``: which variants it
    has), the ONNX Runtime providers asked for (None: the CPU) and ``torch_dtype``'s name (it agrees:
    check_agreement), which still picks fp16 files where the folder has them, as without ``precision=``."""
    hint = OPENVINO_HINT[precision]
    fp16_files = graphs.has_variant("fp16")
    asked_fp16_files = dtype in ("fp16", "bf16") and fp16_files
    if backend == "openvino":  # the hint decides how it computes; torch_dtype only which weight files
        return PrecisionPlan(precision, hint, "fp16" if asked_fp16_files else graphs.variant)
    from .dropin import graphs_precision

    exported = graphs_precision(graphs)
    if precision == "bf16":
        raise PrecisionError("precision='bf16': ONNX Runtime runs no bfloat16 graphs here; choose 'fast', 'f16' "
                             "(fp16 graphs) or 'exact', or backend='openvino'")
    if precision == "f16":
        if fp16_files:
            return PrecisionPlan(precision, hint, "fp16")
        if exported == "fp16":
            return PrecisionPlan(precision, hint, graphs.variant)
        raise PrecisionError(f"precision='f16' with ONNX Runtime needs fp16 graphs; {graphs.folder} has fp32 "
                             "graphs only (export with `edge-sched export ... --dtype fp16`), or choose 'fast' "
                             "or 'exact'")
    if precision == "fast":
        first = _first_provider(providers)
        if fp16_files and (first not in CPU_PROVIDERS or asked_fp16_files):
            return PrecisionPlan(precision, hint, "fp16")
        if exported == "fp32":
            why = ("the CPU provider computes fp16 graphs no faster than fp32 ones" if fp16_files
                   else "the folder has no fp16 graphs")
            warn_once(f"precision:fast:{graphs.folder}", f"precision='fast' with ONNX Runtime on {first}: "
                      f"float32 ({why})", loud=False)
    elif exported == "fp16":  # exact / f32 on a folder exported in fp16: nothing else to load
        warn_once(f"precision:{precision}:{graphs.folder}", f"precision={precision!r}: {graphs.folder}'s graphs "
                  "were exported in fp16 and run as exported (export with --dtype fp32 for float32)")
    return PrecisionPlan(precision, hint, graphs.variant)


def _first_provider(providers) -> str:
    if not providers:
        return "CPUExecutionProvider"
    first = providers[0]
    name = first[0] if isinstance(first, tuple) else first
    from ..runtime.onnxruntime_engine import provider_name

    return provider_name(name)


def check_request(request) -> None:
    """A from_pretrained call's ``precision=`` (keywords.LoadRequest), checked before anything is loaded:
    its value, and that ``inference_precision=`` / ``torch_dtype=`` / ``variant=`` agree with it."""
    if request.precision is None:
        return
    check_precision(request.precision)
    check_agreement(request.precision, inference_precision=request.engine.get("inference_precision", _UNSET),
                    dtype=request.dtype, variant=request.variant)
    request.engine["inference_precision"] = OPENVINO_HINT[request.precision]
