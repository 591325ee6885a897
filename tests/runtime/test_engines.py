"""The engine layer on small hand-built graphs: names, dtypes, external weights, fp16 inputs,
static shapes, compiled-model cache, integer-to-float input promotion, and clear errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_sched.runtime import EngineError, load_component
from edge_sched.runtime.onnxruntime_engine import OnnxRuntimeComponent
from edge_sched.runtime.openvino_engine import OpenVINOComponent

W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10


def affine_graph(folder, *, dtype=TensorProto.FLOAT, external=False, int_timestep=False):
    """y = x @ W + t  (x: [batch, 4]; t: a scalar timestep, int64 cast to float when int_timestep)."""
    np_dtype = np.float16 if dtype == TensorProto.FLOAT16 else np.float32
    weight = numpy_helper.from_array(W.astype(np_dtype), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"])]
    if int_timestep:
        nodes.append(helper.make_node("Unsqueeze", ["t", "axes"], ["t1"]))
        nodes.append(helper.make_node("Cast", ["t1"], ["tf"], to=dtype))
        t_input = helper.make_tensor_value_info("t", TensorProto.INT64, [])
        inits = [weight, numpy_helper.from_array(np.array([0], np.int64), "axes")]
    else:
        nodes.append(helper.make_node("Identity", ["t"], ["tf"]))
        t_input = helper.make_tensor_value_info("t", dtype, [])
        inits = [weight]
    nodes.append(helper.make_node("Add", ["xw", "tf"], ["y"]))
    graph = helper.make_graph(nodes, "affine", [helper.make_tensor_value_info("x", dtype, ["batch", 4]), t_input],
                              [helper.make_tensor_value_info("y", dtype, ["batch", 3])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save_model(model, folder / "model.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx_data", size_threshold=0)
    else:
        onnx.save_model(model, folder / "model.onnx")
    return folder


X = np.array([[1, 2, 3, 4], [0.5, -1, 2, 0]], np.float32)


def expected(t):
    return X @ W + np.float32(t)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_names_dtypes_and_numbers(tmp_path, backend):
    c = load_component("g", affine_graph(tmp_path / "g"), backend)
    assert list(c.inputs) == ["x", "t"] and list(c.outputs) == ["y"]
    assert c.inputs["x"].shape == (None, 4) and c.inputs["x"].dtype == np.float32
    np.testing.assert_allclose(c(x=X, t=np.float32(2.5))["y"], expected(2.5), rtol=1e-6)


def test_external_weights_load_from_the_folder(tmp_path):
    folder = affine_graph(tmp_path / "ext", external=True)
    assert (folder / "model.onnx_data").is_file() and (folder / "model.onnx").stat().st_size < 1000
    c = OnnxRuntimeComponent("g", folder / "model.onnx")
    np.testing.assert_allclose(c(x=X, t=np.float32(1))["y"], expected(1), rtol=1e-6)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_fp16_graph_gets_its_inputs_cast(tmp_path, backend):
    c = load_component("g", affine_graph(tmp_path / "h", dtype=TensorProto.FLOAT16), backend,
                       **({"inference_precision": None} if backend == "openvino" else {}))
    assert c.inputs["x"].dtype == np.float16
    y = c(x=X, t=np.float32(0.5))["y"]  # float32 in: cast to float16 by the component
    assert y.dtype == np.float16
    # fp16 arithmetic on fp16-rounded inputs: exact result +- the usual accumulation bound
    x16, w16 = X.astype(np.float16).astype(np.float64), W.astype(np.float16).astype(np.float64)
    exact = x16 @ w16 + 0.5
    bound = 6 * 2.0**-11 * (np.abs(x16) @ np.abs(w16) + 0.5)  # 4 products + 3 sums + 1 add, rounding each
    assert np.all(np.abs(y.astype(np.float64) - exact) <= bound)


def test_openvino_promotes_a_cast_integer_timestep_to_float(tmp_path):
    folder = affine_graph(tmp_path / "i", int_timestep=True)
    plain = OpenVINOComponent("g", folder / "model.onnx")
    assert plain.inputs["t"].dtype == np.int64
    promoted = OpenVINOComponent("g", folder / "model.onnx", float_inputs=("t",))
    assert promoted.inputs["t"].dtype == np.float32
    np.testing.assert_allclose(promoted(x=X, t=np.float32(2.75))["y"], expected(2.75), rtol=1e-6)  # not truncated


def test_openvino_static_shapes_and_cache(tmp_path):
    folder = affine_graph(tmp_path / "s")
    cache = tmp_path / "cache"
    c = OpenVINOComponent("g", folder / "model.onnx", static_shapes={"x": (1, 4)}, cache_dir=cache)
    assert c.inputs["x"].shape == (1, 4)
    assert any(cache.iterdir()), "no compiled blob in the cache folder"
    with pytest.raises(EngineError, match=r"input x: float32 \[1, 4\] cannot take an array of shape \[2, 4\]"):
        c(x=X, t=np.float32(0))
    with pytest.raises(EngineError, match="static_shapes names \\['nope'\\]"):
        OpenVINOComponent("g", folder / "model.onnx", static_shapes={"nope": (1,)})


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_feed_errors_name_the_component_and_inputs(tmp_path, backend):
    c = load_component("unet", affine_graph(tmp_path / "e"), backend)
    with pytest.raises(EngineError, match=r"unet .*expected inputs \(x: float32 \[\?, 4\], t: float32 \[\]\); "
                                          r"missing \['t'\], unexpected \['z'\]"):
        c(x=X, z=1)
    with pytest.raises(EngineError, match=r"input x: float32 \[\?, 4\] cannot take an array of shape \[4\]"):
        c(x=X[0], t=np.float32(0))


def test_bad_options(tmp_path):
    folder = affine_graph(tmp_path / "o")
    with pytest.raises(EngineError, match="unknown inference_precision 'f8'"):
        OpenVINOComponent("g", folder / "model.onnx", inference_precision="f8")
    with pytest.raises(EngineError, match="unknown graph_optimization_level 'max'"):
        OnnxRuntimeComponent("g", folder / "model.onnx", graph_optimization_level="max")
    with pytest.raises(EngineError, match="graph file .* not found"):
        OnnxRuntimeComponent("g", tmp_path / "missing.onnx")
    with pytest.raises(EngineError, match="no graph for openvino"):
        load_component("g", tmp_path, "openvino")


def test_released_component_says_so(tmp_path):
    c = load_component("g", affine_graph(tmp_path / "r"), "onnxruntime")
    c.release()
    with pytest.raises(EngineError, match="released"):
        c(x=X, t=np.float32(0))


def _engine_objects(component) -> list:
    """Engine (openvino / onnxruntime) objects reachable from the component's attributes."""
    import gc
    import types

    seen, found, todo = set(), [], [component.__dict__]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, types.FunctionType)):
            continue
        seen.add(id(obj))
        if type(obj).__module__.split(".")[0] in ("openvino", "onnxruntime"):
            found.append(type(obj).__name__)
        todo.extend(gc.get_referents(obj))
    return found


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_released_component_keeps_no_engine_object(tmp_path, backend):
    # low-memory mode frees a graph by releasing it; whoever still holds the component (a profiler, a
    # caller's local) must not keep the compiled model alive through a port, a request or a session
    c = load_component("g", affine_graph(tmp_path / "r"), backend)
    c(x=X, t=np.float32(0))
    assert _engine_objects(c)  # the walk sees them while loaded
    c.release()
    assert _engine_objects(c) == []
