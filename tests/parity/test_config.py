"""The scheduler_config.json machinery: immutability, unknown and missing keys, JSON and Hub errors,
atomic saves. What every scheduler's config must do against diffusers (defaults, a pipeline's
config, round trips, switching classes, compatibles) is in test_scheduler_contract.py."""

import json
import logging

import pytest

import edge_sched
from edge_sched.schedulers import ConfigError, FrozenConfig, scheduler_class

from .scheduler_contract import SD15


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
