"""export/onnx_rewrite.py's weight-only int8 on a hand-made graph: which weights it takes, and that the graph
computes what the float graph computes with the dequantized weights (ONNX Runtime, float32 rounding)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_sched.runtime.external_data import model_metadata
from export.errors import ExportError
from export.onnx_rewrite import INT8_DEQUANTIZE, WEIGHTS_KEY, compress_onnx_weights, quantize_per_channel

RNG = np.random.default_rng(0)
CONV_W = RNG.standard_normal((16, 8, 3, 3), dtype=np.float32)  # 1,152 values: under MIN_ELEMENTS, left float
CONV2_W = RNG.standard_normal((64, 16, 3, 3), dtype=np.float32)
MM_W = RNG.standard_normal((64, 96), dtype=np.float32)
TABLE = RNG.standard_normal((100, 64), dtype=np.float32)  # read by Gather: an embedding, left float


def _graph(weights: dict, opset: int = 17) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["x", "conv_w"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "conv2_w"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("ReduceMean", ["c2"], ["pooled"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["pooled", "mm_w"], ["y"]),
        helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 6, 6]),
                     helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 96]),
         helper.make_tensor_value_info("emb", TensorProto.FLOAT, [3, 64])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _run(path, feeds):
    """At the "basic" level, as our runtime runs int8 graphs (the "all" level turns DequantizeLinear + MatMul into
    ONNX Runtime's MatMulNBits, other arithmetic)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feeds)


def test_int8_weights_compute_what_the_dequantized_float_graph_computes(tmp_path):
    weights = {"conv_w": CONV_W, "conv2_w": CONV2_W, "mm_w": MM_W, "table": TABLE}
    path = tmp_path / "model.onnx"
    onnx.save(_graph(weights), str(path))
    counts = compress_onnx_weights(path)
    assert counts["weights"] == 2  # conv2_w and mm_w; conv_w is small, the Gather table an embedding
    model = onnx.load(str(path))
    kinds = {t.name: t.data_type for t in model.graph.initializer}
    assert kinds["conv_w"] == kinds["table"] == TensorProto.FLOAT
    assert kinds["conv2_w.int8"] == kinds["mm_w.int8"] == TensorProto.INT8
    assert model_metadata(path) == {WEIGHTS_KEY: INT8_DEQUANTIZE}
    ops = [n.op_type for n in model.graph.node]
    assert ops.index("DequantizeLinear") == ops.index("Conv") + 1  # right before the second Conv, its consumer

    # the float graph with q * scale as its weights, as numpy dequantizes them
    dequantized = dict(weights)
    for name, axis in (("conv2_w", 0), ("mm_w", 1)):
        q, scale = quantize_per_channel(weights[name], axis)
        shape = [1] * q.ndim
        shape[axis] = -1
        dequantized[name] = q.astype(np.float32) * scale.reshape(shape)
        assert np.abs(dequantized[name] - weights[name]).max() <= scale.max() / 2 + 1e-6  # half a step at most
    reference = tmp_path / "reference.onnx"
    onnx.save(_graph(dequantized), str(reference))
    feeds = {"x": RNG.standard_normal((1, 8, 6, 6), dtype=np.float32), "ids": np.array([3, 0, 99])}
    # not bit for bit: a Conv with constant weights takes another kernel (prepacked) than one whose weights
    # come from a node; both are float32 sums of the same products, so they differ by float32 rounding of
    # the largest values (a few ulps of the output's scale)
    for got, want in zip(_run(path, feeds), _run(reference, feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())


def test_quantize_per_channel_keeps_a_zero_channel_zero():
    w = RNG.standard_normal((4, 10), dtype=np.float32)
    w[2] = 0
    q, scale = quantize_per_channel(w, 0)
    assert q.dtype == np.int8 and np.all(q[2] == 0) and scale[2] == 1 and np.abs(q).max() == 127


def test_an_opset_before_13_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(_graph({"conv_w": CONV_W, "conv2_w": CONV2_W, "mm_w": MM_W, "table": TABLE}, opset=11), str(path))
    before = path.read_bytes()
    with pytest.raises(ExportError, match="opset 11; int8 weights need opset 13"):
        compress_onnx_weights(path)
    assert path.read_bytes() == before
