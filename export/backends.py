"""The two graph formats, behind the same few calls: which submodels to export (optimum decides),
export one component (optimum's exporter), describe a graph, and run it on numpy inputs."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# optimum's dummy-input shapes for tracing; height/width come from each component's config
from optimum.utils import DEFAULT_DUMMY_SHAPES

from .errors import ExportError
from .onnx_rewrite import EXTERNAL_DATA_BYTES, save_onnx_over

# nncf weight-compression modes by our name; int4 keeps the first and last layers in int8 (nncf's default)
COMPRESSION = ("int8", "int4")


def _dims(dims) -> list:
    return [d if isinstance(d, int) else (d or None) for d in dims]


class OnnxBackend:
    name = "onnx"
    graph_name = "model.onnx"

    def __init__(self, dtype: str):
        if dtype not in ("fp32", "fp16"):
            raise ExportError(f"dtype {dtype!r} is not supported for format 'onnx' (supported: fp32, fp16)")
        self.dtype = dtype
        self.fused_attention = False

    def enable_attention_fusion(self) -> None:
        if self.dtype != "fp32":
            raise ExportError("fuse_attention is for fp32 graphs (ONNX Runtime's CPU attention kernel is float32)")
        self.fused_attention = True

    def submodels(self, pipe, family: str = "sd") -> dict:
        if family == "unet2d":
            return {"unet": (pipe.unet, None)}  # no optimum config: exported directly
        import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the ONNX export configs)
        from optimum.exporters.utils import get_diffusion_models_for_export

        if family == "sana":  # Gemma2, the Sana transformer and the DC-AE have their own submodel list
            from optimum.exporters.onnx.utils import get_sana_models_for_export

            return get_sana_models_for_export(pipe, int_dtype="int64", float_dtype="fp32")
        return get_diffusion_models_for_export(pipe, int_dtype="int64", float_dtype="fp32", exporter="onnx")

    def export_component(self, name: str, model, config, path: Path) -> None:
        if config is None:
            from .direct import export_onnx

            export_onnx(model, path)
        else:
            from optimum.exporters.onnx.convert import export

            with onnx_op_patches():
                export(model=model, config=config, output=path, device="cpu", input_shapes=dict(DEFAULT_DUMMY_SHAPES))
        if self.dtype == "fp16":
            to_fp16_onnx(path)
        if self.fused_attention:
            from .onnx_rewrite import fuse_attention

            fuse_attention(path)

    @staticmethod
    def tokenizer_graphs(folder: Path, check_prompts, warn=None) -> list[str]:
        return []  # ONNX runtimes tokenize with tokenizer.json

    @staticmethod
    def make_static(path: Path, shapes: dict) -> None:
        """Fix every input's dims to ``shapes`` and the outputs' dims to what one run yields."""
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        for value in model.graph.input:
            _set_dims(value, shapes[value.name])
        onnx.save(model, str(path))
        zeros = {k: np.zeros(v, dtype=_onnx_np_dtype(model, k)) for k, v in shapes.items()}
        outputs = OnnxBackend.runner(path)(zeros)
        model = onnx.load(str(path), load_external_data=False)
        for value in model.graph.output:
            _set_dims(value, outputs[value.name].shape)
        onnx.save(model, str(path))

    @staticmethod
    def compress_weights(path: Path, mode: str, component: str = "unet") -> None:
        """Weight-only int8 (``export/onnx_rewrite.py``); int4 is OpenVINO's (nncf)."""
        if mode != "int8":
            raise ExportError(f"weight compression {mode!r} is for format 'openvino' (through nncf); onnx has int8")
        from .onnx_rewrite import compress_onnx_weights

        compress_onnx_weights(path)

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
        if dtype not in ("fp32", "fp16"):
            raise ExportError(f"dtype {dtype!r} is not supported for format 'openvino' (supported: fp32, fp16)")
        self.dtype = dtype

    @staticmethod
    def enable_attention_fusion() -> None:
        raise ExportError("fuse_attention is for format 'onnx' (ONNX Runtime's MultiHeadAttention); OpenVINO fuses "
                          "attention itself when it compiles")

    def submodels(self, pipe, family: str = "sd") -> dict:
        if family == "unet2d":
            return {"unet": (pipe.unet, None)}  # no optimum config: converted directly
        import optimum.exporters.openvino.model_configs  # noqa: F401  (registers the OpenVINO export configs)
        from optimum.exporters.openvino.convert import (
            _set_runtime_options,
            get_diffusion_models_for_export_ext,
        )

        _, models = get_diffusion_models_for_export_ext(pipe, int_dtype="int64", float_dtype="fp32", exporter="openvino")
        _set_runtime_options(models, "text-to-image", "diffusers", False)
        return models

    def export_component(self, name: str, model, config, path: Path) -> None:
        if config is None:
            from .direct import convert_openvino

            convert_openvino(model, path, compress_to_fp16=self.dtype == "fp16")
            return
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
    def tokenizer_graphs(folder: Path, check_prompts, warn=None) -> list[str]:
        """``openvino_tokenizer.xml`` / ``openvino_detokenizer.xml`` next to tokenizer.json, which
        OpenVINO's own pipelines (openvino-genai's Text2ImagePipeline) read; none when openvino-tokenizers
        is not installed. Checked to encode like tokenizer.json; these files are optional (edge_sched and
        optimum read tokenizer.json), so one that fails or encodes differently is skipped with ``warn(message)``
        (a vocabulary without some character trips openvino-tokenizers' BPE) instead of failing the export."""
        try:
            from openvino_tokenizers import convert_tokenizer
        except ImportError:
            return []
        import openvino as ov
        from transformers import AutoTokenizer

        names = ("openvino_tokenizer.xml", "openvino_detokenizer.xml")
        try:
            fast = AutoTokenizer.from_pretrained(folder, use_fast=True, local_files_only=True)
            tokenizer, detokenizer = convert_tokenizer(fast, with_detokenizer=True)
            compiled = ov.Core().compile_model(tokenizer, "CPU")
            for prompt in check_prompts:
                ids = compiled([prompt])["input_ids"][0].tolist()
                if ids != fast(prompt).input_ids:
                    raise ExportError(f"it encodes {prompt!r} differently from tokenizer.json")
            for name, model in zip(names, (tokenizer, detokenizer)):
                ov.save_model(model, str(folder / name))
        except Exception as e:
            for name in names:  # nothing half-written
                for path in (folder / name, (folder / name).with_suffix(".bin")):
                    path.unlink(missing_ok=True)
            reason = " ".join(str(e).split())[:200] or type(e).__name__
            message = (f"{folder.name}: skipped the optional {names[0]} (openvino-tokenizers: {reason}); only "
                       "openvino-genai's Text2ImagePipeline needs it, edge-sched and optimum read tokenizer.json")
            if warn is None:
                raise ExportError(message) from e
            warn(message)
            return []
        return list(names)

    def make_static(self, path: Path, shapes: dict) -> None:
        import openvino as ov

        model = ov.Core().read_model(str(path))
        model.reshape({p.get_any_name(): ov.PartialShape(list(shapes[p.get_any_name()])) for p in model.inputs})
        _save_ov_replacing(model, path)

    def compress_weights(self, path: Path, mode: str, component: str = "unet") -> None:
        """int8 / int4 weight compression of the graph at ``path`` with nncf (data-free). int4 applies to
        the UNet only; text encoders and the VAE get int8 (int4 text encoders and VAEs lose too much)."""
        if mode not in COMPRESSION:
            raise ExportError(f"unknown weight compression {mode!r}; choose one of {', '.join(COMPRESSION)}")
        try:
            import nncf
        except ImportError as e:
            raise ExportError(f"weight compression {mode} needs nncf: pip install nncf ({e})") from e
        import openvino as ov

        model = ov.Core().read_model(str(path))
        if mode == "int8" or component not in INT4_COMPONENTS:
            model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        else:
            from nncf.quantization.advanced_parameters import (
                AdvancedCompressionParameters,
            )

            # a layer whose input channels the group size does not divide gets a smaller group (>= 32),
            # or stays int8 (nncf's backup mode)
            model = nncf.compress_weights(
                model, mode=nncf.CompressWeightsMode.INT4_ASYM, group_size=INT4_GROUP_SIZE, ratio=1.0,
                advanced_parameters=AdvancedCompressionParameters(
                    group_size_fallback_mode=nncf.GroupSizeFallbackMode.ADJUST),
            )
        _save_ov_replacing(model, path)

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

# optimum-onnx's op fixes for tracing (tril, rms_norm, norm, movedim, scaled_dot_product_attention, ...), taken
# when this module is imported: importing optimum-intel's OpenVINO exporter deletes some of them from the list
# both share, and a FLUX ONNX export after it fails on aten::rms_norm
from optimum.exporters.onnx import model_patcher as _onnx_patcher  # noqa: E402

_ONNX_OP_PATCHES = list(_onnx_patcher.UNSUPPORTED_OPS_PATCHING_SPEC)
_OPENVINO_REMOVES = {"tril", "rms_norm", "norm", "movedim", "scaled_dot_product_attention"}


def _full_onnx_op_patches() -> list:
    """The list as optimum-onnx defines it: the one taken at import, or (optimum-intel was imported first)
    the one of a fresh, private execution of optimum-onnx's model_patcher module."""
    global _ONNX_OP_PATCHES
    if not _OPENVINO_REMOVES <= {spec.name for spec in _ONNX_OP_PATCHES}:
        import importlib.util
        import sys

        name = "_edge_sched_fresh_onnx_patcher"
        spec = importlib.util.spec_from_file_location(name, _onnx_patcher.__file__)
        fresh = sys.modules[name] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
        spec.loader.exec_module(fresh)
        _ONNX_OP_PATCHES = list(fresh.UNSUPPORTED_OPS_PATCHING_SPEC)
    return _ONNX_OP_PATCHES


@contextmanager
def onnx_op_patches():
    """optimum-onnx's full op-fix list for one ONNX export, whatever optimum-intel removed, put back after."""
    current = _onnx_patcher.UNSUPPORTED_OPS_PATCHING_SPEC
    saved = list(current)
    current[:] = _full_onnx_op_patches()
    try:
        yield
    finally:
        current[:] = saved

INT4_COMPONENTS = ("unet", "transformer")  # the denoiser; text encoders and VAEs keep int8
INT4_GROUP_SIZE = 64  # int4 weights are quantized in groups of input channels (SD's 320/640/1280 divide by 64)


def _save_ov_replacing(model, path: Path) -> None:
    """Save ``model`` over ``path`` (.xml + .bin) through a sibling file, so a failure keeps the old graph."""
    import openvino as ov

    tmp = path.with_name(path.stem + ".tmp.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=False)  # weights keep the precision they already have
    del model
    os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
    os.replace(tmp, path)


def _set_dims(value, dims) -> None:
    shape = value.type.tensor_type.shape
    if len(shape.dim) != len(dims):
        raise ExportError(f"graph input {value.name}: rank {len(shape.dim)}, static shape {list(dims)}")
    for d, n in zip(shape.dim, dims):
        d.Clear()
        d.dim_value = int(n)


def _onnx_np_dtype(model, name: str):
    from onnx.helper import tensor_dtype_to_np_dtype

    value = next(v for v in model.graph.input if v.name == name)
    return tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)


def to_fp16_onnx(path: Path) -> None:
    """fp32 -> fp16 ONNX graph (weights and arithmetic), keeping float32 inputs and outputs so the runtime
    feeds it like the fp32 graph. onnxruntime's converter keeps the ops it knows to be unsafe in fp16.
    Weights stored outside the .onnx (models over protobuf's 2 GB) are written back outside, in one file."""
    import onnx
    from onnx.external_data_helper import uses_external_data
    from onnxruntime.transformers.float16 import convert_float_to_float16

    header = onnx.load(str(path), load_external_data=False)
    old_files = {
        entry.value
        for t in header.graph.initializer if uses_external_data(t)
        for entry in t.external_data if entry.key == "location"
    }
    del header
    inferred = None
    if old_files:  # over 2 GB: shape inference cannot take the model in memory, so it runs on the files
        inferred = path.with_name(path.stem + ".inferred.onnx")
        onnx.shape_inference.infer_shapes_path(str(path), str(inferred))
    model = onnx.load(str(inferred or path))  # with its external weights, if any
    model = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=inferred is not None)
    if inferred is not None:
        inferred.unlink()
    save_onnx_over(model, path, old_files, EXTERNAL_DATA_BYTES)
