"""export/ on the flow-matching pipelines (SD3, FLUX, Sana): what the folder holds and says, the validation per
component against torch, optimum's own pipelines loading our folders, and optimum-onnx's FLUX export after
optimum-intel was imported in the same process (optimum-intel's import deletes optimum-onnx's op fixes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import export
from export import SourceError
from tests.runtime.flow_folders import BUILD_SECONDS

GRAPH = {"onnx": "model.onnx", "openvino": "openvino_model.xml"}
EXPECTED = {
    "sd3": {"text_encoder", "text_encoder_2", "text_encoder_3", "transformer", "vae_encoder", "vae_decoder"},
    "flux": {"text_encoder", "text_encoder_2", "transformer", "vae_encoder", "vae_decoder"},
    "sana": {"text_encoder", "transformer", "vae_encoder", "vae_decoder"},
}
TRANSFORMER_INPUTS = {
    "sd3": {"hidden_states", "timestep", "encoder_hidden_states", "pooled_projections"},
    "flux": {"hidden_states", "timestep", "encoder_hidden_states", "pooled_projections", "img_ids", "txt_ids",
             "guidance"},
    "sana": {"hidden_states", "timestep", "encoder_hidden_states", "encoder_attention_mask"},
}
# the tokenizer.json of the text encoder whose ids come from fast_tokenizer.py, and its model type
LONG_TEXT_TOKENIZER = {"sd3": ("tokenizer_3", "Unigram"), "flux": ("tokenizer_2", "Unigram"), "sana": ("tokenizer", "BPE")}


def folder_size(folder) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("kind", ["sd3", "flux", "sana"])
@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_manifest_components_tokenizers_and_validation(kind, fmt, flow_folder):
    folder = flow_folder(kind, f"edge-{fmt}")
    manifest = json.loads((folder / export.MANIFEST).read_text())
    assert manifest["family"] == kind and manifest["format"] == fmt
    assert manifest["prediction_type"] == "flow_prediction"
    assert set(manifest["components"]) == EXPECTED[kind]
    for name in EXPECTED[kind]:
        assert (folder / name / GRAPH[fmt]).is_file() and (folder / name / "config.json").is_file()
    # T5's / Gemma's tokenizer.json is what the runtime reads
    name, model_type = LONG_TEXT_TOKENIZER[kind]
    assert manifest[name] == f"{name}/tokenizer.json"
    assert json.loads((folder / name / "tokenizer.json").read_text())["model"]["type"] == model_type
    for name, numbers in manifest["validation"].items():
        assert numbers["max_rel"] <= numbers["threshold_rel"] == 1e-3, name
        assert numbers["max_abs"] < 1e-4, (name, numbers)
    assert export.verify_manifest(folder) == []
    assert {i["name"] for i in manifest["components"]["transformer"]["inputs"]} == TRANSFORMER_INPUTS[kind]
    print(f"\n{kind} {fmt}: {folder_size(folder) / 2**20:.2f} MiB, exported in {manifest['export_seconds']} s")


def _ort_image(folder, cls_name, seed=1):
    import torch
    import optimum.onnxruntime

    pipe = getattr(optimum.onnxruntime, cls_name).from_pretrained(str(folder))
    pipe.set_progress_bar_config(disable=True)
    return pipe("a cat", height=32, width=32, num_inference_steps=3, generator=torch.Generator().manual_seed(seed),
                output_type="np").images


@pytest.mark.parametrize("kind, ort_class", [("sd3", "ORTStableDiffusion3Pipeline"), ("flux", "ORTFluxPipeline")])
def test_optimum_onnxruntime_pipelines_load_our_folders(kind, ort_class, flow_folder):
    import diffusers
    import torch

    ref = getattr(diffusers, {"sd3": "StableDiffusion3Pipeline", "flux": "FluxPipeline"}[kind]).from_pretrained(
        flow_folder(kind, "source"))
    ref.set_progress_bar_config(disable=True)
    expected = ref("a cat", height=32, width=32, num_inference_steps=3, generator=torch.Generator().manual_seed(1),
                   output_type="np").images
    got = _ort_image(flow_folder(kind, "edge-onnx"), ort_class)
    assert float(np.abs(got - expected).max()) <= 1e-3


def test_sana_folder_records_diffusers_call_defaults(flow_folder):
    """Sana's complex human instruction and aspect-ratio bins are data of diffusers' pipeline: the export copies
    them from diffusers into pipeline_defaults.json (the runtime's defaults)."""
    import inspect

    import diffusers
    from diffusers.pipelines.sana.pipeline_sana import ASPECT_RATIO_512_BIN

    defaults = json.loads((flow_folder("sana", "edge-onnx") / "pipeline_defaults.json").read_text())
    expected = inspect.signature(diffusers.SanaPipeline.__call__).parameters["complex_human_instruction"].default
    assert defaults["complex_human_instruction"] == list(expected)
    assert defaults["aspect_ratio_bins"] == {k: [int(v[0]), int(v[1])] for k, v in ASPECT_RATIO_512_BIN.items()}


def test_optimum_ort_sana_pipeline_loads_our_folder(flow_folder):
    """ORTSanaPipeline is importable from optimum.onnxruntime.modeling_diffusion only."""
    import diffusers
    import torch
    from optimum.onnxruntime.modeling_diffusion import ORTSanaPipeline

    call = dict(height=32, width=32, num_inference_steps=3, output_type="np", use_resolution_binning=False)
    ref = diffusers.SanaPipeline.from_pretrained(flow_folder("sana", "source"))
    ref.set_progress_bar_config(disable=True)
    expected = ref("a cat", generator=torch.Generator().manual_seed(1), **call).images
    pipe = ORTSanaPipeline.from_pretrained(str(flow_folder("sana", "edge-onnx")))
    pipe.set_progress_bar_config(disable=True)
    got = pipe("a cat", generator=torch.Generator().manual_seed(1), **call).images
    assert float(np.abs(got - expected).max()) <= 1e-3


def test_optimum_openvino_pipeline_loads_our_sd3_folder(flow_folder):
    import diffusers
    import torch
    from optimum.intel import OVStableDiffusion3Pipeline

    ref = diffusers.StableDiffusion3Pipeline.from_pretrained(flow_folder("sd3", "source"))
    ref.set_progress_bar_config(disable=True)
    pipe = OVStableDiffusion3Pipeline.from_pretrained(str(flow_folder("sd3", "edge-openvino")),
                                                      ov_config={"INFERENCE_PRECISION_HINT": "f32"})
    pipe.set_progress_bar_config(disable=True)
    call = dict(height=32, width=32, num_inference_steps=3, output_type="np")
    expected = ref("a cat", generator=torch.Generator().manual_seed(1), **call).images
    got = pipe("a cat", generator=torch.Generator().manual_seed(1), **call).images
    assert float(np.abs(got - expected).max()) <= 1e-3


_AFTER_OPENVINO = """
import sys, torch
torch.set_num_threads(1)
from optimum.intel import OVFluxPipeline  # noqa: F401  (its import deletes optimum-onnx's op fixes)
from optimum.exporters.onnx import model_patcher
before = [s.name for s in model_patcher.UNSUPPORTED_OPS_PATCHING_SPEC]
assert "rms_norm" not in before, before
import export
manifest = export.export_pipeline(sys.argv[1], sys.argv[2], format="onnx", progress=None)
after = [s.name for s in model_patcher.UNSUPPORTED_OPS_PATCHING_SPEC]
assert after == before, (before, after)  # optimum-intel's list is given back
print(max(v["max_rel"] for v in manifest["validation"].values()))
"""


def test_flux_onnx_export_after_optimum_intel_import(flow_folder, tmp_path):
    done = subprocess.run([sys.executable, "-c", _AFTER_OPENVINO, str(flow_folder("flux", "source")),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CI": "true"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.split()[-1]) <= 1e-3


def test_flux_source_without_t5_is_refused(flow_folder, tmp_path):
    source = tmp_path / "flux"
    shutil.copytree(flow_folder("flux", "source"), source)
    index = json.loads((source / "model_index.json").read_text())
    del index["text_encoder_2"]
    (source / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(SourceError, match="missing components: text_encoder_2"):
        export.export_pipeline(source, tmp_path / "out", progress=None)


def test_build_and_export_times_are_reported(flow_folder):
    """Not a timing assertion: prints what each tiny build / export took in this run (the report's numbers)."""
    for kind in ("sd3", "flux", "sana"):
        for how in ("source", "edge-onnx", "edge-openvino"):
            flow_folder(kind, how)
    lines = [f"{kind:14s} {how:17s} {seconds:6.1f} s  {folder_size(flow_folder(kind, how)) / 2**20:6.2f} MiB"
             for (kind, how), seconds in sorted(BUILD_SECONDS.items())]
    print("\n" + "\n".join(lines))
    assert all(seconds > 0 for seconds in BUILD_SECONDS.values())


def test_sd3_fp16_onnx_export_validates(flow_folder, tmp_path):
    manifest = export.export_pipeline(flow_folder("sd3", "source"), tmp_path / "fp16", format="onnx", dtype="fp16",
                                      progress=None)
    assert manifest["dtype"] == "fp16"
    for name, numbers in manifest["validation"].items():
        assert numbers["max_rel"] <= numbers["threshold_rel"] == 2e-2, name


def test_static_shapes_at_export_are_refused_for_flow_pipelines(flow_folder, tmp_path):
    with pytest.raises(export.ExportError, match=r"pipe.reshape"):
        export.export_pipeline(flow_folder("flux", "source"), tmp_path / "out", progress=None,
                               static_shapes={"batch": 1, "height": 32, "width": 32})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["sd3", "flux"])
def test_cli_info_and_generate_text_and_image_to_image(kind, flow_folder, tmp_path):
    """edge-sched info / generate on a flow folder; --init-image picks the family's Img2Img pipeline."""
    folder = str(flow_folder(kind, "edge-onnx"))

    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "edge_sched.cli", *args], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    info = cli("info", folder)
    assert {"StableDiffusion3Pipeline" if kind == "sd3" else "FluxPipeline", "transformer: model.onnx"} <= set(
        line.split(" (")[0].removeprefix("pipeline: ") for line in info.splitlines())
    first = tmp_path / "a.png"
    cli("generate", "a photo of a cat", "--model", folder, "--steps", "2", "--size", "32x32", "--seed", "3",
        "--out", str(first), "--quiet")
    second = tmp_path / "b.png"
    cli("generate", "a red cat", "--model", folder, "--steps", "3", "--seed", "3", "--init-image", str(first),
        "--strength", "0.7", "--out", str(second), "--quiet")
    from PIL import Image

    with Image.open(second) as image:
        assert image.size == (32, 32)
        assert "Denoising strength: 0.7" in image.info["parameters"]


@pytest.mark.parametrize("kind", ["sd3", "flux"])
def test_openvino_genai_runs_our_openvino_folders(kind, flow_folder):
    """openvino-genai's Text2ImagePipeline reads our OpenVINO SD3 / FLUX folders (graphs, openvino_tokenizer.xml
    per tokenizer, scheduler); its own noise and scheduler code, so no image parity is asked of it."""
    og = pytest.importorskip("openvino_genai")
    pipe = og.Text2ImagePipeline(str(flow_folder(kind, "edge-openvino")), "CPU")
    image = np.asarray(pipe.generate("a photo of a cat", width=32, height=32, num_inference_steps=3).data)
    assert image.shape == (1, 32, 32, 3) and image.dtype == np.uint8
    assert image.std() > 1.0


@pytest.mark.parametrize("kind,sampler", [("flux", "DPM++ 2M"), ("sd3", "DPM++ 2M")])
def test_cli_flow_solver_by_name_matches_diffusers(kind, sampler, flow_folder, tmp_path):
    """`generate --scheduler "DPM++ 2M"` on a flow folder: the CLI adds use_flow_sigmas, flow_prediction and the
    folder's shift (and dynamic shifting), the options a diffusers user sets by hand; same PNG as diffusers."""
    import diffusers
    import torch
    from PIL import Image

    from edge_sched.schedulers import resolve_sampler

    out = tmp_path / "cli.png"
    done = subprocess.run([sys.executable, "-m", "edge_sched.cli", "generate", "a photo of a cat", "--model",
                           str(flow_folder(kind, "edge-onnx")), "--scheduler", sampler, "--steps", "4", "--size",
                           "32x32", "--seed", "5", "--out", str(out), "--quiet"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ref = getattr(diffusers, {"flux": "FluxPipeline", "sd3": "StableDiffusion3Pipeline"}[kind]).from_pretrained(
        flow_folder(kind, "source"))
    ref.set_progress_bar_config(disable=True)
    chosen = resolve_sampler(sampler, None)
    config = ref.scheduler.config
    flow = {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": config["shift"],
            "use_dynamic_shifting": config["use_dynamic_shifting"]}
    ref.scheduler = getattr(diffusers, chosen.cls.__name__).from_config(config, **flow, **chosen.options)
    want = ref("a photo of a cat", num_inference_steps=4, height=32, width=32, output_type="np",
               generator=torch.Generator().manual_seed(5)).images[0]
    with Image.open(out) as image:
        got = np.asarray(image, np.float32) / 255
    # PNG levels: at most one level of 255 apart (the float images agree within 1e-3)
    assert float(np.abs(got - np.round(want * 255) / 255).max()) <= 1 / 255 + 1e-6
