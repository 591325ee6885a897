"""`edge-sched generate` / `info` on an exported folder, and a whole generation in a process where
torch, diffusers, transformers and optimum cannot be imported."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edge_sched.cli import main

BLOCK_HEAVY = r"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "diffusers", "transformers", "optimum"):
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, _Block())
"""

GENERATE = BLOCK_HEAVY + r"""
import numpy as np
from edge_sched import DiffusionPipeline, EulerAncestralDiscreteScheduler
pipe = DiffusionPipeline.from_pretrained(sys.argv[1], backend=sys.argv[2])
pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
image = pipe("a cat", num_inference_steps=3, generator=5, output_type="np").images
np.save(sys.argv[3], image)
"""


@pytest.mark.parametrize("backend, kind", [("onnxruntime", "edge-onnx"), ("openvino", "edge-openvino")])
def test_full_generation_without_torch(sd_folders, reference_sd, tmp_path, backend, kind):
    out = tmp_path / "image.npy"
    res = subprocess.run([sys.executable, "-c", GENERATE, str(sd_folders(kind)), backend, str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    ours = np.load(out)
    # and it is the image diffusers makes
    import diffusers
    import torch

    reference_sd.scheduler = diffusers.EulerAncestralDiscreteScheduler.from_config(reference_sd.base_scheduler_config)
    ref = reference_sd("a cat", num_inference_steps=3, generator=torch.Generator().manual_seed(5), output_type="np").images
    assert np.abs(ours - ref).max() <= 1e-3


def test_cli_generate_writes_png_with_parameters(sd_folders, tmp_path, capsys):
    out = tmp_path / "cat.png"
    rc = main(["generate", "a cat", "--model", str(sd_folders("edge-onnx")), "--steps", "3", "--seed", "7",
               "--scheduler", "EulerDiscreteScheduler", "--guidance", "5", "--images", "2", "--out", str(out),
               "--quiet"])
    assert rc == 0
    image = Image.open(out)
    assert image.size == (64, 32)  # a 2x1 grid of 32x32 images
    text = image.text["parameters"]
    assert text.startswith("a cat\n")
    # the A1111 name of the class's method, the schedule type of the folder's spacing (leading from 1: A1111's
    # "DDIM" type); the grid carries the first image's parameters, each image its own seed (seed + i)
    assert "Steps: 3, Sampler: Euler, Schedule type: DDIM, CFG scale: 5, Seed: 7, Size: 32x32, Model hash: " in text
    assert "Seed: 8," in Image.open(tmp_path / "cat-8.png").text["parameters"]


def test_cli_generate_matches_the_python_api(sd_folders, tmp_path):
    from edge_sched import DiffusionPipeline

    out = tmp_path / "one.png"
    assert main(["generate", "a dog", "--model", str(sd_folders("edge-onnx")), "--steps", "2", "--seed", "3",
                 "--out", str(out), "--quiet"]) == 0
    pipe = DiffusionPipeline.from_pretrained(sd_folders("edge-onnx"))
    pipe.set_progress_bar_config(disable=True)
    expected = pipe("a dog", num_inference_steps=2, generator=3).images[0]
    np.testing.assert_array_equal(np.asarray(Image.open(out).convert("RGB")), np.asarray(expected))


@pytest.mark.parametrize("argv, message", [
    (["generate", "x", "--model", "/nonexistent/folder"], "no such folder"),
    (["generate", "x", "--steps", "0"], "--steps must be at least 1"),
    (["generate", "x", "--size", "30x30"], "multiple of 8"),
    (["generate", "x", "--scheduler", "EulerDiscrete"], "Did you mean 'EulerDiscreteScheduler'"),
    (["generate", "x", "--backend", "openvino", "--device", "NPU"], "not available"),
    (["generate", "--steps", "1"], "needs a PROMPT"),
])
def test_cli_errors_are_one_line_and_nonzero(sd_folders, tmp_path, capsys, argv, message):
    if "--model" not in argv:
        argv = argv + ["--model", str(sd_folders("edge-onnx"))]
    capsys.readouterr()  # building the folder (first use in a session) prints on its own
    rc = main(argv + ["--out", str(tmp_path / "x.png"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0
    assert len(err) == 1 and err[0].startswith("edge-sched: error:") and message in err[0], err
    assert not (tmp_path / "x.png").exists()


def test_cli_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="no such folder"):
        main(["generate", "x", "--model", str(tmp_path / "missing"), "--debug"])


def test_cli_info_lists_graphs_and_devices(sd_folders, capsys):
    assert main(["info", str(sd_folders("edge-openvino"))]) == 0
    out = capsys.readouterr().out
    assert "pipeline: StableDiffusionPipeline" in out
    assert "in  encoder_hidden_states: float32" in out
    assert "openvino devices: CPU" in out and "onnxruntime providers:" in out


def test_hub_repo_id_through_the_huggingface_cache(sd_folders, tmp_path, monkeypatch):
    """A Hub repo id resolves through huggingface_hub's cache (offline here: nothing can be downloaded)."""
    from edge_sched import DiffusionPipeline
    from tests.export.conftest import populate_hf_cache

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    populate_hf_cache(cache, sd_folders("edge-onnx"), repo_id="tiny-org/tiny-sd-onnx")
    from_hub = DiffusionPipeline.from_pretrained("tiny-org/tiny-sd-onnx", hub_cache_dir=cache)
    local = DiffusionPipeline.from_pretrained(sd_folders("edge-onnx"))
    for p in (from_hub, local):
        p.set_progress_bar_config(disable=True)
    assert "snapshots" in str(from_hub.folder)
    np.testing.assert_array_equal(from_hub("a cat", num_inference_steps=2, generator=1, output_type="np").images,
                                  local("a cat", num_inference_steps=2, generator=1, output_type="np").images)
    with pytest.raises(Exception, match="tiny-org/not-there"):
        DiffusionPipeline.from_pretrained("tiny-org/not-there", hub_cache_dir=cache)


def test_cli_image_to_image_and_inpainting(sd_folders, tmp_path):
    init, mask = tmp_path / "init.png", tmp_path / "mask.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(init)
    m = np.zeros((32, 32), np.uint8)
    m[8:24, 8:24] = 255
    Image.fromarray(m).save(mask)
    folder = str(sd_folders("edge-onnx"))
    out = tmp_path / "i2i.png"
    assert main(["generate", "a cat", "--model", folder, "--init-image", str(init), "--strength", "0.5",
                 "--steps", "4", "--out", str(out), "--quiet"]) == 0
    assert "Denoising strength: 0.5" in Image.open(out).text["parameters"]
    out = tmp_path / "inpaint.png"
    assert main(["generate", "a cat", "--model", folder, "--init-image", str(init), "--mask", str(mask),
                 "--steps", "4", "--out", str(out), "--quiet"]) == 0
    painted = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert painted.shape == (32, 32, 3)
    bad = tmp_path / "bad.png"
    Image.fromarray(m[:16]).save(bad)  # a mask of another size: one clear error, no PNG
    assert main(["generate", "a cat", "--model", folder, "--init-image", str(init), "--mask", str(bad),
                 "--steps", "2", "--out", str(tmp_path / "x.png"), "--quiet"]) != 0


def test_adaptive_schedule_runs_in_a_pipeline(tmp_path):
    """DPM adaptive decides its steps as it goes (no length): the pipelines loop over it all the same."""
    from edge_sched import DiffusionPipeline
    from edge_sched.quality import class_accuracy
    from edge_sched.schedulers import from_a1111_name

    pipe = DiffusionPipeline.from_pretrained("digits")
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = from_a1111_name("DPM adaptive", pipe.scheduler.config)
    labels = np.arange(20) % 10
    images = pipe(class_labels=labels, generator=0, output_type="latent").images
    assert class_accuracy(np.clip(images, -1, 1), labels) >= 0.9
    out = tmp_path / "adaptive.png"
    assert main(["generate", "1 2 3", "--model", "digits", "--scheduler", "DPM adaptive", "--out", str(out)]) == 0
    assert "Sampler: DPM adaptive" in Image.open(out).text["parameters"]
