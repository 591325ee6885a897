"""Issue 15 item 2: no graph reads outside its folder. Every external-data location (ONNX, for ONNX Runtime
and OpenVINO) and every IR weights file is checked by onnx's checker rules before the engine sees the
graph; the engine is never called for a refused one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_sched.runtime import EngineError
from edge_sched.runtime.external_data import ExternalDataError, check_onnx_external_data

from .harness import CORRECT, api_error, cli_error, record

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

SECRET = np.arange(4, dtype=np.float32)  # what an attacker would like to read


def _external(name: str, location: str, **extra) -> TensorProto:
    t = TensorProto()
    t.name, t.data_type = name, TensorProto.FLOAT
    t.dims.extend([4])
    t.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, **extra}.items():
        entry = t.external_data.add()
        entry.key, entry.value = key, str(value)
    return t


def _save(folder: Path, graph) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _io():
    return ([helper.make_tensor_value_info("X", TensorProto.FLOAT, [4])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4])])


def initializer_graph(folder: Path, location: str, **extra) -> Path:
    inputs, outputs = _io()
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "g", inputs, outputs,
                              [_external("W", location, **extra)])
    return _save(folder, graph)


def constant_graph(folder: Path, location: str) -> Path:
    """The external tensor in a Constant node's attribute."""
    inputs, outputs = _io()
    const = helper.make_node("Constant", [], ["W"])
    const.attribute.append(helper.make_attribute("value", _external("W", location)))
    graph = helper.make_graph([const, helper.make_node("Add", ["X", "W"], ["Y"])], "g", inputs, outputs)
    return _save(folder, graph)


def subgraph_graph(folder: Path, location: str) -> Path:
    """The external tensor as an initializer of an If node's branch."""
    inputs, outputs = _io()
    branch_out = [helper.make_tensor_value_info("B", TensorProto.FLOAT, [4])]
    then = helper.make_graph([helper.make_node("Identity", ["W"], ["B"])], "then", [], branch_out,
                             [_external("W", location)])
    other = helper.make_graph([helper.make_node("Identity", ["X"], ["B"])], "else", [], branch_out)
    cond = helper.make_tensor("C", TensorProto.BOOL, [], [True])
    node = helper.make_node("If", ["C"], ["Y"], then_branch=then, else_branch=other)
    return _save(folder, helper.make_graph([node], "g", inputs, outputs, [cond]))


def sparse_graph(folder: Path, location: str) -> Path:
    inputs, outputs = _io()
    values = _external("S_values", location)
    values.dims[:] = [2]
    indices = helper.make_tensor("S_indices", TensorProto.INT64, [2], [0, 3])
    sparse = helper.make_sparse_tensor(values, indices, [4])
    graph = helper.make_graph([helper.make_node("Add", ["X", "S"], ["Y"])], "g", inputs, outputs)
    graph.sparse_initializer.append(sparse)
    graph.sparse_initializer[0].values.name = "S"
    return _save(folder, graph)


@pytest.fixture
def ws(tmp_path) -> Path:
    (tmp_path / "secret.bin").write_bytes(SECRET.tobytes())
    return tmp_path


@pytest.fixture
def engine_calls(monkeypatch):
    """Graph paths the engines were asked to open (ONNX Runtime sessions, OpenVINO read_model)."""
    import onnxruntime
    import openvino

    calls = []
    real_session, real_read = onnxruntime.InferenceSession, openvino.Core.read_model

    def session(path, *a, **k):
        calls.append(str(path))
        return real_session(path, *a, **k)

    def read_model(self, path, *a, **k):
        calls.append(str(path))
        return real_read(self, path, *a, **k)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    monkeypatch.setattr(openvino.Core, "read_model", read_model)
    return calls


def _load(engine: str, path: Path):
    if engine == "onnxruntime":
        from edge_sched.runtime.onnxruntime_engine import OnnxRuntimeComponent

        return OnnxRuntimeComponent("unet", path)
    from edge_sched.runtime.openvino_engine import OpenVINOComponent

    return OpenVINOComponent("unet", path)


def _hardlink(ws):
    os.link(ws / "secret.bin", ws / "m" / "w.bin")


def _symlink_out(ws):
    os.symlink(ws / "secret.bin", ws / "m" / "w.bin")


def _dir_symlink(ws):
    os.symlink(ws, ws / "m" / "sub")


def _marker_file(ws):
    target = ws / "m" / "*" / "_ORT_MEM_ADDR_"
    target.mkdir(parents=True)
    (target / "*").write_bytes(SECRET.tobytes())


def _short_file(ws):
    (ws / "m" / "w.bin").write_bytes(SECRET.tobytes())


# (case, graph builder, location, extra external_data keys, setup, message)
BAD = [
    ("parent traversal", initializer_graph, "../secret.bin", {}, None, r"'\.\./secret\.bin', which points outside"),
    ("deep traversal", initializer_graph, "a/../../secret.bin", {}, None, "points outside"),
    ("backslash traversal", initializer_graph, "..\\secret.bin", {}, None, "points outside"),
    ("absolute path", initializer_graph, "ABS", {}, None, "an absolute path"),
    ("symlink out of the folder", initializer_graph, "w.bin", {}, _symlink_out, "a symlink to .*secret.bin"),
    ("directory symlink out", initializer_graph, "sub/secret.bin", {}, _dir_symlink, "resolves to .*secret.bin, outside"),
    ("hard link", initializer_graph, "w.bin", {}, _hardlink, "2 hard links"),
    ("empty location", initializer_graph, "", {}, None, "location that is empty"),
    ("in-memory marker #", initializer_graph, "#0", {}, None, "an in-memory marker"),
    ("ORT memory-address marker", initializer_graph, "*/_ORT_MEM_ADDR_/*", {"offset": 4096, "length": 16},
     _marker_file, "an in-memory marker"),
    ("missing data file", initializer_graph, "nope.bin", {}, None, "does not exist"),
    ("length past the end", initializer_graph, "w.bin", {"offset": 8, "length": 16}, _short_file,
     r"bytes 8\.\.24 are past the end of the file \(16 bytes\)"),
    ("negative offset", initializer_graph, "w.bin", {"offset": -4}, _short_file, "offset '-4' is not a non-negative"),
    ("traversal in a Constant attribute", constant_graph, "../secret.bin", {}, None, "points outside"),
    ("traversal in an If branch", subgraph_graph, "../secret.bin", {}, None, "points outside"),
    ("traversal in a sparse initializer", sparse_graph, "../secret.bin", {}, None, "points outside"),
]


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("case, build, location, extra, setup, message", BAD, ids=[b[0] for b in BAD])
def test_bad_external_data_is_refused_before_the_engine(ws, engine_calls, engine, case, build, location, extra,
                                                        setup, message):
    folder = ws / "m"
    folder.mkdir()
    if setup is not None:
        setup(ws)
    location = str(ws / "secret.bin") if location == "ABS" else location
    path = build(folder, location, **extra) if build is initializer_graph else build(folder, location)
    api_error(f"graph ({engine}): external data, {case}", lambda: _load(engine, path), ExternalDataError, message,
              roots=[ws])
    assert str(path) not in engine_calls  # the engine never saw it


def test_graph_file_symlinked_out_of_the_folder(ws, engine_calls):
    outside = initializer_graph(ws / "elsewhere", "w.bin")
    (ws / "elsewhere" / "w.bin").write_bytes(SECRET.tobytes())
    (ws / "m").mkdir()
    (ws / "m" / "model.onnx").symlink_to(outside)
    api_error("graph: model.onnx a symlink out of its folder", lambda: _load("onnxruntime", ws / "m" / "model.onnx"),
              ExternalDataError, "a symlink to .*elsewhere/model.onnx, outside the model folder", roots=[ws])
    assert not engine_calls


def test_openvino_weights_symlinked_out(ws, engine_calls):
    import openvino as ov

    graph = initializer_graph(ws / "src", "w.bin")
    (ws / "src" / "w.bin").write_bytes(np.ones(4, np.float32).tobytes())
    (ws / "m").mkdir()
    ov.save_model(ov.Core().read_model(str(graph)), str(ws / "m" / "openvino_model.xml"))
    engine_calls.clear()
    weights = ws / "m" / "openvino_model.bin"
    shutil.move(weights, ws / "outside.bin")
    weights.symlink_to(ws / "outside.bin")
    api_error("graph (openvino IR): .bin a symlink out of the folder",
              lambda: _load("openvino", ws / "m" / "openvino_model.xml"), ExternalDataError,
              "a symlink to .*outside.bin, outside the model folder", roots=[ws])
    assert not engine_calls


def test_broken_protobuf_is_one_clear_error(ws, engine_calls):
    (ws / "m").mkdir()
    (ws / "m" / "model.onnx").write_bytes(b"\x0a\xff\xff\xff\xff\x0f garbage")
    api_error("graph: model.onnx not protobuf", lambda: _load("onnxruntime", ws / "m" / "model.onnx"), EngineError,
              "not a valid ONNX file", roots=[ws])
    assert not engine_calls


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_valid_external_data_loads(ws, engine):
    folder = ws / "m"
    initializer_graph(folder, "weights/w.bin", offset=0, length=16)
    (folder / "weights").mkdir()
    (folder / "weights" / "w.bin").write_bytes(np.ones(4, np.float32).tobytes())
    out = _load(engine, folder / "model.onnx")(X=np.zeros(4, np.float32))
    np.testing.assert_array_equal(next(iter(out.values())), np.ones(4, np.float32))
    record(f"graph ({engine}): external data in a subfolder loads", CORRECT)


def test_hugging_face_cache_symlinks_load(ws):
    """A Hub snapshot's files are symlinks into the repo's blobs/: accepted (they stay in the repo's cache)."""
    repo = ws / "hub" / "models--org--name"
    snapshot = repo / "snapshots" / ("0" * 40) / "unet"
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    initializer_graph(repo / "blobs" / "g", "w.bin")
    (repo / "blobs" / "graph").write_bytes((repo / "blobs" / "g" / "model.onnx").read_bytes())
    (repo / "blobs" / "weights").write_bytes(np.full(4, 2, np.float32).tobytes())
    (snapshot / "model.onnx").symlink_to(Path("../../../blobs/graph"))
    (snapshot / "w.bin").symlink_to(Path("../../../blobs/weights"))
    assert check_onnx_external_data(snapshot / "model.onnx") == 1
    out = _load("onnxruntime", snapshot / "model.onnx")(X=np.zeros(4, np.float32))
    np.testing.assert_array_equal(next(iter(out.values())), np.full(4, 2, np.float32))
    record("graph: Hugging Face cache symlinks into blobs/ load", CORRECT)


def test_cli_generate_with_a_hostile_unet(tiny_sd_onnx, tmp_path, engine_calls):
    """The whole path a user takes: a downloaded folder whose UNet names ../../secret as weights."""
    folder = Path(shutil.copytree(tiny_sd_onnx, tmp_path / "downloaded"))
    (tmp_path / "secret.bin").write_bytes(SECRET.tobytes())
    unet = folder / "unet" / "model.onnx"
    model = onnx.load(str(unet))
    model.graph.initializer.append(_external("stolen", "../../secret.bin"))
    unet.write_bytes(model.SerializeToString())
    line = cli_error("generate: a UNet whose external data is ../../secret.bin",
                     ["generate", "a cat", "--model", folder, "--steps", "1", "--out", tmp_path / "x.png", "--quiet"],
                     r"unet/model.onnx: tensor 'stolen' keeps its data in '\.\./\.\./secret\.bin', which points outside",
                     roots=[tmp_path])
    assert str(unet) not in engine_calls, line
