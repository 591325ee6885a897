"""Issue 15 item 5: nonsense is refused with a message naming the value, not run at another setting or
failed with an index error. CLI options, the Python API, scheduler configs (from arguments and from a
folder's scheduler_config.json) and set_timesteps arguments."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import edge_sched.schedulers as S
from edge_sched.schedulers import ConfigError

from .harness import api_error, cli_error

DIGITS = ["generate", "3", "--model", "digits", "--steps", "2", "--quiet"]
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("extra, message", [
    (["--size", "0x0"], "argument --size: width and height must be positive, got '0x0'"),
    (["--size", "0x64"], "width and height must be positive, got '0x64'"),
    (["--size=-8x8"], "width and height must be positive, got '-8x8'"),
    (["--size", "64"], "size must look like 512x512"),
    (["--guidance", "nan"], "argument --guidance: must be a finite number, got 'nan'"),
    (["--guidance", "inf"], "must be a finite number, got 'inf'"),
    (["--guidance=-inf"], "must be a finite number, got '-inf'"),
    (["--guidance", "lots"], "must be a number, got 'lots'"),
    (["--strength", "nan"], "argument --strength: must be a finite number"),
    (["--scheduler", ""], "argument --scheduler: is empty"),
    (["--scheduler", "   "], "argument --scheduler: is empty"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_cli_option_nonsense(tmp_path, extra, message):
    cli_error(f"generate {' '.join(extra)}", DIGITS + extra + ["--out", tmp_path / "x.png"], message,
              roots=[tmp_path], expected_rc=2)


def test_cli_export_and_set_scheduler_empty_scheduler(tmp_path):
    cli_error("export --scheduler ''", ["export", tmp_path, tmp_path / "o", "--format", "onnx", "--scheduler", ""],
              "argument --scheduler: is empty", roots=[tmp_path], expected_rc=2)
    cli_error("set-scheduler FOLDER ''", ["set-scheduler", tmp_path, ""], "argument NAME: is empty", roots=[tmp_path],
              expected_rc=2)


@pytest.fixture(scope="module")
def digits_pipe():
    from edge_sched import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained("digits")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("kwargs, message", [
    ({"guidance_scale": NAN}, "guidance_scale must be a finite number, got nan"),
    ({"guidance_scale": INF}, "guidance_scale must be a finite number, got inf"),
    ({"guidance_scale": "7"}, "guidance_scale must be a finite number, got '7'"),
])
def test_api_guidance(digits_pipe, kwargs, message):
    api_error(f"pipe(**{kwargs})", lambda: digits_pipe("3", num_inference_steps=2, generator=0, **kwargs), ValueError,
              message)


@pytest.mark.parametrize("cls, config, message", [
    (S.EulerDiscreteScheduler, dict(beta_start=0.02, beta_end=0.01), r"beta_start=0.02 is larger than beta_end=0.01"),
    (S.DDPMScheduler, dict(beta_end=1.0), r"beta_end=1.0 must be below 1"),
    (S.DDIMScheduler, dict(beta_end=1.5, beta_schedule="scaled_linear"), r"beta_end=1.5 must be below 1"),
    (S.PNDMScheduler, dict(beta_start=-0.001), "beta_start=-0.001 must not be negative"),
    (S.EulerDiscreteScheduler, dict(num_train_timesteps=0), "'num_train_timesteps' must be at least 1, got 0"),
    (S.FlowMatchEulerDiscreteScheduler, dict(num_train_timesteps=-5), "'num_train_timesteps' must be at least 1"),
    (S.DPMSolverMultistepScheduler, dict(beta_start=NAN), "'beta_start' is NaN"),
    (S.LMSDiscreteScheduler, dict(trained_betas=[0.001, NAN]), "'trained_betas' is NaN"),
    (S.DDIMScheduler, dict(trained_betas=[0.001, 1.5], num_train_timesteps=2), "holds 1.5 at index 1"),
    (S.DDIMScheduler, dict(trained_betas=[0.001, 0.002]), "trained_betas has 2 values but num_train_timesteps is 1000"),
    (S.IPNDMScheduler, dict(trained_betas=[-0.5, 0.1]), "holds -0.5 at index 0"),
    (S.EDMEulerScheduler, dict(sigma_min=80.0, sigma_max=0.002), "sigma_min=80.0 is larger than sigma_max=0.002"),
    (S.KarrasVeScheduler, dict(sigma_max=0.0), "'sigma_max' must be a finite number > 0, got 0.0"),
    (S.ScoreSdeVeScheduler, dict(sigma_min=0.0), "'sigma_min' must be a finite number > 0"),
    (S.EDMDPMSolverMultistepScheduler, dict(rho=0.0), "'rho' must be a finite number > 0"),
    (S.EDMEulerScheduler, dict(rho=1e-8), r"rho=1e-08 is too small for sigma_min=0.002: sigma_min \*\* \(1 / rho\) overflows"),
    (S.CosineDPMSolverMultistepScheduler, dict(solver_order=0), "'solver_order' must be at least 1, got 0"),
    (S.DPMSolverSinglestepScheduler, dict(num_train_timesteps=1), "hold no group of solver_order=2"),
    (S.EulerDiscreteScheduler, dict(sigma_max=INF, use_karras_sigmas=True), "'sigma_max' must be a finite number > 0"),
    (S.DDIMScheduler, dict(steps_offset=-1), "'steps_offset' must be at least 0, got -1"),
], ids=lambda v: getattr(v, "__name__", None))
def test_scheduler_config_nonsense(cls, config, message):
    api_error(f"{cls.__name__}({config})", lambda: cls(**config), ConfigError if "hold no group" not in message
              else ValueError, message)


@pytest.mark.parametrize("cls, config, kwargs, message", [
    (S.EulerDiscreteScheduler, {}, dict(sigmas=[14.6, NAN, 0.0]), "custom sigmas must be finite numbers"),
    (S.DPMSolverMultistepScheduler, {}, dict(timesteps=[999, NAN, 10]), "custom timesteps must be finite numbers"),
    (S.EulerAncestralDiscreteScheduler, dict(beta_end=0.5), dict(num_inference_steps=10),
     "give sigmas with inf at position 0"),
    (S.EDMEulerScheduler, {}, dict(sigmas=[0.0, 0.5, 2.5]), r"ramp positions in \[0, 1\]"),
    (S.DDIMScheduler, dict(steps_offset=1, timestep_spacing="leading"), dict(num_inference_steps=1000),
     "gives timestep 1000, outside the training timesteps 0..999"),
    (S.PNDMScheduler, dict(steps_offset=500, timestep_spacing="leading"), dict(num_inference_steps=10),
     "gives timestep 1400, outside the training timesteps 0..999"),
    (S.LCMScheduler, {}, dict(num_inference_steps=4, strength=1.5), "strength must be a number in \\[0, 1\\], got 1.5"),
    (S.LCMScheduler, {}, dict(timesteps=[313], strength=0.5), "strength=0.5 keeps none of the 1 custom timesteps"),
    (S.TCDScheduler, {}, dict(num_inference_steps=4, original_inference_steps=50, strength=-1),
     "strength must be a number"),
    (S.DDPMScheduler, {}, dict(num_inference_steps=0), "num_inference_steps must be at least 1, got 0"),
    (S.DDPMScheduler, {}, dict(num_inference_steps=2.5), "num_inference_steps must be an int, got 2.5"),
], ids=lambda v: getattr(v, "__name__", None))
def test_set_timesteps_nonsense(cls, config, kwargs, message):
    scheduler = cls(**config)
    api_error(f"{cls.__name__}({config}).set_timesteps({kwargs})", lambda: scheduler.set_timesteps(**kwargs),
              (ValueError, TypeError), message)


def test_unsupported_prediction_type_is_a_value_error_too():
    """diffusers raises NotImplementedError for these; ours is both that and a ValueError (the config's fault)."""
    scheduler = S.EulerAncestralDiscreteScheduler(prediction_type="sample")
    scheduler.set_timesteps(2)
    x = np.zeros((1, 1, 2, 2), np.float32)
    error = api_error("EulerAncestral prediction_type='sample' step",
                      lambda: scheduler.step(x, scheduler.timesteps[0], x, generator=0), ValueError,
                      "prediction_type 'sample' is not implemented")
    assert isinstance(error, NotImplementedError)


def _digits_copy(tmp_path: Path, **changes) -> Path:
    from edge_sched.pipelines.loading import BUILTIN_MODELS_DIR

    folder = Path(shutil.copytree(BUILTIN_MODELS_DIR / "digits", tmp_path / "digits", ignore=shutil.ignore_patterns("openvino")))
    path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))  # json writes NaN as NaN, which Python's json reads back
    return folder


@pytest.mark.parametrize("changes, message", [
    (dict(beta_start=0.02, beta_end=0.0001), "beta_start=0.02 is larger than beta_end=0.0001"),
    (dict(beta_start=math.nan), "'beta_start' is NaN"),
    (dict(num_train_timesteps=0), "'num_train_timesteps' must be at least 1"),
    (dict(beta_end=1.0), "beta_end=1.0 must be below 1"),
], ids=["beta_start>beta_end", "NaN", "num_train_timesteps=0", "beta_end=1"])
def test_cli_folder_with_a_nonsense_scheduler_config(tmp_path, changes, message):
    folder = _digits_copy(tmp_path, **changes)
    cli_error(f"generate on a folder whose scheduler config has {changes}",
              ["generate", "3", "--model", folder, "--steps", "2", "--quiet", "--out", tmp_path / "x.png"], message,
              roots=[tmp_path])
