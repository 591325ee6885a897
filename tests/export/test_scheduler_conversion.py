"""convert_scheduler: any diffusers scheduler config -> one of ours, checked against diffusers' own from_config."""

from __future__ import annotations

import json

import numpy as np
import pytest

import export
from export.errors import SchedulerConversionError

SD15_PNDM = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}


@pytest.mark.parametrize(
    "target, overrides",
    [
        ("EulerDiscreteScheduler", {"timestep_spacing": "trailing"}),
        ("DDIMScheduler", {"prediction_type": "v_prediction"}),
        ("PNDMScheduler", {}),
    ],
)
def test_conversion_matches_diffusers_from_config(target, overrides, tmp_path):
    import diffusers

    ours = export.convert_scheduler(SD15_PNDM, target, save_to=tmp_path, **overrides)
    theirs = getattr(diffusers, target).from_config(SD15_PNDM, **overrides)
    assert type(ours).__name__ == target
    for key, value in overrides.items():
        assert ours.config[key] == value
    # validated with set_timesteps(20) already; same plan as diffusers
    assert ours.num_inference_steps == 20
    theirs.set_timesteps(20)
    np.testing.assert_array_equal(ours.timesteps, theirs.timesteps.numpy())
    # the written json is diffusers-compatible and round-trips
    written = json.loads((tmp_path / "scheduler_config.json").read_text())
    assert written["_class_name"] == target
    reloaded = getattr(diffusers, target).from_pretrained(tmp_path)
    for key in theirs.config:
        if not key.startswith("_"):
            assert reloaded.config[key] == theirs.config[key], key


def test_config_from_folder_and_default_target(tiny_sd):
    ours = export.convert_scheduler(tiny_sd)  # finds scheduler/scheduler_config.json, keeps its class
    assert type(ours).__name__ == "PNDMScheduler"
    assert ours.config.steps_offset == 1


def test_a1111_name_with_overrides_on_top():
    """The A1111 name picks class and options; key=value overrides apply on top; the result equals
    diffusers' class built from the same config with the same options."""
    import diffusers

    ours = export.convert_scheduler(SD15_PNDM, "DPM++ 2M Karras", timestep_spacing="trailing")
    assert type(ours).__name__ == "DPMSolverMultistepScheduler"
    assert ours.config.use_karras_sigmas is True and ours.config.timestep_spacing == "trailing"
    theirs = diffusers.DPMSolverMultistepScheduler.from_config(SD15_PNDM, use_karras_sigmas=True, timestep_spacing="trailing")
    ours.set_timesteps(12)
    theirs.set_timesteps(12)
    np.testing.assert_array_equal(ours.timesteps, theirs.timesteps.numpy())
    with pytest.raises(SchedulerConversionError, match="unknown override 'use_karras'.*DPMSolverMultistepScheduler"):
        export.convert_scheduler(SD15_PNDM, "DPM++ 2M Karras", use_karras=True)
    with pytest.raises(SchedulerConversionError, match="unknown scheduler 'DPM\\+\\+ 9M'.*or A1111 sampler names"):
        export.convert_scheduler(SD15_PNDM, "DPM++ 9M")


def test_unknown_override_key_is_named():
    with pytest.raises(SchedulerConversionError, match="unknown override 'use_karras'.*Did you mean 'use_karras_sigmas'"):
        export.convert_scheduler(SD15_PNDM, "EulerDiscreteScheduler", use_karras=True)


def test_bad_override_value_is_an_error():
    with pytest.raises(SchedulerConversionError, match="cannot build EulerDiscreteScheduler.*sideways"):
        export.convert_scheduler(SD15_PNDM, "EulerDiscreteScheduler", timestep_spacing="sideways")


def test_missing_class_name_and_bad_files(tmp_path):
    with pytest.raises(SchedulerConversionError, match="no `_class_name`"):
        export.convert_scheduler({"beta_start": 0.001})
    with pytest.raises(SchedulerConversionError, match="no scheduler_config.json"):
        export.convert_scheduler(tmp_path)
    bad = tmp_path / "scheduler_config.json"
    bad.write_text("{not json")
    with pytest.raises(SchedulerConversionError, match="scheduler_config.json: not valid JSON"):
        export.convert_scheduler(bad, "DDIMScheduler")


@pytest.mark.parametrize(
    "text, expected",
    [("timestep_spacing=trailing", ("timestep_spacing", "trailing")), ("steps_offset=1", ("steps_offset", 1)),
     ("use_karras_sigmas=true", ("use_karras_sigmas", True)), ("sigma_min=0.5", ("sigma_min", 0.5)),
     ("trained_betas=null", ("trained_betas", None))],
)
def test_parse_override(text, expected):
    assert export.parse_override(text) == expected


def test_parse_override_rejects_missing_equals():
    with pytest.raises(SchedulerConversionError, match="key=value"):
        export.parse_override("timestep_spacing")
