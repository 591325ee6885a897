"""Static shapes (``reshape``, static batch 1 as NPUs run it) and low-memory mode of the flow pipelines: the same
images as diffusers (static) and as the default mode (low memory, bit for bit), one graph in memory at a time."""

from __future__ import annotations

import numpy as np
import pytest

from edge_sched.pipelines import FluxPipeline, StableDiffusion3Pipeline
from edge_sched.runtime import EngineError

from .pipeline_runs import LOW_MEMORY_ROUNDING, load_ours, record, run_both

BOUND = 1e-3
SIZE = dict(height=32, width=32)
EULER = "FlowMatchEulerDiscreteScheduler"


def test_sd3_reshape_fixes_every_graph_and_keeps_parity(flow_folder, flow_reference):
    pipe = load_ours(StableDiffusion3Pipeline, flow_folder("sd3", "edge-openvino"), compile=False)
    pipe.reshape(batch_size=1, num_images_per_prompt=1, guidance_scale=7.0, max_sequence_length=32, **SIZE)
    ours, ref = run_both(flow_reference("sd3"), pipe, EULER, {}, seed=3, prompt="a cat", num_inference_steps=3,
                         max_sequence_length=32, **SIZE)
    assert record("StableDiffusion3Pipeline edge-openvino (static)", ours, ref) <= BOUND
    shapes = {n: {k: s.shape for k, s in pipe.graph(n).inputs.items()} for n in pipe.graphs.names}
    assert shapes["transformer"]["hidden_states"] == (2, 4, 16, 16)
    assert shapes["transformer"]["encoder_hidden_states"] == (2, 77 + 32, 64)
    assert shapes["text_encoder_3"]["input_ids"] == (1, 32)
    assert shapes["vae_decoder"]["latent_sample"] == (1, 4, 16, 16)
    with pytest.raises(EngineError, match="hidden_states"):
        pipe("a cat", num_inference_steps=2, height=48, width=48, max_sequence_length=32)


def test_sd3_static_batch_one_runs_guidance_as_two_calls(flow_folder, flow_reference):
    """openvino.genai's NPU mode: every graph at batch 1; the guided transformer batch runs in two chunks."""
    static = {"text_encoder": {"input_ids": (1, 77)}, "text_encoder_2": {"input_ids": (1, 77)},
              "text_encoder_3": {"input_ids": (1, 24)},
              "transformer": {"hidden_states": (1, 4, 16, 16), "timestep": (1,),
                              "encoder_hidden_states": (1, 77 + 24, 64), "pooled_projections": (1, 64)},
              "vae_decoder": {"latent_sample": (1, 4, 16, 16)}}
    pipe = load_ours(StableDiffusion3Pipeline, flow_folder("sd3", "edge-openvino"), static_shapes=static)
    ours, ref = run_both(flow_reference("sd3"), pipe, EULER, {}, seed=4, prompt="a red cat", guidance_scale=5.0,
                         num_inference_steps=3, max_sequence_length=24, **SIZE)
    assert record("StableDiffusion3Pipeline edge-openvino (static batch 1)", ours, ref) <= BOUND


def test_flux_reshape_keeps_parity(flow_folder, flow_reference):
    pipe = load_ours(FluxPipeline, flow_folder("flux", "edge-openvino"), compile=False)
    pipe.reshape(batch_size=1, true_cfg_scale=2.0, max_sequence_length=16, **SIZE)
    ours, ref = run_both(flow_reference("flux"), pipe, EULER, {}, seed=5, prompt="a cat", negative_prompt="a dog",
                         true_cfg_scale=2.0, num_inference_steps=3, max_sequence_length=16, **SIZE)
    assert record("FluxPipeline edge-openvino (static)", ours, ref) <= BOUND
    inputs = pipe.graph("transformer").inputs
    assert inputs["hidden_states"].shape == (2, 64, 16) and inputs["img_ids"].shape == (64, 3)
    assert inputs["txt_ids"].shape == (16, 3) and inputs["guidance"].shape == (2,)


def test_reshape_needs_openvino(flow_folder):
    pipe = load_ours(StableDiffusion3Pipeline, flow_folder("sd3", "edge-onnx"))
    with pytest.raises(EngineError, match="OpenVINO"):
        pipe.reshape(**SIZE)


@pytest.mark.parametrize("cls, kind", [(StableDiffusion3Pipeline, "sd3"), (FluxPipeline, "flux")])
def test_low_memory_gives_the_same_image_with_one_graph_at_a_time(cls, kind, flow_folder):
    from edge_sched.schedulers import scheduler_class

    folder = flow_folder(kind, "edge-onnx")
    images = {}
    for low in (False, True):
        pipe = load_ours(cls, folder, low_memory=low)
        pipe.scheduler = scheduler_class(EULER).from_config(pipe.base_scheduler_config)
        seen = []

        def watch(p, i, t, kwargs):
            seen.append(list(p.graphs.loaded))
            return kwargs

        images[low] = pipe("a photo of a cat", num_inference_steps=3, generator=9, output_type="np",
                           callback_on_step_end=watch, **SIZE).images
        if low:
            assert pipe.graphs.loaded == [], "a graph stayed loaded after the call"
            assert all(loaded == ["transformer"] for loaded in seen), seen
    # the transformer runs one row at a time in low-memory mode: only 1-row against 2-row rounding differs
    assert np.abs(images[True] - images[False]).max() <= LOW_MEMORY_ROUNDING


def test_sana_reshape_and_low_memory(flow_folder, flow_reference):
    from edge_sched.pipelines import SanaPipeline

    call = dict(prompt="a cat", num_inference_steps=3, use_resolution_binning=False, max_sequence_length=40, **SIZE)
    pipe = load_ours(SanaPipeline, flow_folder("sana", "edge-openvino"), compile=False)
    pipe.reshape(batch_size=1, guidance_scale=4.5, max_sequence_length=40, use_resolution_binning=False, **SIZE)
    ours, ref = run_both(flow_reference("sana"), pipe, "DPMSolverMultistepScheduler", {}, seed=6, **call)
    assert record("SanaPipeline edge-openvino (static)", ours, ref) <= BOUND
    assert pipe.graph("transformer").inputs["encoder_attention_mask"].shape == (2, 40)
    low = load_ours(SanaPipeline, flow_folder("sana", "edge-onnx"), low_memory=True)
    default = load_ours(SanaPipeline, flow_folder("sana", "edge-onnx"))
    images = [p(generator=6, output_type="np", **call).images for p in (low, default)]
    np.testing.assert_array_equal(images[0], images[1])
    assert low.graphs.loaded == []
