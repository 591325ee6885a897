"""SD 2.x style (v-prediction) pipeline to OpenVINO, shipping a different scheduler with an override."""

from __future__ import annotations

import json

import numpy as np

import export

from .conftest import COMPONENTS


def test_v_prediction_export(exported_v):
    m = exported_v.manifest
    assert m["prediction_type"] == "v_prediction"
    assert m["scheduler"]["class"] == "EulerDiscreteScheduler"
    for c in COMPONENTS:
        assert m["validation"][c]["max_rel"] <= 1e-3, (c, m["validation"][c])
    assert export.verify_manifest(exported_v.folder) == []


def test_v_prediction_scheduler_config(exported_v):
    import diffusers

    folder = exported_v.folder / "scheduler"
    config = json.loads((folder / "scheduler_config.json").read_text())
    assert config["_class_name"] == "EulerDiscreteScheduler"
    assert config["prediction_type"] == "v_prediction"  # carried over from the source's DDIM config
    assert config["timestep_spacing"] == "trailing"  # the override
    index = json.loads((exported_v.folder / "model_index.json").read_text())
    assert index["scheduler"] == ["diffusers", "EulerDiscreteScheduler"]
    theirs = diffusers.EulerDiscreteScheduler.from_pretrained(folder)
    theirs.set_timesteps(10)
    ours = export.convert_scheduler(folder)
    ours.set_timesteps(10)
    np.testing.assert_array_equal(ours.timesteps, theirs.timesteps.numpy())


def test_v_prediction_vae_keeps_optimums_runtime_hint(exported_v):
    """optimum-intel marks SD 2.x VAEs to avoid fp16 overflow; the hint must survive our export."""
    for c in ("vae_encoder", "vae_decoder"):
        assert "ACTIVATIONS_SCALE_FACTOR" in exported_v.graph(c).read_text(), c
