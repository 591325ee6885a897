"""`edge-sched generate --rng cpu|cuda`: the noise source, recorded A1111-style in the PNG
("RNG: CPU" for torch's CPU generator, "RNG: NV" for torch's CUDA one), on the built-in digits model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge_sched.cli import main
from edge_sched.random import TorchGenerator

ARGS = ["generate", "0 1", "--model", "digits", "--steps", "2", "--seed", "0", "--quiet"]


def generate(tmp_path, name: str, *extra: str) -> tuple[np.ndarray, str]:
    out = tmp_path / name
    assert main([*ARGS, *extra, "--out", str(out)]) == 0
    image = Image.open(out)
    return np.asarray(image.convert("RGB")), image.text["parameters"]


def test_rng_is_recorded_and_each_source_is_reproducible(tmp_path):
    cuda, cuda_text = generate(tmp_path, "cuda.png", "--rng", "cuda")
    cuda_again, _ = generate(tmp_path, "cuda2.png", "--rng", "cuda")
    cpu, cpu_text = generate(tmp_path, "cpu.png", "--rng", "cpu")
    default, default_text = generate(tmp_path, "default.png")
    assert "Seed: 0" in cuda_text and "RNG: NV" in cuda_text and "RNG: CPU" not in cuda_text
    assert "RNG: CPU" in cpu_text and "RNG: NV" not in cpu_text
    assert default_text == cpu_text  # cpu is the default
    np.testing.assert_array_equal(cuda, cuda_again)
    np.testing.assert_array_equal(default, cpu)
    assert np.abs(cuda.astype(int) - cpu.astype(int)).max() > 16, "the two noise sources gave the same image"


def test_cuda_rng_is_the_python_apis_cuda_generator(tmp_path):
    from edge_sched import DiffusionPipeline

    cli, _ = generate(tmp_path, "cuda.png", "--rng", "cuda")
    pipe = DiffusionPipeline.from_pretrained("digits")
    pipe.set_progress_bar_config(disable=True)
    images = pipe("0 1", num_inference_steps=2, generator=TorchGenerator(0, device="cuda"), output_type="pil").images
    assert len(images) == 2  # one image per class: the PNG is a 1 x 2 grid
    np.testing.assert_array_equal(cli, np.concatenate([np.asarray(im.convert("RGB")) for im in images], axis=1))


def test_unknown_rng_is_a_one_line_cli_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*ARGS, "--rng", "gpu", "--out", str(tmp_path / "x.png")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--rng: invalid choice: 'gpu'" in err and "cpu" in err and "cuda" in err
    assert not (tmp_path / "x.png").exists()
