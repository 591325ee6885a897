"""The scheduler_config.json contract, against diffusers' own ConfigMixin."""

import json
import logging

import numpy as np
import pytest

import diffusers
import edge_sched
from edge_sched.schedulers import SCHEDULER_CLASSES, ConfigError, FrozenConfig, scheduler_class

#: A1111 samplers diffusers does not have; validated against k-diffusion in test_kdiffusion_only.py
KDIFFUSION_ONLY = {"DPMAdaptiveScheduler", "DPMFastScheduler", "DPMPP2SAncestralScheduler"}
NAMES = sorted(set(SCHEDULER_CLASSES) - KDIFFUSION_ONLY)


def test_every_other_scheduler_has_a_diffusers_counterpart():
    for name in NAMES:
        assert reference_class(name).__name__ == name
SD15 = {
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


#: constructor arguments without defaults (VQ-Diffusion needs its number of classes)
REQUIRED = {"VQDiffusionScheduler": {"num_vec_classes": 4097}}


def reference_class(name):
    """diffusers' class of that name (the score-SDE and Karras-VE ones live in diffusers.schedulers.deprecated)."""
    if hasattr(diffusers, name):
        return getattr(diffusers, name)
    from diffusers.schedulers import deprecated

    return getattr(deprecated, name)


def refuses_sd15(name) -> bool:
    """True when diffusers refuses the SD 1.5 config (UnCLIP: squaredcos_cap_v2 only); then ours must too."""
    try:
        reference_class(name).from_config(SD15, **REQUIRED.get(name, {}))
    except ValueError:
        with pytest.raises(ValueError):
            scheduler_class(name).from_config(SD15, **REQUIRED.get(name, {}))
        return True
    return False


def _public(config):
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _same_values(a, b):
    assert set(a) == set(b), set(a) ^ set(b)
    for k in a:
        va, vb = a[k], b[k]
        if isinstance(va, (list, tuple, np.ndarray)) or isinstance(vb, (list, tuple, np.ndarray)):
            np.testing.assert_allclose(np.asarray(va, dtype=float), np.asarray(vb, dtype=float), err_msg=k)
        else:
            assert va == vb, (k, va, vb)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_equal_diffusers(name):
    kw = REQUIRED.get(name, {})
    ours, ref = scheduler_class(name)(**kw), reference_class(name)(**kw)
    _same_values(_public(ours.config), _public(ref.config))
    if hasattr(type(ref), "order"):  # a few (UnCLIP, Wuerstchen) have none in diffusers
        assert ours.order == ref.order
    if hasattr(type(ref), "__len__"):
        try:
            expected = len(ref)
        except AttributeError:  # Wuerstchen's __len__ reads a config field it does not have
            with pytest.raises(AttributeError):
                len(ours)
        else:
            assert len(ours) == expected


@pytest.mark.parametrize("name", NAMES)
def test_from_config_of_a_pipeline_config_equals_diffusers(name):
    if refuses_sd15(name):
        return
    ours = scheduler_class(name).from_config(SD15, **REQUIRED.get(name, {}))
    ref = reference_class(name).from_config(SD15, **REQUIRED.get(name, {}))
    _same_values(_public(ours.config), _public(ref.config))
    assert ours.config._class_name == name
    assert ours.config._diffusers_version == "0.6.0"


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_ours_to_diffusers_to_ours(name, tmp_path):
    if refuses_sd15(name):
        return
    ours = scheduler_class(name).from_config(SD15, steps_offset=1, **REQUIRED.get(name, {}))
    ours.save_pretrained(tmp_path / "a")
    ref = reference_class(name).from_pretrained(tmp_path / "a")
    _same_values(_public(ref.config), _public(ours.config))
    ref.save_pretrained(tmp_path / "b")
    back = scheduler_class(name).from_pretrained(tmp_path / "b")
    _same_values(_public(back.config), _public(ours.config))


@pytest.mark.parametrize("src", NAMES)
@pytest.mark.parametrize("dst", NAMES)
def test_switching_schedulers_like_the_seeds(src, dst):
    # pipe.scheduler = Dst.from_config(pipe.scheduler.config), for every pair
    src_kw, dst_kw = REQUIRED.get(src, {}), REQUIRED.get(dst, {})
    try:
        ref = reference_class(dst).from_config(reference_class(src).from_config(SD15, **src_kw).config, **dst_kw)
    except ValueError:  # e.g. UnCLIP takes only squaredcos_cap_v2 betas: we must refuse it as well
        with pytest.raises(ValueError):
            scheduler_class(dst).from_config(scheduler_class(src).from_config(SD15, **src_kw).config, **dst_kw)
        return
    ours = scheduler_class(dst).from_config(scheduler_class(src).from_config(SD15, **src_kw).config, **dst_kw)
    _same_values(_public(ours.config), _public(ref.config))


def test_config_is_immutable_with_attribute_access():
    s = edge_sched.EulerDiscreteScheduler()
    assert isinstance(s.config, FrozenConfig)
    assert s.config.num_train_timesteps == 1000
    with pytest.raises(TypeError, match="immutable"):
        s.config["num_train_timesteps"] = 10
    with pytest.raises(TypeError, match="immutable"):
        s.config.num_train_timesteps = 10
    with pytest.raises(AttributeError):
        s.config.no_such_field


def test_unknown_keys_are_ignored_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="edge_sched"):
        s = edge_sched.EulerDiscreteScheduler.from_config({"num_train_timesteps": 500, "banana": 3})
    assert s.config.num_train_timesteps == 500
    assert "banana" in caplog.text
    assert s.config["banana"] == 3  # kept as a hidden entry, like diffusers


def test_missing_keys_take_this_class_defaults():
    s = edge_sched.EulerDiscreteScheduler.from_config({"beta_schedule": "scaled_linear"})
    assert s.config.timestep_spacing == "linspace" and s.config.beta_start == 0.0001


def test_wrong_type_in_json_names_file_and_field(tmp_path):
    (tmp_path / "scheduler_config.json").write_text(json.dumps({"num_train_timesteps": "many"}))
    with pytest.raises(ConfigError, match=r"scheduler_config\.json.*num_train_timesteps"):
        edge_sched.EulerDiscreteScheduler.from_pretrained(tmp_path)


def test_not_json_names_the_file(tmp_path):
    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler" / "scheduler_config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"scheduler_config\.json: not valid JSON"):
        edge_sched.EulerDiscreteScheduler.from_pretrained(tmp_path, subfolder="scheduler")


def test_missing_local_config_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        edge_sched.EulerDiscreteScheduler.from_pretrained(tmp_path)


def test_hub_repo_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="Hugging Face Hub"):
        edge_sched.EulerDiscreteScheduler.from_pretrained(
            "someone/not-cached-model", subfolder="scheduler", cache_dir=tmp_path, local_files_only=True
        )


def test_hub_repo_from_cache(tmp_path):
    # the real huggingface_hub code path, served from a populated cache folder
    from huggingface_hub import constants

    repo = "edge-sched/tiny"
    commit = "0" * 40
    folder = tmp_path / f"models--{repo.replace('/', '--')}"
    snap = folder / "snapshots" / commit / "scheduler"
    snap.mkdir(parents=True)
    (snap / "scheduler_config.json").write_text(json.dumps(SD15))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    s = edge_sched.EulerDiscreteScheduler.from_pretrained(
        repo, subfolder="scheduler", cache_dir=tmp_path, local_files_only=True
    )
    assert s.config.steps_offset == 1 and s.config._class_name == "EulerDiscreteScheduler"
    assert constants.HF_HUB_CACHE  # the default cache is untouched by this test


def test_compatibles_lists_what_diffusers_lists():
    ours = {c.__name__ for c in edge_sched.EulerDiscreteScheduler().compatibles}
    ref = {c.__name__ for c in diffusers.EulerDiscreteScheduler().compatibles}
    assert ours == ref & set(SCHEDULER_CLASSES)


def test_save_is_atomic_and_sorted(tmp_path):
    s = edge_sched.EulerDiscreteScheduler(use_karras_sigmas=True)
    path = s.save_pretrained(tmp_path) or tmp_path / "scheduler_config.json"
    data = json.loads(path.read_text())
    assert list(data) == sorted(data)
    assert data["use_karras_sigmas"] is True and data["_class_name"] == "EulerDiscreteScheduler"
    assert [p.name for p in tmp_path.iterdir()] == ["scheduler_config.json"]


def test_unknown_scheduler_name_suggests():
    with pytest.raises(ValueError, match="Did you mean 'EulerDiscreteScheduler'"):
        scheduler_class("EulerDiscreteSchedular")
