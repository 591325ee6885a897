"""The built-in ``digits`` model with the runtime only: it ships complete and small, loads by name,
generates the digits it is asked for, and the README's first command works where torch cannot be
imported. (Parity with diffusers/torch is in test_digits_torch.py.)"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edge_sched import DiffusionPipeline
from edge_sched.pipelines import PipelineLoadError, builtin_models
from edge_sched.pipelines.loading import BUILTIN_MODELS_DIR
from edge_sched.quality import class_accuracy, frechet_distance_to_real
from edge_sched.schedulers import from_a1111_name

from .conftest import RESULTS

FOLDER = BUILTIN_MODELS_DIR / "digits"
LABELS = np.arange(100) % 10  # ten of each digit

BLOCK_HEAVY = r"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "diffusers", "transformers", "optimum"):
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, _Block())
"""
CLI = BLOCK_HEAVY + r"""
from edge_sched.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "diffusers", "transformers", "optimum"))
assert not heavy, heavy
sys.exit(code)
"""
README_COMMAND = ["generate", "0 1 2 3 4 5 6 7 8 9", "--model", "digits", "--scheduler", "DPM++ 2M Karras",
                  "--steps", "20", "--seed", "0"]


def _pipe(backend="onnxruntime", folder="digits", scheduler="DPM++ 2M"):
    pipe = DiffusionPipeline.from_pretrained(folder, backend=backend)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = from_a1111_name(scheduler, pipe.scheduler.config)
    return pipe


def _images(pipe, labels=LABELS, **kwargs):
    """Images in [-1, 1] (the model's own range, as the torch reference returns them)."""
    latents = pipe(class_labels=labels, generator=0, num_inference_steps=20, output_type="latent", **kwargs).images
    return np.clip(latents, -1, 1)


@pytest.fixture(scope="session")
def onnx_dpmpp_2m():
    images = _images(_pipe())
    RESULTS["DPM++ 2M runtime (ONNX)"] = (class_accuracy(images, LABELS), frechet_distance_to_real(images))
    return images


# ---- what ships ---------------------------------------------------------------------------------

def test_shipped_folder_is_small_and_complete():
    files = [p for p in FOLDER.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    assert total <= 5_000_000, f"{FOLDER} holds {total} bytes"
    names = {p.relative_to(FOLDER).as_posix() for p in files}
    for required in ("model_index.json", "class_labels.json", "edge_sched.json", "README.md", "classifier.npz",
                     "scheduler/scheduler_config.json", "unet/config.json", "unet/model.onnx",
                     "openvino/unet/openvino_model.xml", "openvino/unet/openvino_model.bin"):
        assert required in names, required
    assert "digits" in builtin_models()


@pytest.mark.parametrize("sub", ["", "openvino"])
def test_manifest_hashes_match_the_files(sub):
    # the folder is what `python -m tests.digits.ship_model` wrote: re-run it after changing a file here
    folder = FOLDER / sub
    manifest = json.loads((folder / "edge_sched.json").read_text())
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    actual = {rel: hashlib.sha256(p.read_bytes()).hexdigest() for rel, p in files.items() if rel != "edge_sched.json"}
    assert actual == manifest["files"]
    assert manifest["format"] == ("openvino" if sub else "onnx")
    assert manifest["dtype"] == ("fp16" if sub else "fp32")


def test_class_labels_and_default_guidance():
    info = json.loads((FOLDER / "class_labels.json").read_text())
    assert info == {"names": [str(d) for d in range(10)], "null_class": 10, "guidance_scale": 3.0}
    pipe = _pipe()
    assert pipe.class_names == info["names"] and pipe.default_guidance_scale == 3.0


# ---- the README's first command, without torch ----------------------------------------------------

def test_readme_command_runs_without_torch(tmp_path):
    out = tmp_path / "digits.png"
    res = subprocess.run([sys.executable, "-c", CLI, *README_COMMAND, "--out", str(out), "--quiet"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    image = Image.open(out)
    assert image.size == (64, 48)  # ten 16x16 digits on a 4x3 grid
    # A1111 1.10's infotext: the sampler and its schedule type apart; the model hash is the UNet graph's sha256
    unet_hash = hashlib.sha256((FOLDER / "unet" / "model.onnx").read_bytes()).hexdigest()[:10]
    assert "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 3" in image.text["parameters"]
    assert f"Seed: 0, Size: 16x16, Model hash: {unet_hash}, Model: digits" in image.text["parameters"]
    # the same pixels as the Python API with the model's default guidance (3.0)
    pipe = _pipe("auto", scheduler="DPM++ 2M Karras")
    tiles = pipe("0 1 2 3 4 5 6 7 8 9", num_inference_steps=20, generator=0, guidance_scale=3.0).images
    grid = np.asarray(image.convert("RGB"))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, 4)
        np.testing.assert_array_equal(grid[16 * r:16 * r + 16, 16 * c:16 * c + 16], np.asarray(tile.convert("RGB")))
    # and they are the digits asked for
    digits = grid[..., 0].astype(np.float32) / 127.5 - 1
    crops = np.stack([digits[16 * (i // 4):16 * (i // 4) + 16, 16 * (i % 4):16 * (i % 4) + 16] for i in range(10)])
    assert class_accuracy(crops, np.arange(10)) >= 0.9


# ---- quality with the runtime ----------------------------------------------------------------------

def test_dpmpp_2m_20_steps_guided_gives_the_requested_digits(onnx_dpmpp_2m):
    assert onnx_dpmpp_2m.shape == (100, 1, 16, 16)
    accuracy = class_accuracy(onnx_dpmpp_2m, LABELS)
    assert accuracy >= 0.90, f"class accuracy {accuracy:.2f} over 100 guided DPM++ 2M samples (ONNX Runtime)"


def test_default_guidance_is_the_model_card_s(onnx_dpmpp_2m):
    pipe = _pipe()
    labels = LABELS[:20]
    np.testing.assert_array_equal(_images(pipe, labels), _images(pipe, labels, guidance_scale=3.0))
    assert not np.array_equal(_images(pipe, labels), _images(pipe, labels, guidance_scale=1.0))


def test_openvino_runs_the_onnx_graph_and_the_fp16_ir(onnx_dpmpp_2m):
    labels = LABELS[:50]
    on_onnx = _images(_pipe("openvino"), labels)
    # OpenVINO on the float32 ONNX graph: the same images as ONNX Runtime (float32 rounding only)
    assert np.abs(on_onnx - onnx_dpmpp_2m[:50]).max() <= 1e-4
    ir = _pipe("openvino", FOLDER / "openvino")
    assert ir.graph("unet").path.name == "openvino_model.xml"
    fp16 = _images(ir, labels)
    RESULTS["DPM++ 2M runtime (OpenVINO fp16 IR, 50)"] = (class_accuracy(fp16, labels), frechet_distance_to_real(fp16))
    assert class_accuracy(fp16, labels) >= 0.90


# ---- bad input ----------------------------------------------------------------------------------------

def test_unknown_builtin_name_lists_the_shipped_ones():
    with pytest.raises(PipelineLoadError, match=r"built-in: .*digits"):
        DiffusionPipeline.from_pretrained("digitz")


@pytest.mark.parametrize("prompt", ["a cat", "seven", "", "1 2 x"])
def test_prompt_naming_no_digit_says_what_it_accepts(prompt):
    with pytest.raises(ValueError, match=r"must name classes of this model \(0, 1, 2, 3, 4, 5, 6, 7, 8, 9\)"):
        _pipe()(prompt, num_inference_steps=2)


def test_positional_prompt_and_missing_labels():
    pipe = _pipe()
    a = pipe("3 7", num_inference_steps=4, generator=1, output_type="latent").images
    b = pipe(prompt="3 7", num_inference_steps=4, generator=1, output_type="latent").images
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="class-conditional: pass class_labels= or a prompt"):
        pipe(num_inference_steps=2)
