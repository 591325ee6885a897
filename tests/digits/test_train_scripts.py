"""examples/train_digits.py and examples/train_digit_classifier.py: repeatable, right layout.

The digits model itself is never trained here (that takes ~30 min); a 3-step run checks that the
script is deterministic and writes the diffusers folder the rest of the project expects.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_sched import quality

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    train_digits = _load("train_digits")
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    out = tmp_path_factory.mktemp("digits")
    try:
        for run in ("a", "b"):
            train_digits.main(["--out", str(out / run), "--steps", "3", "--batch-size", "16", "--log-every", "1"])
    finally:  # the script sets these process-wide
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return train_digits, out / "a", out / "b"


def test_training_is_repeatable(tiny_runs):
    _, a, b = tiny_runs
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert (a / weights).read_bytes() == (b / weights).read_bytes()


def test_folder_is_a_class_conditional_ddpm_pipeline(tiny_runs):
    _, a, _ = tiny_runs
    index = json.loads((a / "model_index.json").read_text())
    assert index["_class_name"] == "DDPMPipeline"
    assert index["unet"] == ["diffusers", "UNet2DModel"] and index["scheduler"] == ["diffusers", "DDPMScheduler"]
    unet = json.loads((a / "unet" / "config.json").read_text())
    assert unet["num_class_embeds"] == 11 and unet["sample_size"] == 16
    assert unet["in_channels"] == unet["out_channels"] == 1
    sched = json.loads((a / "scheduler" / "scheduler_config.json").read_text())
    assert (sched["num_train_timesteps"], sched["beta_schedule"], sched["beta_start"], sched["beta_end"],
            sched["prediction_type"]) == (1000, "linear", 1e-4, 0.02, "epsilon")
    card = (a / "README.md").read_text()
    assert "label 10 is the null class" in card and '"0".."9"' in card
    assert json.loads((a / "labels.json").read_text()) == {**{str(d): d for d in range(10)}, "null": 10}
    # small enough to ship: fp32 graphs of ~4 bytes per parameter, 5 MB for everything
    assert json.loads((a / "training.json").read_text())["parameters"] <= 1_000_000
    assert (a.stat().st_mode & 0o777) == 0o755


def test_train_digits_bad_arguments(tiny_runs, tmp_path):
    train_digits = tiny_runs[0]
    with pytest.raises(ValueError, match="--steps must be >= 1, got 0"):
        train_digits.main(["--out", str(tmp_path / "x"), "--steps", "0"])
    with pytest.raises(ValueError, match=r"--label-dropout must be in \[0, 1\), got 1.5"):
        train_digits.main(["--out", str(tmp_path / "x"), "--label-dropout", "1.5"])
    assert not (tmp_path / "x").exists()


def test_classifier_script_reproduces_the_shipped_weights(tmp_path, capsys):
    out = tmp_path / "classifier.npz"
    assert _load("train_digit_classifier").main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    with np.load(out) as new, np.load(quality.CLASSIFIER_PATH) as shipped:
        assert sorted(new.files) == sorted(shipped.files)
        np.testing.assert_array_equal(new["heldout_index"], shipped["heldout_index"])
        assert f"held-out accuracy {float(shipped['heldout_accuracy']):.4f}" in printed
        for k in ("w1", "b1", "w2", "b2", "mean", "std", "real_mu", "real_cov"):
            np.testing.assert_allclose(new[k], shipped[k], rtol=1e-3, atol=1e-4, err_msg=k)
