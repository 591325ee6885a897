"""Graphs for small boards: attention fused for ONNX Runtime, int8 weights kept int8 in memory, and the
low-memory mode's one-row UNet calls, each against diffusers' torch pipeline on the same tiny weights.

- ``--fuse-attention`` (com.microsoft.MultiHeadAttention) is the same math as torch's attention in another
  order: the parity bound of every other folder (1e-3, images in [0, 1]).
- int8 weights change the numbers by design. Their image is held to the bound of OpenVINO's int8 weights
  (nncf, the peer) on the same weights and seeds: at most 1.5x nncf's difference from diffusers' image,
  and at most 0.1 in absolute terms.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import edge_sched.pipelines
from edge_sched.runtime.external_data import model_metadata
from edge_sched.runtime.onnxruntime_engine import INT8_WEIGHTS_METADATA

from .pipeline_runs import LOW_MEMORY_ROUNDING, load_ours, record, run_both

CASES = [
    ("euler-a", "EulerAncestralDiscreteScheduler", {}, dict(num_inference_steps=5)),
    ("dpm2m-karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, dict(num_inference_steps=6)),
    ("ddim-eta", "DDIMScheduler", {}, dict(num_inference_steps=5, eta=0.7)),
]
CALL = dict(prompt="a photo of a cat", height=32, width=32, guidance_scale=7.5)


def _ops(path) -> dict:
    graph = onnx.load(str(path), load_external_data=False).graph
    counts: dict = {}
    for node in graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _image(reference, folder, scheduler, overrides, call, seed=3, **options):
    pipe = load_ours(edge_sched.pipelines.StableDiffusionPipeline, folder, **options)
    return run_both(reference, pipe, scheduler, overrides, seed=seed, **CALL, **call)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fused_attention_matches_diffusers(case, sd_folders, reference_sd):
    _, scheduler, overrides, call = case
    ours, ref = _image(reference_sd, sd_folders("edge-onnx-fused"), scheduler, overrides, call)
    assert record("sd fused attention (onnxruntime)", ours, ref) <= 1e-3


def test_fused_attention_graph(sd_folders):
    fused, plain = _ops(sd_folders("edge-onnx-fused") / "unet" / "model.onnx"), _ops(sd_folders("edge-onnx") / "unet" / "model.onnx")
    assert fused.get("MultiHeadAttention") == plain["Softmax"] and "Softmax" not in fused, (fused, plain)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_int8_weights_as_close_to_diffusers_as_nncf_int8(case, sd_folders, reference_sd):
    _, scheduler, overrides, call = case
    ours, ref = _image(reference_sd, sd_folders("edge-onnx-int8"), scheduler, overrides, call)
    peer, ref_again = _image(reference_sd, sd_folders("edge-openvino-int8"), scheduler, overrides, call)
    np.testing.assert_array_equal(ref, ref_again)
    ours_diff, peer_diff = record("sd int8 weights (onnxruntime)", ours, ref), record("sd nncf int8 (openvino)", peer, ref)
    assert ours_diff <= 0.1 and ours_diff <= 1.5 * peer_diff, (ours_diff, peer_diff)


def test_int8_graph_is_marked_and_runs_in_priority_order(sd_folders):
    import onnxruntime as ort

    folder = sd_folders("edge-onnx-int8")
    key, value = INT8_WEIGHTS_METADATA
    unet = folder / "unet" / "model.onnx"
    assert model_metadata(unet) == {key: value}
    ops = _ops(unet)
    graph = onnx.load(str(unet), load_external_data=False).graph
    int8 = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert ops["DequantizeLinear"] == len(int8) > 0
    # every Conv / MatMul weight of any size worth it is int8: the float32 ones left are small
    assert max(int(np.prod(t.dims)) for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT) < 4096
    pipe = edge_sched.pipelines.StableDiffusionPipeline.from_pretrained(folder)
    options = pipe.graphs["unet"].session.get_session_options()
    assert options.execution_order == ort.ExecutionOrder.PRIORITY_BASED
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    plain = edge_sched.pipelines.StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"))
    assert model_metadata(sd_folders("edge-onnx") / "unet" / "model.onnx") == {}
    assert plain.graphs["unet"].session.get_session_options().graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_int8_folder_is_a_quarter(sd_folders):
    def size(folder):
        return sum(f.stat().st_size for f in (folder / "unet").iterdir())

    ratio = size(sd_folders("edge-onnx-int8")) / size(sd_folders("edge-onnx"))
    assert 0.2 < ratio < 0.45, ratio  # int8 values plus a float32 scale per channel, biases and norms float32


def test_low_memory_runs_the_guided_unet_one_row_at_a_time(sd_folders, monkeypatch):
    from edge_sched.runtime.base import Component

    batches = []
    call = Component.__call__

    def watched(self, **feeds):
        if self.name == "unet":
            batches.append(feeds["sample"].shape[0])
        return call(self, **feeds)

    monkeypatch.setattr(Component, "__call__", watched)
    folder = sd_folders("edge-onnx-int8")
    images, calls = {}, {}
    for low in (False, True):
        batches.clear()
        pipe = load_ours(edge_sched.pipelines.StableDiffusionPipeline, folder, low_memory=low)
        images[low] = pipe(**CALL, num_inference_steps=3, generator=1, output_type="np").images
        calls[low] = list(batches)
    assert set(calls[False]) == {2} and calls[True] == [1] * (2 * len(calls[False])), calls
    # the same arithmetic per row; only the rounding of 1-row against 2-row products differs
    assert np.abs(images[True] - images[False]).max() <= LOW_MEMORY_ROUNDING


def test_metadata_of_an_unreadable_file(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\xff\xff\xff")
    assert model_metadata(bad) == {}
    assert model_metadata(tmp_path / "missing.onnx") == {}
