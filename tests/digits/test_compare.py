"""``edge-sched compare`` (edge_sched/compare.py) on a small run: the files it writes, numbers that
are the pipeline's own, and clear errors. The full run's results are benchmarks/results/digits_compare.md."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edge_sched import DiffusionPipeline
from edge_sched.compare import SCHEDULERS, add_arguments, cmd_compare, compare, make_scheduler
from edge_sched.quality import class_accuracy, frechet_distance_to_real

SMALL = dict(schedulers=["DPM++ 2M", "Euler a"], steps=[1, 3], samples=20, seed=1)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    rows = compare("digits", out, backend="onnxruntime", progress=lambda message: None, **SMALL)
    return out, rows


def test_writes_table_json_plot_and_grid(small_run):
    out, rows = small_run
    assert [(r["scheduler"], r["steps"]) for r in rows] == [(s, n) for s in SMALL["schedulers"] for n in SMALL["steps"]]
    table = (out / "digits_compare.md").read_text()
    assert "| scheduler | steps | accuracy | Frechet distance | seconds |" in table
    assert table.count("\n| DPM++ 2M | ") == 2 and "20 samples" in table and "guidance 3" in table
    saved = json.loads((out / "digits_compare.json").read_text())
    assert saved["rows"] == rows and saved["setup"]["samples"] == 20
    grid = Image.open(out / "digits_compare_grid.png")
    assert grid.size[0] > 2 * 5 * 32 and grid.size[1] > 2 * 2 * 32  # 2 x 2 cells of ten 32x32 digits
    assert Image.open(out / "digits_compare_quality.png").size[0] > 300


def test_numbers_are_the_pipeline_s(small_run):
    _, rows = small_run
    pipe = DiffusionPipeline.from_pretrained("digits", backend="onnxruntime")
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_scheduler("DPM++ 2M", pipe.scheduler.config)
    labels = np.arange(20) % 10
    images = np.clip(pipe(class_labels=labels, generator=1, num_inference_steps=3, output_type="latent").images, -1, 1)
    row = next(r for r in rows if r["scheduler"] == "DPM++ 2M" and r["steps"] == 3)
    assert row["accuracy"] == class_accuracy(images, labels)
    assert row["frechet"] == pytest.approx(frechet_distance_to_real(images), rel=1e-12)


def test_every_listed_scheduler_loads_from_the_model_config():
    config = DiffusionPipeline.from_pretrained("digits", backend="onnxruntime").scheduler.config
    for label, (class_name, _) in SCHEDULERS.items():
        assert type(make_scheduler(label, config)).__name__ == class_name


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "sd15"}, "compare needs a model with a quality metric"),
    ({"schedulers": ["Euler b"]}, "unknown scheduler 'Euler b'"),
    ({"steps": [0, 2]}, "steps must be positive integers"),
    ({"samples": 5}, "samples must be at least 10"),
])
def test_bad_input(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        compare(**{"out": tmp_path / "x", **kwargs})
    assert not (tmp_path / "x").exists()


def test_command_line(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "c"), "--schedulers", "DDIM", "--steps", "2",
                              "--samples", "10", "--backend", "onnxruntime", "--no-plot"])
    assert cmd_compare(args) == 0
    assert (tmp_path / "c" / "digits_compare.md").is_file() and not (tmp_path / "c" / "digits_compare_quality.png").exists()
