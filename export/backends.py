"""The two graph formats, behind the same few calls: which submodels to export (optimum decides),
export one component (optimum's exporter), describe a graph, and run it on numpy inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# optimum's dummy-input shapes for tracing; height/width come from each component's config
from optimum.utils import DEFAULT_DUMMY_SHAPES


def _dims(dims) -> list:
    return [d if isinstance(d, int) else (d or None) for d in dims]


class OnnxBackend:
    name = "onnx"
    graph_name = "model.onnx"

    def __init__(self, dtype: str):
        if dtype != "fp32":
            # optimum-onnx exports fp16 only on CUDA; an fp32 -> fp16 graph conversion is future work
            from .errors import ExportError

            raise ExportError(f"dtype {dtype!r} is not supported for format 'onnx' yet (supported: fp32)")
        self.dtype = dtype

    def submodels(self, pipe) -> dict:
        import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the ONNX export configs)
        from optimum.exporters.utils import get_diffusion_models_for_export

        return get_diffusion_models_for_export(pipe, int_dtype="int64", float_dtype="fp32", exporter="onnx")

    def export_component(self, name: str, model, config, path: Path) -> None:
        from optimum.exporters.onnx.convert import export

        export(model=model, config=config, output=path, device="cpu", input_shapes=dict(DEFAULT_DUMMY_SHAPES))

    @staticmethod
    def describe(path: Path) -> dict:
        import onnx
        from onnx.helper import tensor_dtype_to_np_dtype

        graph = onnx.load(str(path), load_external_data=False).graph

        def io(values):
            out = []
            for v in values:
                t = v.type.tensor_type
                dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
                out.append({"name": v.name, "shape": _dims(dims), "dtype": np.dtype(tensor_dtype_to_np_dtype(t.elem_type)).name})
            return out

        return {"inputs": io(graph.input), "outputs": io(graph.output)}

    @staticmethod
    def runner(path: Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 2  # shared machines: do not grab every core
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]

        def run(inputs: dict) -> dict:
            return dict(zip(names, session.run(names, inputs)))

        return run


class OpenVINOBackend:
    name = "openvino"
    graph_name = "openvino_model.xml"

    def __init__(self, dtype: str):
        from .errors import ExportError

        if dtype not in ("fp32", "fp16"):
            raise ExportError(f"dtype {dtype!r} is not supported for format 'openvino' (supported: fp32, fp16)")
        self.dtype = dtype

    def submodels(self, pipe) -> dict:
        import optimum.exporters.openvino.model_configs  # noqa: F401  (registers the OpenVINO export configs)
        from optimum.exporters.openvino.convert import _set_runtime_options, get_diffusion_models_for_export_ext

        _, models = get_diffusion_models_for_export_ext(pipe, int_dtype="int64", float_dtype="fp32", exporter="openvino")
        _set_runtime_options(models, "text-to-image", "diffusers", False)
        return models

    def export_component(self, name: str, model, config, path: Path) -> None:
        from optimum.exporters.openvino.convert import export
        from optimum.intel import OVConfig

        shapes = {k: v for k, v in DEFAULT_DUMMY_SHAPES.items() if k not in ("height", "width")}
        export(
            model=model,
            config=config,
            output=path,
            device="cpu",
            input_shapes=shapes,
            ov_config=OVConfig(dtype=self.dtype),  # fp16: weights stored in fp16 (compress_to_fp16)
            stateful=False,
            library_name="diffusers",
        )

    @staticmethod
    def describe(path: Path) -> dict:
        import openvino as ov

        model = ov.Core().read_model(str(path))

        def io(ports):
            out = []
            for p in ports:
                shape = p.get_partial_shape()
                dims = [d.get_length() if d.is_static else None for d in shape] if shape.rank.is_static else None
                out.append({"name": p.get_any_name(), "shape": dims, "dtype": np.dtype(p.get_element_type().to_dtype()).name})
            return out

        return {"inputs": io(model.inputs), "outputs": io(model.outputs)}

    @staticmethod
    def runner(path: Path):
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(
            str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}
        )
        names = [o.get_any_name() for o in compiled.outputs]

        def run(inputs: dict) -> dict:
            result = compiled(inputs)
            return {n: np.asarray(result[o]) for n, o in zip(names, compiled.outputs)}

        return run


BACKENDS = {"onnx": OnnxBackend, "openvino": OpenVINOBackend}
