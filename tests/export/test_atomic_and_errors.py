"""Bad input and failures: a clear message naming the culprit, and nothing left behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import export
from export.backends import OnnxBackend
from export.errors import (
    ExportError,
    SchedulerConversionError,
    SourceError,
    ValidationError,
)
from export.source import check_folder


def _existing_output(tmp_path: Path) -> Path:
    """A previous export (its manifest lists its files): what --overwrite may replace."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("the user's previous export")
    (out / "edge_sched.json").write_text(json.dumps({"edge_sched_manifest": 1, "files": {"keep.txt": "0"}}))
    return out


def _assert_untouched(out: Path) -> None:
    assert sorted(p.name for p in out.iterdir()) == ["edge_sched.json", "keep.txt"]
    assert (out / "keep.txt").read_text() == "the user's previous export"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"], "temporary folders left behind"


def test_existing_output_refused_without_overwrite(tiny_sd, tmp_path):
    out = _existing_output(tmp_path)
    with pytest.raises(ExportError, match="already exists.*overwrite"):
        export.export_pipeline(tiny_sd, out, format="onnx", progress=None)
    _assert_untouched(out)


def test_output_that_is_a_file_refused(tiny_sd, tmp_path):
    out = tmp_path / "out"
    out.write_text("x")
    with pytest.raises(ExportError, match="not a folder"):
        export.export_pipeline(tiny_sd, out, format="onnx", overwrite=True, progress=None)
    assert out.read_text() == "x"


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failure_mid_export_leaves_output_as_it_was(tiny_sd, tmp_path, monkeypatch, error):
    out = _existing_output(tmp_path)
    done = []
    real = OnnxBackend.export_component

    def export_component(self, name, model, config, path):
        if name == "unet":
            raise error
        real(self, name, model, config, path)
        done.append(name)

    monkeypatch.setattr(OnnxBackend, "export_component", export_component)
    if isinstance(error, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            export.export_pipeline(tiny_sd, out, format="onnx", overwrite=True, progress=None)
    else:
        with pytest.raises(ExportError, match="unet: onnx export failed: RuntimeError: disk on fire"):
            export.export_pipeline(tiny_sd, out, format="onnx", overwrite=True, progress=None)
    assert done == ["text_encoder"]  # it really failed mid-way
    _assert_untouched(out)


def test_failure_leaves_no_new_output_nor_created_parents(tiny_sd, tmp_path, monkeypatch):
    def boom(self, name, model, config, path):
        raise RuntimeError("boom")

    monkeypatch.setattr(OnnxBackend, "export_component", boom)
    out = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(ExportError, match="text_encoder"):
        export.export_pipeline(tiny_sd, out, format="onnx", progress=None)
    assert list(tmp_path.iterdir()) == []


def test_validation_failure_names_component_and_numbers(tiny_sd, tmp_path, monkeypatch):
    """A graph 1% off its torch component fails the fp32 bound; the existing OUTPUT stays as it was."""
    real_submodels, real_runner = OnnxBackend.submodels, OnnxBackend.runner

    def text_encoder_only(self, pipe, family):  # keeps the test short: one component is enough
        return {k: v for k, v in real_submodels(self, pipe, family).items() if k == "text_encoder"}

    def off_by_one_percent(path):
        run = real_runner(path)
        return lambda inputs: {k: v * np.float32(1.01) for k, v in run(inputs).items()}

    monkeypatch.setattr(OnnxBackend, "submodels", text_encoder_only)
    monkeypatch.setattr(OnnxBackend, "runner", staticmethod(off_by_one_percent))
    out = _existing_output(tmp_path)
    with pytest.raises(ValidationError) as info:
        export.export_pipeline(tiny_sd, out, format="onnx", overwrite=True, progress=None)
    message = str(info.value)
    assert "text_encoder" in message and "> 0.001" in message and "max abs difference" in message
    rel = info.value.results["text_encoder"]["max_rel"]
    assert 0.009 < rel < 0.011  # 1% of the largest value, give or take float32
    assert f"{rel:.3g}" in message
    _assert_untouched(out)


def test_source_not_found(tmp_path):
    with pytest.raises(SourceError, match="no such folder"):
        export.export_pipeline(tmp_path / "nope", tmp_path / "out", format="onnx", progress=None)
    with pytest.raises(SourceError, match="no model_index.json"):
        export.export_pipeline(tmp_path, tmp_path / "out", format="onnx", progress=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _copy(tiny_sd, tmp_path) -> Path:
    dst = tmp_path / "src"
    shutil.copytree(tiny_sd, dst)
    return dst


def _edit_index(folder: Path, **changes) -> None:
    path = folder / "model_index.json"
    index = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            index.pop(key, None)
        else:
            index[key] = value
    path.write_text(json.dumps(index))


def test_unsupported_pipeline_class(tiny_sd, tmp_path):
    src = _copy(tiny_sd, tmp_path)
    _edit_index(src, _class_name="KandinskyPipeline")
    with pytest.raises(SourceError, match="'KandinskyPipeline' is not supported; supported: StableDiffusionPipeline, "
                                          "StableDiffusionImg2ImgPipeline, .*, DDPMPipeline, DDIMPipeline"):
        export.export_pipeline(src, tmp_path / "out", format="onnx", progress=None)
    assert not (tmp_path / "out").exists()


def test_missing_component(tiny_sd, tmp_path):
    src = _copy(tiny_sd, tmp_path)
    _edit_index(src, vae=None)
    with pytest.raises(SourceError, match="missing components: vae"):
        check_folder(src, "src")


def test_remote_code_component_refused(tiny_sd, tmp_path):
    src = _copy(tiny_sd, tmp_path)
    _edit_index(src, unet=["my_pipelines", "MyUNet"])
    with pytest.raises(SourceError, match="unet comes from 'my_pipelines'"):
        check_folder(src, "src")


def test_pickle_only_weights_need_explicit_permission(tiny_sd, tmp_path):
    src = _copy(tiny_sd, tmp_path)
    weights = src / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_name("diffusion_pytorch_model.bin"))
    with pytest.raises(SourceError, match=r"unet: only pickle weights \(diffusion_pytorch_model.bin\).*allow_pickle"):
        export.export_pipeline(src, tmp_path / "out", format="onnx", progress=None)
    assert check_folder(src, "src", allow_pickle=True)["_class_name"] == "StableDiffusionPipeline"
    assert not (tmp_path / "out").exists()


def test_unknown_scheduler_and_override_key_fail_before_exporting(tiny_sd, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SchedulerConversionError, match="unknown scheduler 'EulerDiscrete'.*'EulerDiscreteScheduler'"):
        export.export_pipeline(tiny_sd, out, format="onnx", scheduler="EulerDiscrete", progress=None)
    with pytest.raises(SchedulerConversionError, match="unknown override 'timestep_spacin'.*'timestep_spacing'"):
        export.export_pipeline(
            tiny_sd, out, format="onnx", scheduler="EulerDiscreteScheduler",
            scheduler_overrides={"timestep_spacin": "trailing"}, progress=None,
        )
    assert not out.exists()


def test_bad_format_and_dtype(tiny_sd, tmp_path):
    with pytest.raises(ExportError, match="unknown format 'tflite'"):
        export.export_pipeline(tiny_sd, tmp_path / "o", format="tflite", progress=None)
    with pytest.raises(ExportError, match="unknown dtype 'int3'"):
        export.export_pipeline(tiny_sd, tmp_path / "o", format="onnx", dtype="int3", progress=None)
    with pytest.raises(ExportError, match="weight compression int4 is for format 'openvino'.*onnx has int8"):
        export.export_pipeline(tiny_sd, tmp_path / "o", format="onnx", weight_compression="int4", progress=None)
    with pytest.raises(ExportError, match="fuse_attention is for format 'onnx'"):
        export.export_pipeline(tiny_sd, tmp_path / "o", format="openvino", fuse_attention=True, progress=None)
    with pytest.raises(ExportError, match="fuse_attention is for fp32 graphs"):
        export.export_pipeline(tiny_sd, tmp_path / "o", format="onnx", dtype="fp16", fuse_attention=True, progress=None)
    with pytest.raises(ExportError, match="unknown weight compression 'int2'; choose one of int8, int4"):
        export.export_pipeline(tiny_sd, tmp_path / "o", format="openvino", weight_compression="int2", progress=None)
    assert list(tmp_path.iterdir()) == []
