"""`edge-sched generate` with A1111 / ComfyUI conventions (issue 16 item 5), on the built-in digits model:
sampler and schedule type apart, the PNG parameters in A1111 1.10's format field by field, --seed -1,
--images N (seed + i, one file each, a grid), files never overwritten, --set, TQDM_DISABLE, and the errors."""

from __future__ import annotations

import hashlib
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from edge_sched import DiffusionPipeline
from edge_sched.cli import main
from edge_sched.pipelines.loading import BUILTIN_MODELS_DIR
from edge_sched.schedulers import SamplerNotAvailableError, UnknownSchedulerError, resolve_sampler

DIGITS = ["generate", "3", "--model", "digits", "--steps", "3", "--quiet"]
UNET_HASH = hashlib.sha256((BUILTIN_MODELS_DIR / "digits" / "unet" / "model.onnx").read_bytes()).hexdigest()[:10]
# A1111's own reader (modules/infotext_utils.py, parse_generation_parameters): "key: value" pairs, a value
# either up to the next comma or a JSON-quoted string
A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


@pytest.fixture(autouse=True)
def _hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the model-hash cache stays in the test


def run(tmp_path, *extra, out="x.png"):
    assert main([*DIGITS, *extra, "--out", str(tmp_path / out)]) == 0


def fields(path) -> list[tuple[str, str]]:
    text = Image.open(path).text["parameters"]
    return A1111_PARAM.findall(text.splitlines()[-1])


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# ---- names ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, schedule, cls, options, sampler, label", [
    ("DPM++ 2M", "karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, "DPM++ 2M", "Karras"),
    ("dpm++ 2m karras", None, "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, "DPM++ 2M", "Karras"),
    ("dpmpp_2m", "Karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, "DPM++ 2M", "Karras"),
    ("DPM++ 2M", "automatic", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, "DPM++ 2M", "Karras"),
    ("DPM++ 2M", None, "DPMSolverMultistepScheduler", {}, "DPM++ 2M", None),  # diffusers' table: no Karras
    ("DPM++ 2M SDE", "automatic", "DPMSolverMultistepScheduler",
     {"algorithm_type": "sde-dpmsolver++", "use_exponential_sigmas": True}, "DPM++ 2M SDE", "Exponential"),
    ("DPM++ 2M SDE Heun Exponential", None, "DPMSolverMultistepScheduler",
     {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun", "use_exponential_sigmas": True},
     "DPM++ 2M SDE Heun", "Exponential"),
    ("euler_ancestral", "sgm_uniform", "EulerAncestralDiscreteScheduler", {"timestep_spacing": "trailing"}, "Euler a",
     "SGM Uniform"),
    ("Euler", "simple", "EulerDiscreteScheduler", {"timestep_spacing": "trailing"}, "Euler", "Simple"),
    ("Euler", "normal", "EulerDiscreteScheduler", {"timestep_spacing": "linspace"}, "Euler", "Normal"),
    ("LMS", "beta", "LMSDiscreteScheduler", {"use_beta_sigmas": True, "use_karras_sigmas": False}, "LMS", "Beta"),
    ("DDIM", "ddim_uniform", "DDIMScheduler", {"timestep_spacing": "leading", "steps_offset": 1}, "DDIM", "DDIM"),
    ("PLMS", None, "PNDMScheduler", {"skip_prk_steps": True}, "PLMS", None),
    ("UniPC", None, "UniPCMultistepScheduler", {"solver_order": 3, "solver_type": "bh1"}, "UniPC", None),
    ("lcm", None, "LCMScheduler", {}, "LCM", None),
    ("dpm_2_ancestral", None, "KDPM2AncestralDiscreteScheduler", {}, "DPM2 a", None),
    ("EulerDiscreteScheduler", "karras", "EulerDiscreteScheduler", {"use_karras_sigmas": True}, None, "Karras"),
])
def test_sampler_and_schedule_type(name, schedule, cls, options, sampler, label):
    choice = resolve_sampler(name, schedule)
    assert choice.cls.__name__ == cls and choice.sampler == sampler and choice.schedule == label
    assert {k: choice.options[k] for k in options} == options


@pytest.mark.parametrize("schedule, diffusers_options", [
    ("karras", {"use_karras_sigmas": True}), ("exponential", {"use_exponential_sigmas": True}),
    ("beta", {"use_beta_sigmas": True}), ("sgm_uniform", {"timestep_spacing": "trailing"}),
    ("normal", {"timestep_spacing": "linspace"}),
])
def test_schedule_types_are_diffusers_documented_options(schedule, diffusers_options):
    """The plan a schedule type gives is the one diffusers gives with the option its docs map it to."""
    diffusers = pytest.importorskip("diffusers")
    config = DiffusionPipeline.from_pretrained("digits").scheduler.config
    choice = resolve_sampler("DPM++ 2M", schedule)
    ours = choice.cls.from_config(config, **choice.options)
    ref = diffusers.DPMSolverMultistepScheduler.from_config(dict(config), **diffusers_options)
    ours.set_timesteps(12)
    ref.set_timesteps(12)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    np.testing.assert_allclose(ours.sigmas, ref.sigmas.numpy(), rtol=1e-6)


def test_names_refused_clearly():
    for name in ("DPM++ 3M SDE", "Restart", "dpmpp_3m_sde_gpu", "DPM++ 3M SDE Karras", "ddpm"):
        with pytest.raises(SamplerNotAvailableError, match="is not available here"):
            resolve_sampler(name)
    with pytest.raises(UnknownSchedulerError, match="Did you mean 'dpmpp_2m'"):
        resolve_sampler("dpmpp_2n")
    with pytest.raises(ValueError, match="'DDIM' cannot take that schedule type .*takes: Uniform"):
        resolve_sampler("DDIM", "karras")
    with pytest.raises(ValueError, match="names the schedule type Karras"):
        resolve_sampler("DPM++ 2M Karras", "exponential")
    with pytest.raises(ValueError, match="'kl_optimal' \\(KL Optimal\\) is not available"):
        resolve_sampler("Euler", "kl_optimal")
    with pytest.raises(ValueError, match="unknown schedule type 'zigzag'"):
        resolve_sampler("Euler", "zigzag")


# ---- the PNG's parameters, field by field -----------------------------------------------------------------

def test_parameters_in_a1111_format(tmp_path):
    run(tmp_path, "--scheduler", "DPM++ 2M", "--schedule", "karras", "--seed", "11")
    assert Image.open(tmp_path / "x.png").text["parameters"].splitlines()[0] == "3"
    assert fields(tmp_path / "x.png") == [
        ("Steps", "3"), ("Sampler", "DPM++ 2M"), ("Schedule type", "Karras"), ("CFG scale", "3"), ("Seed", "11"),
        ("Size", "16x16"), ("Model hash", UNET_HASH), ("Model", "digits"), ("RNG", "CPU")]
    # the same run by a legacy combined name, a ComfyUI name and a class name with --set: the same record
    for extra in (["--scheduler", "DPM++ 2M Karras"], ["--scheduler", "dpmpp_2m", "--schedule", "KARRAS"],
                  ["--scheduler", "DPMSolverMultistepScheduler", "--set", "use_karras_sigmas=true"]):
        run(tmp_path, *extra, "--seed", "11", out="y.png")
        assert fields(tmp_path / "y.png") == fields(tmp_path / "x.png"), extra
        np.testing.assert_array_equal(pixels(tmp_path / "y.png"), pixels(tmp_path / "x.png"))


def test_parameters_name_the_model_and_what_ran(tmp_path):
    folder = tmp_path / "my-digits"
    shutil.copytree(BUILTIN_MODELS_DIR / "digits", folder)
    assert main([*DIGITS, "--model", str(folder) + "/", "--scheduler", "LMS", "--schedule", "beta",
                 "--rng", "cuda", "--out", str(tmp_path / "x.png")]) == 0
    got = dict(fields(tmp_path / "x.png"))
    assert got["Model"] == "my-digits" and str(tmp_path) not in Image.open(tmp_path / "x.png").text["parameters"]
    assert got["Model hash"] == UNET_HASH and got["RNG"] == "NV"
    assert [k for k, _ in fields(tmp_path / "x.png")][-3:] == ["RNG", "Beta schedule alpha", "Beta schedule beta"]
    assert (got["Sampler"], got["Schedule type"], got["Beta schedule alpha"]) == ("LMS", "Beta", "0.6")
    # no A1111 sampler is DPM-Solver of order 3: the class name, no schedule type
    run(tmp_path, "--scheduler", "DPM++ 2M", "--set", "solver_order=3", out="y.png")
    got = dict(fields(tmp_path / "y.png"))
    assert got["Sampler"] == "DPMSolverMultistepScheduler" and "Schedule type" not in got
    # the folder's own scheduler (DDPM): its class name
    run(tmp_path, out="z.png")
    assert dict(fields(tmp_path / "z.png"))["Sampler"] == "DDPMScheduler"


# ---- seeds and several images ----------------------------------------------------------------------------

@pytest.mark.parametrize("prompt, scheduler", [("3", "Euler a"), ("3", "DPMSolverSDEScheduler"), ("3 4", "Euler a")])
def test_images_n_are_single_runs_with_seed_plus_i(tmp_path, prompt, scheduler):
    """Batched (one image per run, one generator each), or one run per seed (a Brownian tree; two classes)."""
    args = ["generate", prompt, "--model", "digits", "--steps", "3", "--quiet", "--scheduler", scheduler]
    assert main([*args, "--seed", "5", "--images", "3", "--out", str(tmp_path / "x.png")]) == 0
    for i in range(3):
        assert main([*args, "--seed", str(5 + i), "--out", str(tmp_path / f"single{i}.png")]) == 0
        np.testing.assert_array_equal(pixels(tmp_path / f"x-{5 + i}.png"), pixels(tmp_path / f"single{i}.png"))
        assert dict(fields(tmp_path / f"x-{5 + i}.png"))["Seed"] == str(5 + i)
    assert not np.array_equal(pixels(tmp_path / "x-5.png"), pixels(tmp_path / "x-6.png"))
    grid = pixels(tmp_path / "x.png")  # the grid: every image, with the first image's parameters
    assert dict(fields(tmp_path / "x.png"))["Seed"] == "5"
    width = 16 * len(prompt.split())
    tiles = [pixels(tmp_path / f"x-{5 + i}.png") for i in range(3)]
    if width == 16:  # 3 images on a 2 x 2 grid, the last tile black
        assert grid.shape == (32, 32, 3)
        np.testing.assert_array_equal(grid[:16, :16], tiles[0])
        np.testing.assert_array_equal(grid[:16, 16:], tiles[1])
        np.testing.assert_array_equal(grid[16:, :16], tiles[2])
    else:
        assert grid.shape[0] * grid.shape[1] >= 6 * 16 * 16


def test_images_in_a_folder_and_no_grid(tmp_path):
    (tmp_path / "00004-old.png").write_bytes(b"someone's")
    assert main([*DIGITS, "--seed", "2", "--images", "2", "--out", f"{tmp_path}/"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["00004-old.png", "00005-2-3.png", "00006-3-3.png",
                                                              "grid-00005-2-3.png"]
    assert (tmp_path / "00004-old.png").read_bytes() == b"someone's"
    out = tmp_path / "sub"
    out.mkdir()
    assert main([*DIGITS, "--seed", "2", "--images", "2", "--no-grid", "--out", str(out / "x.png")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["x-2.png", "x-3.png"]


def test_existing_image_files_are_never_overwritten(tmp_path, capsys):
    (tmp_path / "x-3.png").write_bytes(b"keep me")
    assert main([*DIGITS, "--seed", "2", "--images", "2", "--out", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert "x-3.png exists; pass --overwrite" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png") == ["x-3.png"]
    assert (tmp_path / "x-3.png").read_bytes() == b"keep me"
    assert main([*DIGITS, "--seed", "2", "--images", "2", "--overwrite", "--out", str(tmp_path / "x.png")]) == 0
    assert dict(fields(tmp_path / "x-3.png"))["Seed"] == "3"


def test_random_seed_is_recorded_and_reproduces(tmp_path):
    run(tmp_path, "--seed", "-1", "--scheduler", "Euler a", out="r.png")
    seed = int(dict(fields(tmp_path / "r.png"))["Seed"])
    assert 0 <= seed < 4294967294
    run(tmp_path, "--seed", str(seed), "--scheduler", "Euler a", out="again.png")
    np.testing.assert_array_equal(pixels(tmp_path / "r.png"), pixels(tmp_path / "again.png"))


# ---- --set, TQDM_DISABLE -----------------------------------------------------------------------------------

def test_set_reaches_the_scheduler_config(tmp_path):
    from edge_sched.schedulers import from_a1111_name

    run(tmp_path, "--scheduler", "DPM++ 2M", "--set", "timestep_spacing=trailing", "--set", "lower_order_final=false",
        "--seed", "4")
    pipe = DiffusionPipeline.from_pretrained("digits")
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = from_a1111_name("DPM++ 2M", pipe.scheduler.config, timestep_spacing="trailing",
                                     lower_order_final=False)
    expected = pipe("3", num_inference_steps=3, generator=4).images[0]
    np.testing.assert_array_equal(pixels(tmp_path / "x.png"), np.asarray(expected.convert("RGB")))
    run(tmp_path, "--scheduler", "DPM++ 2M", "--seed", "4", out="plain.png")
    assert not np.array_equal(pixels(tmp_path / "x.png"), pixels(tmp_path / "plain.png"))
    # without --scheduler, on the folder's own scheduler (DDPM: trailing is not its default, leading)
    run(tmp_path, "--set", "timestep_spacing=trailing", "--seed", "4", out="own.png")
    run(tmp_path, "--seed", "4", out="own_plain.png")
    assert not np.array_equal(pixels(tmp_path / "own.png"), pixels(tmp_path / "own_plain.png"))


@pytest.mark.parametrize("env, bar", [(None, True), ("1", False), ("true", False), ("0", True)])
def test_tqdm_disable_is_honoured(tmp_path, capsys, monkeypatch, env, bar):
    if env is None:
        monkeypatch.delenv("TQDM_DISABLE", raising=False)
    else:
        monkeypatch.setenv("TQDM_DISABLE", env)
    capsys.readouterr()
    assert main(["generate", "3", "--model", "digits", "--steps", "3", "--out", str(tmp_path / "x.png")]) == 0
    err = capsys.readouterr().err
    assert ("3/3" in err) == bar, err


# ---- bad input ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--scheduler", "dpmpp_2n"], "unknown scheduler 'dpmpp_2n'. Did you mean 'dpmpp_2m'"),
    (["--scheduler", "DPM++ 3M SDE"], "sampler 'DPM++ 3M SDE' is not available here"),
    (["--scheduler", "DDIM", "--schedule", "karras"], "--schedule Karras: 'DDIM' cannot take that schedule type"),
    (["--scheduler", "DPM fast", "--schedule", "karras"], "schedule types it takes: none"),
    (["--schedule", "polyexponential"], "schedule type 'polyexponential' (Polyexponential) is not available here"),
    (["--schedule", "karras"], "DDPMScheduler has no use_karras_sigmas option"),
    (["--images", "0"], "--images must be at least 1, got 0"),
    (["--seed", "-2"], "--seed must be -1 (draw a random seed, recorded in the image) or at least 0, got -2"),
    (["--scheduler", "Euler", "--set", "use_karas_sigmas=true"],
     "--set use_karas_sigmas: EulerDiscreteScheduler has no option 'use_karas_sigmas'. Did you mean 'use_karras_sigmas'?"),
    (["--set", "novalue"], "--set 'novalue' is not of the form KEY=VALUE"),
])
def test_bad_input_is_one_clear_line(tmp_path, capsys, extra, message):
    capsys.readouterr()
    assert main([*DIGITS, *extra, "--out", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edge-sched: error:") and message in err[0], err
    assert not list(tmp_path.glob("*.png"))
