"""The Hub path (from a populated cache; no network here) and the `edge-sched export` command."""

from __future__ import annotations

import fnmatch
import json

import pytest

import export
from edge_sched.cli import main
from export.errors import SourceError
from export.source import hub_allow_patterns

from .conftest import HUB_COMMIT, HUB_REPO, populate_hf_cache

# a realistic SD 1.5 repo listing: the export must fetch only what it needs
SD_REPO_FILES = [
    "model_index.json", "v1-5-pruned.ckpt", "v1-5-pruned.safetensors", "README.md",
    "feature_extractor/preprocessor_config.json",
    "safety_checker/config.json", "safety_checker/model.safetensors", "safety_checker/pytorch_model.bin",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors",
    "text_encoder/pytorch_model.bin",
    "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
    "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.non_ema.bin", "unet/diffusion_pytorch_model.bin",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin",
]


def _selected(allow_pickle):
    patterns = hub_allow_patterns(allow_pickle)
    return sorted(f for f in SD_REPO_FILES if any(fnmatch.fnmatch(f, p) for p in patterns))


def test_allow_patterns_fetch_only_what_the_export_needs():
    assert _selected(False) == sorted([
        "model_index.json", "scheduler/scheduler_config.json",
        "text_encoder/config.json", "text_encoder/model.safetensors",
        "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    ])
    pickles = sorted(set(_selected(True)) - set(_selected(False)))
    assert pickles == ["text_encoder/pytorch_model.bin", "unet/diffusion_pytorch_model.bin", "vae/diffusion_pytorch_model.bin"]


def test_hub_repo_from_cache_offline_with_overwrite(tiny_sd, tmp_path, monkeypatch):
    """HF_HUB_OFFLINE: the repo id resolves in the given cache dir; the manifest records id and commit."""
    from export.source import _offline

    assert not _offline(False) or __import__("huggingface_hub").constants.HF_HUB_OFFLINE
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _offline(False)
    cache = tmp_path / "hf-cache"
    populate_hf_cache(cache, tiny_sd)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("a previous export")
    (out / "edge_sched.json").write_text('{"edge_sched_manifest": 1, "files": {"old.txt": "0"}}')
    manifest = export.export_pipeline(HUB_REPO, out, format="onnx", cache_dir=cache, validate=False,
                                      overwrite=True, progress=None)
    # replaced as a whole (overwrite), with nothing left next to it
    assert not (out / "old.txt").exists() and (out / "unet" / "model.onnx").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf-cache", "out"]
    assert manifest["source"] == {"id": HUB_REPO, "kind": "hub", "revision": HUB_COMMIT}
    assert manifest["validation"] == {}
    assert export.verify_manifest(out) == []
    assert json.loads((out / "edge_sched.json").read_text())["source"]["revision"] == HUB_COMMIT


def test_hub_repo_missing_from_cache_offline(tmp_path):
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    with pytest.raises(SourceError, match=f"not-there/repo: not a local folder, not found in the cache {cache}, and offline mode"):
        export.export_pipeline("not-there/repo", tmp_path / "out", format="onnx", cache_dir=cache,
                               local_files_only=True, progress=None)
    assert not (tmp_path / "out").exists()


def test_revision_is_for_hub_repos_only(tiny_sd, tmp_path):
    with pytest.raises(SourceError, match="--revision applies to Hub repos"):
        export.export_pipeline(tiny_sd, tmp_path / "out", format="onnx", revision="main", progress=None)


def test_cli_maps_every_option(monkeypatch, capsys, tmp_path):
    seen = {}

    def fake_export_pipeline(source, output, **kwargs):
        seen.update(source=source, output=output, **kwargs)
        return {"pipeline": "StableDiffusionPipeline", "format": kwargs["format"], "dtype": kwargs["dtype"],
                "scheduler": {"class": "EulerDiscreteScheduler"}, "export_seconds": 1.0,
                "validation": {"unet": {"max_abs": 1e-6, "max_rel": 2e-7}}}

    monkeypatch.setattr(export, "export_pipeline", fake_export_pipeline)
    rc = main(["export", "org/model", str(tmp_path / "o"), "--format", "openvino", "--dtype", "fp16",
               "--scheduler", "EulerDiscreteScheduler", "--set", "timestep_spacing=trailing", "--set", "steps_offset=1",
               "--overwrite", "--revision", "abc", "--cache-dir", "/c", "--token", "t", "--local-files-only",
               "--allow-pickle", "--static-shapes", "1x64x64", "--weight-compression", "int8", "--fuse-attention",
               "--config", "/cfg"])
    assert rc == 0
    assert seen == {
        "source": "org/model", "output": str(tmp_path / "o"), "format": "openvino", "dtype": "fp16",
        "scheduler": "EulerDiscreteScheduler", "scheduler_overrides": {"timestep_spacing": "trailing", "steps_offset": 1},
        "overwrite": True, "revision": "abc", "token": "t", "cache_dir": "/c", "local_files_only": True,
        "allow_pickle": True, "static_shapes": {"batch": 1, "height": 64, "width": 64},
        "weight_compression": "int8", "fuse_attention": True, "config": "/cfg",
    }
    out = capsys.readouterr().out
    assert "unet: max abs diff 1e-06, max rel diff 2e-07" in out


@pytest.mark.parametrize(
    "extra, message",
    [(["--scheduler", "Nope"], "unknown scheduler 'Nope'"),
     (["--set", "timestep_spacing"], "is not of the form key=value")],
)
def test_cli_errors_are_one_line_and_nonzero(tiny_sd, tmp_path, capsys, extra, message):
    rc = main(["export", str(tiny_sd), str(tmp_path / "o"), "--format", "onnx", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    errors = [line for line in err if line.startswith("edge-sched: error:")]
    assert len(errors) == 1 and message in errors[0], err
    assert not (tmp_path / "o").exists()


def test_cli_source_not_found(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing"), str(tmp_path / "o"), "--format", "onnx"]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_cli_needs_a_format(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["export", str(tmp_path), str(tmp_path / "o")])
    assert info.value.code == 2
    assert "--format" in capsys.readouterr().err


def test_cli_set_scheduler_swaps_without_reexport(exported, tmp_path, capsys):
    import json
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(exported.folder, folder)
    graph_bytes = (folder / "unet" / exported.graph("unet").name).read_bytes()
    assert main(["set-scheduler", str(folder), "DPM++ 2M Karras", "--set", "timestep_spacing=trailing"]) == 0
    config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert config["_class_name"] == "DPMSolverMultistepScheduler"
    assert config["use_karras_sigmas"] is True and config["timestep_spacing"] == "trailing"
    assert (folder / "unet" / exported.graph("unet").name).read_bytes() == graph_bytes
    assert main(["set-scheduler", str(folder), "NoSuchSampler"]) != 0
    assert "NoSuchSampler" in capsys.readouterr().err
