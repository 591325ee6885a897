"""SanaPipeline: same prompt, same seed, same image as diffusers' torch pipeline.

A tiny random-weight Sana (Gemma2 with a byte-fallback BPE tokenizer, a Sana transformer, a DC-AE;
tests/export/tiny_flow.py), exported by our export/ (ONNX, OpenVINO) and by optimum-onnx; max abs pixel
difference <= 1e-3 against diffusers for DPM-Solver++ and UniPC on flow sigmas, FlowMatchEuler (also custom
sigmas) and FlowMatchHeun, with diffusers' complex human instruction (recorded by our export), batches with
negative prompts, and use_resolution_binning (snapped to the 512 table, decoded, resized and cropped back)."""

from __future__ import annotations

import inspect
import shutil

import numpy as np
import pytest

from edge_sched.pipelines import SanaPipeline
from edge_sched.pipelines.sana import bilinear_resize

from .flow_folders import FLOW_SIGMAS
from .pipeline_runs import load_ours, record, run_both

BOUND = 1e-3
SMALL = dict(height=32, width=32, use_resolution_binning=False)

CASES = [
    ("dpm++2m-flow", "DPMSolverMultistepScheduler", {}, dict(num_inference_steps=4)),
    ("unipc-flow", "UniPCMultistepScheduler", FLOW_SIGMAS, dict(num_inference_steps=5)),
    ("euler", "FlowMatchEulerDiscreteScheduler", {"shift": 3.0}, dict(num_inference_steps=4)),
    ("euler-sigmas", "FlowMatchEulerDiscreteScheduler", {}, dict(sigmas=[1.0, 0.8, 0.5, 0.2])),
    ("heun", "FlowMatchHeunDiscreteScheduler", {"shift": 3.0}, dict(num_inference_steps=3)),
]
FOLDERS = ("edge-onnx", "edge-openvino", "optimum-onnx")


def diffusers_instruction():
    import diffusers

    return inspect.signature(diffusers.SanaPipeline.__call__).parameters["complex_human_instruction"].default


@pytest.fixture(scope="module", params=FOLDERS)
def sana_pipe(request, flow_folder):
    return request.param, load_ours(SanaPipeline, flow_folder("sana", request.param))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_text_to_image_matches_diffusers(case, sana_pipe, flow_reference):
    how, pipe = sana_pipe
    _, scheduler, overrides, kwargs = case
    if how == "optimum-onnx":  # optimum's folder does not record diffusers' instruction: given here
        kwargs = {**kwargs, "complex_human_instruction": diffusers_instruction()}
    ours, ref = run_both(flow_reference("sana"), pipe, scheduler, overrides, seed=7, prompt="A photo of a Cat ",
                         **SMALL, **kwargs)
    assert ours.shape == ref.shape == (1, 32, 32, 3)
    diff = record(f"SanaPipeline {how}", ours, ref)
    assert diff <= BOUND, f"{scheduler} {overrides}: max abs pixel difference {diff:.3g}"
    assert ref.std() > 0.01


@pytest.fixture(scope="module")
def edge_onnx(flow_folder):
    return load_ours(SanaPipeline, flow_folder("sana", "edge-onnx"))


def test_batch_negatives_and_no_instruction(edge_onnx, flow_reference):
    ours, ref = run_both(flow_reference("sana"), edge_onnx, "DPMSolverMultistepScheduler", {}, seed=[1, 2, 3, 4],
                         prompt=["a cat", "a red dog in the sky " * 20], negative_prompt=["sky", ""],
                         num_images_per_prompt=2, num_inference_steps=3, complex_human_instruction=None,
                         max_sequence_length=40, guidance_scale=3.0, **SMALL)
    assert ours.shape == ref.shape == (4, 32, 32, 3)
    assert record("SanaPipeline edge-onnx", ours, ref) <= BOUND


def test_resolution_binning(edge_onnx, flow_reference):
    """64 x 32 asks for aspect ratio 2: the 512 table's 704 x 352 is generated, then resized and cropped back."""
    ours, ref = run_both(flow_reference("sana"), edge_onnx, "DPMSolverMultistepScheduler", {}, seed=3, prompt="a cat",
                         num_inference_steps=2, height=64, width=32)
    assert ours.shape == ref.shape == (1, 64, 32, 3)
    assert record("SanaPipeline edge-onnx (binned)", ours, ref) <= BOUND


def test_embeddings_match_diffusers(edge_onnx, flow_reference):
    import torch

    ref = flow_reference("sana")
    with torch.no_grad():
        expected = ref.encode_prompt(["a cat", "the dog"], True, negative_prompt=["", "sky"], num_images_per_prompt=2,
                                     max_sequence_length=30, complex_human_instruction=diffusers_instruction())
    got = edge_onnx.encode_prompt(["a cat", "the dog"], True, negative_prompt=["", "sky"], num_images_per_prompt=2,
                                  max_sequence_length=30, complex_human_instruction=diffusers_instruction())
    for e, g in zip(expected, got):
        assert g.shape == tuple(e.shape)
        assert float(np.abs(g - e.numpy()).max()) <= 1e-5


@pytest.mark.parametrize("size", [(704, 352), (17, 50), (64, 64)])
def test_bilinear_resize_is_torchs(size):
    import torch

    x = np.random.default_rng(0).standard_normal((2, 3, 40, 28)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(x), size=size, mode="bilinear", align_corners=False)
    assert float(np.abs(bilinear_resize(x, *size) - expected.numpy()).max()) <= 1e-5


# ---- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(height=64, width=40, use_resolution_binning=False), "width must be a positive multiple of 32"),
    (dict(clean_caption=True), "clean_caption"),
    (dict(complex_human_instruction="be nice"), "complex_human_instruction must be a list of strings"),
    (dict(max_sequence_length=0), "max_sequence_length"),
])
def test_bad_arguments_are_clear_errors(kwargs, match, edge_onnx):
    call = dict(prompt="a cat", num_inference_steps=2, **SMALL)
    call.update(kwargs)
    with pytest.raises(ValueError, match=match):
        edge_onnx(**call)


def test_non_flow_scheduler_is_refused(edge_onnx):
    from edge_sched.schedulers import scheduler_class

    edge_onnx.scheduler = scheduler_class("DDIMScheduler")()  # its own config: DDIM takes no flow_prediction
    try:
        with pytest.raises(ValueError, match="DDIMScheduler cannot drive SanaPipeline"):
            edge_onnx("a cat", num_inference_steps=2, **SMALL)
    finally:
        edge_onnx.scheduler = scheduler_class("DPMSolverMultistepScheduler").from_config(edge_onnx.base_scheduler_config)


def test_folder_without_recorded_defaults_needs_them_given(flow_folder, tmp_path):
    folder = tmp_path / "sana"
    shutil.copytree(flow_folder("sana", "edge-onnx"), folder)
    (folder / "pipeline_defaults.json").unlink()
    pipe = load_ours(SanaPipeline, folder)
    with pytest.raises(ValueError, match="pass complex_human_instruction="):
        pipe("a cat", num_inference_steps=2, **SMALL)
    with pytest.raises(ValueError, match="use_resolution_binning=False"):
        pipe("a cat", num_inference_steps=2, complex_human_instruction=None)
    assert pipe("a cat", num_inference_steps=2, complex_human_instruction=None, output_type="np", **SMALL).images.shape \
        == (1, 32, 32, 3)
