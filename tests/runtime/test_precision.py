"""precision= (issue 18 item 1): "exact" is today's float32 default bit for bit, "fast" is the device's
default (OpenVINO: bf16 on this CPU, a measured image difference; ONNX Runtime on the CPU: float32 with
a note), named values map onto the engines, and contradicting arguments are refused by name."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from edge_sched import torch_compat
from edge_sched.cli import main
from edge_sched.pipelines import DiffusionPipeline, StableDiffusionPipeline
from edge_sched.pipelines.precision import PRECISIONS, PrecisionError

PROMPT = "a photo of a cat"


def image(folder, seed=0, **options):
    pipe = StableDiffusionPipeline.from_pretrained(folder, **options)
    pipe.set_progress_bar_config(disable=True)
    return pipe, pipe(PROMPT, num_inference_steps=4, generator=seed, output_type="np").images


@pytest.mark.parametrize("how", ["edge-onnx", "edge-openvino"])
def test_exact_is_todays_default_bit_for_bit(sd_folders, how):
    _, default = image(sd_folders(how))
    for options in ({"precision": "exact"}, {"precision": "f32"},
                    *([{"inference_precision": "f32"}] if how == "edge-openvino" else [])):
        pipe, got = image(sd_folders(how), **options)
        assert np.array_equal(got, default), options
        if how == "edge-openvino":
            assert pipe.graphs["unet"].inference_precision == "f32"


def test_fast_on_openvino_is_the_device_default_and_measured(sd_folders, capsys):
    folder = sd_folders("edge-openvino")
    _, exact = image(folder, precision="exact")
    _, other_seed = image(folder, seed=1, precision="exact")
    pipe, fast = image(folder, precision="fast")
    device_default = pipe.graphs["unet"].inference_precision
    _, by_default = image(folder, inference_precision=None)  # the engine's own device default
    assert np.array_equal(fast, by_default)
    if device_default == "f32":  # a CPU without bf16: the device default is exact
        assert np.array_equal(fast, exact)
        return
    diff = np.abs(fast.astype(np.float64) - exact)
    seeds = np.abs(other_seed.astype(np.float64) - exact).mean()
    with capsys.disabled():
        print(f"\nprecision='fast' ({device_default}) vs 'exact', tiny SD on OpenVINO: max abs {diff.max():.4g}, "
              f"mean abs {diff.mean():.4g} (another seed: mean abs {seeds:.4g})")
    assert diff.max() > 0  # it did compute in another precision
    assert diff.mean() < 0.05 * seeds  # the same picture: far closer to exact than another seed is
    _, named = image(folder, precision=device_default)
    assert np.array_equal(named, fast)


def test_fast_on_onnxruntime_cpu_is_float32_with_a_note(sd_folders, tmp_path, caplog):
    folder = tmp_path / "onnx"
    shutil.copytree(sd_folders("edge-onnx"), folder)
    _, exact = image(folder)
    with caplog.at_level(logging.INFO, logger="edge_sched"):
        pipe, fast = image(folder, precision="fast")
    assert np.array_equal(fast, exact) and pipe.graphs.variant is None
    assert "precision='fast' with ONNX Runtime on CPUExecutionProvider: float32" in caplog.text
    with pytest.raises(PrecisionError, match="needs fp16 graphs"):
        StableDiffusionPipeline.from_pretrained(folder, precision="f16")
    with pytest.raises(PrecisionError, match="no bfloat16"):
        StableDiffusionPipeline.from_pretrained(folder, precision="bf16")
    for name in pipe.graphs.names:  # stand-in fp16 files (the same graphs): the choice is what is tested
        shutil.copy(folder / name / "model.onnx", folder / name / "model.fp16.onnx")
    assert StableDiffusionPipeline.from_pretrained(folder, precision="fast").graphs.variant is None  # CPU
    assert StableDiffusionPipeline.from_pretrained(folder, precision="f16").graphs.variant == "fp16"
    # torch_dtype agrees with fast and still picks the fp16 files, as without precision=
    pipe = StableDiffusionPipeline.from_pretrained(folder, precision="fast", torch_dtype=torch_compat.float16)
    assert pipe.graphs.variant == "fp16"
    assert StableDiffusionPipeline.from_pretrained(folder, precision="exact").graphs.variant is None


@pytest.mark.parametrize("bad", ["fastest", "F32", "fp16", "", "exact ", 16])
def test_bad_precision_names_the_allowed_values(bad):
    with pytest.raises(PrecisionError) as error:
        DiffusionPipeline.from_pretrained("digits", precision=bad)
    assert f"precision={bad!r}" in str(error.value)
    assert all(repr(p) in str(error.value) for p in PRECISIONS)


@pytest.mark.parametrize("options, message", [
    (dict(precision="fast", inference_precision="f32"), "precision='fast' means inference_precision=None"),
    (dict(precision="exact", inference_precision="bf16"), "inference_precision='bf16' was given too"),
    (dict(precision="bf16", inference_precision=None), "pass only one of them"),
    (dict(precision="exact", torch_dtype=torch_compat.float16), r"contradicts torch_dtype \(fp16\)"),
    (dict(precision="f16", torch_dtype="bfloat16"), r"contradicts torch_dtype \(bf16\)"),
    (dict(precision="fast", torch_dtype=torch_compat.float32), r"contradicts torch_dtype \(fp32\)"),
    (dict(precision="exact", variant="fp16"), "contradicts variant='fp16'"),
])
def test_contradicting_arguments_are_refused(options, message):
    with pytest.raises(PrecisionError, match=message):
        DiffusionPipeline.from_pretrained("digits", **options)


def test_agreeing_arguments_load(sd_folders):
    folder = sd_folders("edge-openvino")
    for options in (dict(precision="fast", inference_precision=None), dict(precision="bf16", inference_precision="bf16"),
                    dict(precision="exact", torch_dtype=torch_compat.float32), dict(precision="fast", torch_dtype="auto")):
        pipe = StableDiffusionPipeline.from_pretrained(folder, compile=False, **options)
        assert pipe.graphs.options["inference_precision"] == {"fast": None}.get(options["precision"],
                                                                                 options["precision"].replace("exact", "f32"))


def test_cli_precision(tmp_path, capsys):
    from PIL import Image

    pixels = {}
    for precision in (None, "exact", "fast"):
        out = tmp_path / f"{precision}.png"
        assert main(["generate", "3", "--model", "digits", "--backend", "openvino", "--steps", "4", "--quiet",
                     *(["--precision", precision] if precision else []), "--out", str(out)]) == 0
        pixels[precision] = np.asarray(Image.open(out))
    assert np.array_equal(pixels["exact"], pixels[None]) and pixels["fast"].shape == pixels[None].shape
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "3", "--model", "digits", "--precision", "half"])
    assert exit_.value.code == 2
    assert "invalid choice: 'half'" in capsys.readouterr().err
