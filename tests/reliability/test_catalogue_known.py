"""The bad inputs that were already handled well when issue 15 was filed (and the few found since): kept in
the catalogue so that they stay one clear line, a status, no traceback and no change on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from .harness import cli_error

DIGITS = ["generate", "3", "--model", "digits", "--quiet"]


@pytest.fixture
def digits_copy(tmp_path) -> Path:
    from edge_sched.pipelines.loading import BUILTIN_MODELS_DIR

    return Path(shutil.copytree(BUILTIN_MODELS_DIR / "digits", tmp_path / "digits",
                                ignore=shutil.ignore_patterns("openvino")))


@pytest.mark.parametrize("extra, message, rc", [
    (["--steps", "0"], "--steps must be at least 1, got 0", 1),
    (["--images", "0"], "--images must be at least 1, got 0", 1),
    (["--images", "-3"], "--images must be at least 1, got -3", 1),
    (["--scheduler", "EulerDiscrete"], "unknown scheduler 'EulerDiscrete'. Did you mean 'EulerDiscreteScheduler'", 1),
    (["--scheduler", "DPM++ 9M"], "unknown scheduler 'DPM\\+\\+ 9M'", 1),
    (["--seed", "abc"], "argument --seed: invalid int value: 'abc'", 2),
    (["--seed", "99999999999999999999999"], r"seed must be in \[-2\*\*63, 2\*\*64 - 1\]", 1),
    (["--rng", "gpu"], "argument --rng: invalid choice: 'gpu'", 2),
    (["--backend", "tensorrt"], "argument --backend: invalid choice: 'tensorrt'", 2),
    (["--backend", "openvino", "--device", "NPU"], "OpenVINO device 'NPU' is not available", 1),
    (["--negative", "x"], "DDPMPipeline does not take --negative", 1),
    (["--size", "64x64"], "DDPMPipeline does not take --size", 1),
    (["--strength", "0.5"], "DDPMPipeline does not take --strength", 1),
    (["--steps", "100000"], r"num_inference_steps \(100000\) cannot be larger than num_train_timesteps \(1000\)", 1),
    (["--provider", "Nope"], "unknown execution provider 'Nope'", 1),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_generate_options(tmp_path, extra, message, rc):
    cli_error(f"generate (digits) {' '.join(extra)}", DIGITS + extra + ["--out", tmp_path / "x.png"], message,
              roots=[tmp_path], expected_rc=rc)


def test_prompt_missing_or_unknown_class(tmp_path):
    cli_error("generate (digits) without a PROMPT", ["generate", "--model", "digits", "--quiet", "--out", tmp_path / "x.png"],
              "this UNet is class-conditional: pass class_labels= or a prompt of class names", roots=[tmp_path])
    cli_error("generate (digits) 'a cat'", ["generate", "a cat", "--model", "digits", "--quiet", "--out",
                                            tmp_path / "x.png"], r"the prompt must name classes of this model .* "
                                                                 r"\(unknown: 'a', 'cat'\)", roots=[tmp_path])


def test_init_image_on_digits(tmp_path):
    init = tmp_path / "init.png"
    Image.new("RGB", (16, 16)).save(init)
    cli_error("generate (digits) --init-image", DIGITS + ["--init-image", init, "--out", tmp_path / "x.png"],
              "DDPMPipeline does not take --init-image", roots=[tmp_path])


@pytest.mark.parametrize("model, message", [
    ("/nonexistent/folder", "no such folder, and not a Hub repo id"),
    ("not a repo id!", "no such folder, and not a Hub repo id"),
], ids=["missing folder", "not a repo id"])
def test_model_not_found(tmp_path, model, message):
    cli_error(f"generate --model {model}", ["generate", "3", "--model", model, "--out", tmp_path / "x.png"], message,
              roots=[tmp_path])


def _edit(path: Path, text=None, **changes):
    if text is not None:
        path.write_text(text)
        return
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("breakage, message", [
    ("no model_index", r"no model_index.json"),
    ("model_index not JSON", r"model_index.json: not valid JSON at line 1, column 2"),
    ("model_index an array", r"model_index.json.*an array|must be an object|expected"),
    ("unknown pipeline class", r"pipeline class 'KandinskyPipeline' is not one this runtime runs"),
    ("no scheduler config", r"no scheduler_config.json"),
    ("scheduler config not UTF-8", r"scheduler_config.json: not UTF-8 text \(byte 0xff at offset 0\)"),
    ("unknown scheduler class", r"unknown scheduler class 'NoSuchScheduler'"),
    ("scheduler field of the wrong type", r"DDPMScheduler config field 'num_train_timesteps' must be int, got 'many'"),
    ("unet folder missing", r"needs the component folder\(s\) unet"),
    ("model.onnx garbage", r"unet: could not load .*model.onnx with onnxruntime|not a valid ONNX file"),
    ("model.onnx empty", r"unet: could not load .*model.onnx with onnxruntime|not a valid ONNX file"),
    ("class_labels.json broken", r"class_labels.json: expected"),
])
def test_broken_folder(digits_copy, breakage, message):
    f = digits_copy
    if breakage == "no model_index":
        (f / "model_index.json").unlink()
    elif breakage == "model_index not JSON":
        _edit(f / "model_index.json", "{oops")
    elif breakage == "model_index an array":
        _edit(f / "model_index.json", "[1, 2]")
    elif breakage == "unknown pipeline class":
        _edit(f / "model_index.json", _class_name="KandinskyPipeline")
    elif breakage == "no scheduler config":
        (f / "scheduler" / "scheduler_config.json").unlink()
    elif breakage == "scheduler config not UTF-8":
        (f / "scheduler" / "scheduler_config.json").write_bytes(b"\xff\xfe{}")
    elif breakage == "unknown scheduler class":  # the class model_index.json names is the one loaded (as diffusers)
        _edit(f / "model_index.json", scheduler=["diffusers", "NoSuchScheduler"])
    elif breakage == "scheduler field of the wrong type":
        _edit(f / "scheduler" / "scheduler_config.json", num_train_timesteps="many")
    elif breakage == "unet folder missing":
        shutil.rmtree(f / "unet")
    elif breakage == "model.onnx garbage":
        (f / "unet" / "model.onnx").write_bytes(b"\x08\x07\x12\x04junk" * 10)
    elif breakage == "model.onnx empty":
        (f / "unet" / "model.onnx").write_bytes(b"")
    elif breakage == "class_labels.json broken":
        _edit(f / "class_labels.json", names=[1, 2])
    cli_error(f"generate on a folder: {breakage}", ["generate", "3", "--model", f, "--steps", "2", "--quiet", "--out",
                                                    f.parent / "x.png"], message, roots=[f.parent])


@pytest.mark.parametrize("extra, message, rc", [
    (["--format", "tflite"], "argument --format: invalid choice: 'tflite'", 2),
    (["--format", "onnx", "--dtype", "int8"], "argument --dtype: invalid choice: 'int8'", 2),
    (["--format", "onnx", "--set", "foo"], "scheduler override 'foo' is not of the form key=value", 1),
    (["--format", "onnx", "--static-shapes", "1x2"], r"static shapes must look like 1x512x512", 1),
    (["--format", "onnx", "--weight-compression", "int4"], "weight compression int4 is for format 'openvino'", 1),
    (["--format", "openvino", "--fuse-attention"], "fuse_attention is for format 'onnx'", 1),
    (["--format", "onnx", "--scheduler", "Nope"], "unknown scheduler 'Nope'", 1),
    (["--format", "onnx", "--revision", "main"], "--revision applies to Hub repos, not to a local folder", 1),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_export_options(tiny_ddpm_src, tmp_path, extra, message, rc):
    cli_error(f"export {' '.join(extra)}", ["export", tiny_ddpm_src, tmp_path / "out", *extra], message,
              roots=[tmp_path, tiny_ddpm_src], expected_rc=rc)


def test_export_sources(tiny_ddpm_src, tmp_path):
    cli_error("export SOURCE missing", ["export", tmp_path / "missing", tmp_path / "out", "--format", "onnx"],
              "no such folder", roots=[tmp_path])
    cli_error("export SOURCE a config file", ["export", tiny_ddpm_src / "unet" / "config.json", tmp_path / "out",
                                              "--format", "onnx"], "is a file but not a checkpoint", roots=[tmp_path])
    pickled = Path(shutil.copytree(tiny_ddpm_src, tmp_path / "pickled"))
    weights = pickled / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    cli_error("export SOURCE with pickle weights only", ["export", pickled, tmp_path / "out", "--format", "onnx"],
              r"only pickle weights .* needs allow_pickle=True \(--allow-pickle\)", roots=[tmp_path])
    cli_error("set-scheduler on a folder not made by export", ["set-scheduler", tiny_ddpm_src, "Euler"],
              "no edge_sched.json; not a folder made by edge-sched export", roots=[tiny_ddpm_src])
    cli_error("info on a missing folder", ["info", tmp_path / "missing"], "no such folder", roots=[tmp_path])
