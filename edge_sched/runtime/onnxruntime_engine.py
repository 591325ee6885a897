"""ONNX Runtime engine: one ``InferenceSession`` per graph, with execution providers and session options.

Providers are given as ONNX Runtime names (``"CPUExecutionProvider"``), short names (``"CPU"``,
``"CoreML"``, ``"NNAPI"``, ``"DirectML"``, ``"OpenVINO"``, ``"CUDA"``...) or ``(name, options)``
pairs. A provider this onnxruntime build does not offer is an error, or, with
``allow_cpu_fallback=True``, a logged warning and the CPU provider. Graphs over 2 GB keep their
weights in external data files next to ``model.onnx``; ONNX Runtime finds them from the path, after
``external_data.check_onnx_external_data`` has checked every location (inside the folder, plain files).

Graphs marked ``edge_sched.weights = int8-dequantize`` (``export --format onnx --weight-compression int8``:
int8 weights read through DequantizeLinear) run in ONNX Runtime's priority order at the "basic" optimization
level, so each weight is dequantized just before its layer and freed after it: the int8 UNet of SD1.5
then peaks at about its int8 size plus one layer, where the default order and the "extended" level's
fusions held most of the float32 weights at once (4.1 GB against 1.4 GB, measured at 512x512).
"""

from __future__ import annotations

import logging
from pathlib import Path

from .base import Component, EngineError, TensorSpec, numpy_dtype
from .external_data import check_graph_file, check_onnx_external_data, model_metadata

logger = logging.getLogger(__name__)

SHORT_PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "nnapi": "NnapiExecutionProvider",
    "directml": "DmlExecutionProvider",
    "dml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "acl": "ACLExecutionProvider",
    "armnn": "ArmNNExecutionProvider",
    "webgpu": "WebGpuExecutionProvider",
}

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
#: graph metadata of weight-only int8 graphs (written by export/onnx_rewrite.py)
INT8_WEIGHTS_METADATA = ("edge_sched.weights", "int8-dequantize")


def _ort():
    try:
        import onnxruntime
    except ImportError as e:  # pragma: no cover - depends on the install
        raise EngineError("the onnxruntime backend needs the `onnx` extra: pip install 'edge-sched[onnx]'") from e
    return onnxruntime


def provider_name(name: str) -> str:
    """Full ONNX Runtime provider name for a short or full name; unknown names list the known ones."""
    ort = _ort()
    if name in ort.get_all_providers():
        return name
    full = SHORT_PROVIDER_NAMES.get(name.lower().removesuffix("executionprovider"))
    if full is None:
        known = sorted(SHORT_PROVIDER_NAMES) + list(ort.get_all_providers())
        raise EngineError(f"unknown execution provider {name!r}; known: {', '.join(known)}")
    return full


def resolve_providers(providers=None, allow_cpu_fallback: bool = False) -> list[tuple[str, dict]]:
    """Normalise ``providers`` into ``[(full_name, options), ...]`` that this machine can run."""
    ort = _ort()
    if providers is None:
        providers = ["CPUExecutionProvider"]
    if isinstance(providers, (str, tuple)):
        providers = [providers]
    available = ort.get_available_providers()
    resolved: list[tuple[str, dict]] = []
    for entry in providers:
        name, options = (entry if isinstance(entry, tuple) else (entry, {}))
        full = provider_name(name)
        if full not in available:
            if not allow_cpu_fallback:
                raise EngineError(
                    f"execution provider {full} is not available in this onnxruntime build "
                    f"(available: {', '.join(available)}); install the matching onnxruntime package, "
                    f"or run on the CPU instead with allow_cpu_fallback=True (--allow-cpu-fallback)"
                )
            logger.warning("execution provider %s is not available here; falling back to CPUExecutionProvider", full)
            continue
        resolved.append((full, dict(options or {})))
    if not any(n == "CPUExecutionProvider" for n, _ in resolved) and (allow_cpu_fallback or not resolved):
        resolved.append(("CPUExecutionProvider", {}))
    return resolved


class OnnxRuntimeComponent(Component):
    engine = "onnxruntime"

    def __init__(
        self,
        name: str,
        path: str | Path,
        providers=None,
        *,
        allow_cpu_fallback: bool = False,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        graph_optimization_level: str | None = None,
        cpu_memory_arena: bool = True,
        session_options=None,
    ):
        ort = _ort()
        path = Path(path)
        check_graph_file(path)  # a symlink out of the folder is refused before "not found"
        if not path.is_file():
            raise EngineError(f"{name}: graph file {path} not found")
        # every external-data file the graph names, by onnx's checker rules, before onnxruntime reads any
        check_onnx_external_data(path)
        key, value = INT8_WEIGHTS_METADATA
        int8_weights = model_metadata(path).get(key) == value
        if graph_optimization_level is None:
            graph_optimization_level = "basic" if int8_weights else "all"
        if graph_optimization_level not in OPTIMIZATION_LEVELS:
            raise EngineError(
                f"unknown graph_optimization_level {graph_optimization_level!r}; choose one of {', '.join(OPTIMIZATION_LEVELS)}"
            )
        opts = session_options or ort.SessionOptions()
        if session_options is None:
            opts.log_severity_level = 4  # failures reach the user as one EngineError, not as log spam too
        # the arena keeps the largest activations allocated between runs: faster, but resident
        opts.enable_cpu_mem_arena = bool(cpu_memory_arena)
        if intra_op_threads is not None:
            opts.intra_op_num_threads = int(intra_op_threads)
        if inter_op_threads is not None:
            opts.inter_op_num_threads = int(inter_op_threads)
        if int8_weights and session_options is None:  # one dequantized weight alive at a time (module doc)
            opts.execution_order = ort.ExecutionOrder.PRIORITY_BASED
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[graph_optimization_level]
        resolved = resolve_providers(providers, allow_cpu_fallback)
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=opts, providers=[n for n, _ in resolved], provider_options=[o for _, o in resolved]
            )
        except Exception as e:  # onnxruntime raises its own exception types for corrupt files
            raise EngineError(f"{name}: could not load {path} with onnxruntime: {e}") from e
        self.providers = self.session.get_providers()
        super().__init__(name, path, [_spec(i) for i in self.session.get_inputs()], [_spec(o) for o in self.session.get_outputs()])
        self._output_names = list(self.outputs)

    def _run(self, feeds):
        if self.session is None:
            raise EngineError(f"{self.name}: the component was released")
        try:
            values = self.session.run(self._output_names, feeds)
        except Exception as e:
            raise EngineError(f"{self.name} ({self.path}): onnxruntime failed: {e}") from e
        return dict(zip(self._output_names, values))

    def release(self) -> None:
        self.session = None


def _spec(node) -> TensorSpec:
    shape = None if node.shape is None else tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)
    return TensorSpec(node.name, shape, numpy_dtype(node.type))


def available_providers() -> list[str]:
    return list(_ort().get_available_providers())


