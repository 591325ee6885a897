"""OpenVINO engine: one compiled model per graph on a device (CPU, GPU, NPU, AUTO, HETERO:...).

Reads OpenVINO IR (``openvino_model.xml`` + ``.bin``) or ONNX files. ``inference_precision``
defaults to ``"f32"``: OpenVINO's CPU plugin otherwise computes in bf16 on CPUs that have it,
which changes images; pass ``None`` for the device's own default or ``"bf16"``/``"f16"`` for speed.
``static_shapes`` (``{input: shape}``) reshapes the graph before compiling, which NPUs require;
``cache_dir`` keeps compiled blobs so the next start skips compilation.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .base import Component, EngineError, TensorSpec, numpy_dtype
from .external_data import check_graph_file, check_onnx_external_data, check_openvino_weights
from .page_release import ReleasingPages

PRECISIONS = ("f32", "f16", "bf16")
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
_MULTI_DEVICE_PREFIXES = ("AUTO", "HETERO", "MULTI", "BATCH")


def _ov():
    try:
        import openvino
    except ImportError as e:  # pragma: no cover - depends on the install
        raise EngineError("the openvino backend needs the `openvino` extra: pip install 'edge-sched[openvino]'") from e
    return openvino


_CORE = None


def core():
    """One ``openvino.Core`` per process (it owns the plugins; creating it costs time)."""
    global _CORE
    if _CORE is None:
        _CORE = _ov().Core()
    return _CORE


def available_devices() -> list[str]:
    return list(core().available_devices)


def check_device(device: str) -> str:
    """Accept 'CPU', 'GPU.1', 'NPU', 'AUTO', 'AUTO:GPU,CPU', 'HETERO:GPU,CPU'...; unknown devices are an error."""
    if not isinstance(device, str) or not device:
        raise EngineError(f"device must be a non-empty string like 'CPU', got {device!r}")
    available = available_devices()
    head, _, rest = device.partition(":")
    if head.upper() in _MULTI_DEVICE_PREFIXES:
        wanted = [d for d in rest.split(",") if d] if rest else []
    else:
        wanted = [device]
    for d in wanted:
        if d not in available and d.split(".")[0] not in {a.split(".")[0] for a in available}:
            raise EngineError(f"OpenVINO device {d!r} is not available on this machine (available: {', '.join(available)})")
    return device


class OpenVINOComponent(Component):
    engine = "openvino"

    def __init__(
        self,
        name: str,
        path: str | Path,
        device: str = "CPU",
        *,
        inference_precision: str | None = "f32",
        performance_hint: str | None = "LATENCY",
        num_threads: int | None = None,
        cache_dir: str | Path | None = None,
        static_shapes: dict[str, tuple[int, ...]] | None = None,
        float_inputs: tuple[str, ...] = (),
        config: dict | None = None,
    ):
        ov = _ov()
        path = Path(path)
        check_graph_file(path)
        if not path.is_file():
            raise EngineError(f"{name}: graph file {path} not found")
        if path.suffix == ".xml":
            check_openvino_weights(path)  # the .bin: a plain file inside the model folder
            if not path.with_suffix(".bin").is_file():
                raise EngineError(f"{name}: weights file {path.with_suffix('.bin')} not found next to {path.name}")
        else:  # OpenVINO reads ONNX too, external data included
            check_onnx_external_data(path)
        device = check_device(device)
        props = dict(config or {})
        if inference_precision is not None:
            if inference_precision not in PRECISIONS:
                raise EngineError(f"unknown inference_precision {inference_precision!r}; choose one of {', '.join(PRECISIONS)} or None")
            # AUTO/HETERO pass the hint on; devices that cannot honour f32 (NPU) reject it, so only CPU/GPU get it
            if device.split(".")[0].split(":")[0] in ("CPU", "GPU"):
                props.setdefault("INFERENCE_PRECISION_HINT", inference_precision)
        if performance_hint is not None:
            if performance_hint not in PERFORMANCE_HINTS:
                raise EngineError(f"unknown performance_hint {performance_hint!r}; choose one of {', '.join(PERFORMANCE_HINTS)}")
            props.setdefault("PERFORMANCE_HINT", performance_hint)
        if num_threads is not None:
            props.setdefault("INFERENCE_NUM_THREADS", int(num_threads))
        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            props.setdefault("CACHE_DIR", str(cache_dir))
        # the plugin repacks every weight while compiling; the mapped file pages it read are then dead
        # weight in RSS (an fp32 UNet would take twice its size): give them back as it goes
        mapped = [path.with_suffix(".bin")] if path.suffix == ".xml" else []
        mapped += [Path(cache_dir)] if cache_dir is not None else []  # cached blobs are mapped too
        with ReleasingPages(mapped):
            try:
                model = core().read_model(str(path))
            except Exception as e:
                raise EngineError(f"{name}: could not read {path} with OpenVINO: {e}") from e
            if static_shapes:
                self._reshape(name, model, static_shapes, ov)
            for input_name in float_inputs:
                promote_to_float(model, input_name, ov)
            # compiling may give a port extra tensor names ({'input_ids', '35', ...}): keep the graph's own
            in_names = [p.get_any_name() for p in model.inputs]
            out_names = [p.get_any_name() for p in model.outputs]
            try:
                self.compiled = core().compile_model(model, device, props)
            except Exception as e:
                raise EngineError(f"{name}: could not compile {path} for {device}: {e}") from e
            del model
        self.device = device
        #: the precision the device computes in ("f32", "bf16", "f16"; None where it does not say)
        self.inference_precision = _compiled_precision(self.compiled)
        if inference_precision is not None and self.inference_precision not in (None, inference_precision):
            # e.g. f16 asked on a CPU without AVX-512 FP16 / AMX-FP16: the plugin takes bf16 without a word
            _warn_precision(device, inference_precision, self.inference_precision)
        self._release_during_first_run = mapped
        self.request = self.compiled.create_infer_request()
        super().__init__(
            name, path,
            [_spec(p, n) for p, n in zip(self.compiled.inputs, in_names)],
            [_spec(p, n) for p, n in zip(self.compiled.outputs, out_names)],
        )
        self._outputs = list(zip(out_names, self.compiled.outputs))

    @staticmethod
    def _reshape(name, model, static_shapes, ov):
        """``static_shapes``: {input: shape}; a None dim keeps the graph's own (static) dim, and an
        input the graph declares as a scalar stays one."""
        ports = {p.get_any_name(): p for p in model.inputs}
        unknown = sorted(set(static_shapes) - set(ports))
        if unknown:
            raise EngineError(f"{name}: static_shapes names {unknown}, but the graph's inputs are {sorted(ports)}")
        shapes = {}
        for key, wanted in static_shapes.items():
            graph = ports[key].get_partial_shape()
            if graph.rank.is_static and graph.rank.get_length() == 0:
                continue
            if graph.rank.is_static and graph.rank.get_length() != len(wanted):
                raise EngineError(f"{name}: input {key} has rank {graph.rank.get_length()}, static_shapes gives {tuple(wanted)}")
            dims = [graph[i].get_length() if d is None and graph.rank.is_static and graph[i].is_static else d
                    for i, d in enumerate(wanted)]
            if any(d is None for d in dims):
                raise EngineError(f"{name}: input {key}: give every dimension the graph leaves dynamic ({tuple(wanted)})")
            shapes[key] = ov.PartialShape([int(d) for d in dims])
        try:
            model.reshape(shapes)
        except Exception as e:
            raise EngineError(f"{name}: cannot reshape to {static_shapes}: {e}") from e

    def _run(self, feeds):
        if self.request is None:
            raise EngineError(f"{self.name}: the component was released")
        # the first run of a dynamic-shape graph is when the plugin repacks its weights: give the read
        # pages back while it does (as while compiling)
        try:
            if self._release_during_first_run:
                with ReleasingPages(self._release_during_first_run):
                    self.request.infer(feeds)
                self._release_during_first_run = None
            else:
                self.request.infer(feeds)
        except Exception as e:
            raise EngineError(f"{self.name} ({self.path}): OpenVINO inference failed: {e}") from e
        # the request reuses its output buffers on the next call: copy out
        return {n: np.array(self.request.get_tensor(port).data, copy=True) for n, port in self._outputs}

    def release(self) -> None:
        # the output ports keep the compiled model (and its repacked weights) alive: drop them too, or a
        # released component still held by someone (a profiler, a loop's local) keeps the whole graph
        self.request = None
        self.compiled = None
        self._outputs = []


def _compiled_precision(compiled) -> str | None:
    try:
        return compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    except Exception:  # devices without the property (NPU, some plugins)
        return None


_WARNED_PRECISION: set = set()


def _warn_precision(device: str, asked: str, actual: str) -> None:
    if (device, asked) not in _WARNED_PRECISION:
        _WARNED_PRECISION.add((device, asked))
        logging.getLogger("edge_sched").warning(
            "OpenVINO %s has no %s inference precision: it computes in %s", device, asked, actual)


# ops that move or repeat values without computing on them: an integer input that only flows
# through these into a Convert-to-float computes the same with a float input, fractions kept
_DATA_MOVEMENT = {"Broadcast", "Unsqueeze", "Squeeze", "Reshape", "Tile"}
_FLOAT_TYPES = {"f32", "f16", "bf16", "f64"}


def promote_to_float(model, input_name: str, ov) -> bool:
    """Make an integer graph input (exported UNets' ``timestep``) take float32 when the graph casts it
    to float before any arithmetic, so fractional timesteps (Karras sigmas, custom sigmas) are not
    truncated. Returns whether the input was changed; graphs that compute on the integers are left alone."""
    params = [p for p in model.get_parameters() if input_name in p.output(0).get_names()]
    if len(params) != 1 or not params[0].get_element_type().is_integral():
        return False
    param = params[0]

    def casts_to_float(node) -> bool:
        users = [t.get_node() for t in node.output(0).get_target_inputs()]
        if not users:
            return False
        for user in users:
            kind = user.get_type_name()
            if kind == "Convert":
                if user.get_output_element_type(0).get_type_name() not in _FLOAT_TYPES:
                    return False
            elif kind in _DATA_MOVEMENT and user.input_value(0).get_node() is node:
                if not casts_to_float(user):
                    return False
            else:
                return False
        return True

    if not casts_to_float(param):
        return False
    param.set_element_type(ov.Type.f32)
    model.validate_nodes_and_infer_types()
    return True


def _spec(port, name: str) -> TensorSpec:
    partial_shape = port.get_partial_shape()
    if partial_shape.rank.is_dynamic:
        shape = None
    else:
        shape = tuple(d.get_length() if d.is_static else None for d in partial_shape)
    return TensorSpec(name, shape, numpy_dtype(port.get_element_type().get_type_name()))
