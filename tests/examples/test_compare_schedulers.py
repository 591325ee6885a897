"""examples/compare_schedulers.py runs with numpy only and its samplers converge."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "compare_schedulers.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("compare_schedulers", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["DDIMScheduler", "EulerDiscreteScheduler", "LMSDiscreteScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler"])
def test_more_steps_get_closer_to_the_data_std(example, name):
    # the exact denoiser of Gaussian data: a correct sampler's output std tends to DATA_STD
    errors = [abs(float(example.sample(name, steps, seed=0).std()) - example.DATA_STD) for steps in (2, 5, 25)]
    assert errors[0] > errors[1] > errors[2], errors


def test_main_prints_a_row_per_scheduler(example, capsys):
    assert example.main(["--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "| DDIMScheduler |" in out and "| EulerDiscreteScheduler |" in out
    cells = [line.split("|")[2].strip() for line in out.splitlines()[2:]]
    assert np.isfinite([float(c) for c in cells if c != "n/a"]).all()
