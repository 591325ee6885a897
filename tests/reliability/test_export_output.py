"""Issue 15 item 1 (and the partial folders of item 7): `edge-sched export` never deletes what it did not
make. OUTPUT may not be the source, contain it or lie inside it; --overwrite replaces only an empty folder
or an earlier export whose manifest lists every file in it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import CORRECT, assert_unchanged, cli_error, record, run_cli, tree_state


@pytest.fixture
def src(tiny_ddpm_src, tmp_path) -> Path:
    """A private copy of the tiny DDPM pipeline inside a parent folder holding an unrelated file."""
    parent = tmp_path / "work"
    parent.mkdir()
    (parent / "notes.txt").write_text("the user's notes")
    return Path(shutil.copytree(tiny_ddpm_src, parent / "src"))


def _export(src, out, *extra):
    return ["export", src, out, "--format", "onnx", *extra]


def test_output_is_the_source(src):
    cli_error("export: OUTPUT is SRC (--overwrite)", _export(src, src, "--overwrite"), "is the source .* itself",
              roots=[src.parent])


def test_output_is_a_parent_of_the_source(src):
    cli_error("export: OUTPUT is a parent of SRC (--overwrite)", _export(src, src.parent, "--overwrite"),
              "OUTPUT contains the source", roots=[src.parent])


def test_output_inside_the_source(src):
    cli_error("export: OUTPUT inside SRC", _export(src, src / "exported"), "lies inside the source folder",
              roots=[src.parent])


def test_output_a_symlink_to_the_source(src):
    link = src.parent / "alias"
    link.symlink_to(src)
    cli_error("export: OUTPUT a symlink to SRC (--overwrite)", _export(src, link, "--overwrite"),
              "OUTPUT is the source .* itself", roots=[src.parent])


def test_overwrite_refuses_a_folder_it_did_not_make(src, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8 not ours")
    cli_error("export: --overwrite on a folder without manifest", _export(src, out, "--overwrite"),
              "not a folder made by edge-sched export", roots=[tmp_path])


def test_overwrite_refuses_an_export_holding_foreign_files(src, tmp_path):
    out = tmp_path / "old-export"
    out.mkdir()
    (out / "unet").mkdir()
    (out / "unet" / "model.onnx").write_bytes(b"graph")
    (out / "edge_sched.json").write_text(json.dumps({"edge_sched_manifest": 1, "files": {"unet/model.onnx": "x"}}))
    (out / "unet" / "my-notes.txt").write_text("mine")
    cli_error("export: --overwrite on an export with a foreign file", _export(src, out, "--overwrite"),
              r"holds files the export did not make \(unet/my-notes.txt\)", roots=[tmp_path])


def test_existing_output_without_overwrite(src, tmp_path):
    out = tmp_path / "exists"
    out.mkdir()
    cli_error("export: OUTPUT exists, no --overwrite", _export(src, out), "already exists; pass .*--overwrite",
              roots=[tmp_path])


def test_output_is_a_file(src, tmp_path):
    out = tmp_path / "file"
    out.write_text("x")
    cli_error("export: OUTPUT is a file (--overwrite)", _export(src, out, "--overwrite"), "exists and is not a folder",
              roots=[tmp_path])


def test_single_file_checkpoint_inside_output(tiny_sd_src, tmp_path):
    parent = tmp_path / "models"
    parent.mkdir()
    checkpoint = parent / "model.safetensors"
    checkpoint.write_bytes(b"{}")  # never read: the refusal comes first
    cli_error("export: OUTPUT holds the single-file checkpoint", ["export", checkpoint, parent, "--format", "onnx",
                                                                   "--config", tiny_sd_src, "--overwrite"],
              "OUTPUT contains the source", roots=[tmp_path, tiny_sd_src])


def test_output_is_the_config_folder(tiny_sd_src, tmp_path):
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"{}")
    config = Path(shutil.copytree(tiny_sd_src, tmp_path / "config"))
    cli_error("export: OUTPUT is the --config folder", ["export", checkpoint, config, "--format", "onnx",
                                                        "--config", config, "--overwrite"],
              "is the source .* itself", roots=[tmp_path])


def test_output_inside_the_hub_cache_snapshot(tiny_ddpm_src, tmp_path, monkeypatch):
    from tests.export.conftest import populate_hf_cache

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    repo = populate_hf_cache(cache, tiny_ddpm_src, repo_id="tiny-org/ddpm")
    snapshot = next((repo / "snapshots").iterdir())
    cli_error("export: OUTPUT inside the Hub cache snapshot", ["export", "tiny-org/ddpm", snapshot / "out", "--format",
                                                                "onnx", "--cache-dir", cache],
              "lies inside the source folder", roots=[tmp_path])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _partial(parent: Path, name: str, pid: int | None, host: str | None = None) -> Path:
    folder = parent / name
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "model.onnx").write_bytes(b"half a graph")
    if pid is not None:
        marker = {"pid": pid, "start": None, "host": host or socket.gethostname(), "output": "x"}
        (folder / ".edge_sched_partial").write_text(json.dumps(marker))
    return folder


def test_export_then_overwrite_an_earlier_export(src, tmp_path):
    """Two real exports: a new folder (mode from the umask; stale partial folders of a dead export removed
    and reported, others kept), then --overwrite over that export."""
    parent = tmp_path / "exports"
    parent.mkdir()
    stale = _partial(parent, ".model.partial-dead1", _dead_pid())
    live = _partial(parent, ".model.partial-live1", os.getpid())
    foreign = _partial(parent, ".model.partial-nomarker", None)
    elsewhere = _partial(parent, ".model.partial-otherhost", _dead_pid(), host="another-machine")
    out = parent / "model"
    source_before = tree_state(src.parent)
    old_umask = os.umask(0o027)
    try:
        rc, stdout, err = run_cli(_export(src, out))
    finally:
        os.umask(old_umask)
    assert rc == 0, err
    assert f"removed {stale}, an unfinished export left by process" in err
    assert not stale.exists() and live.exists() and foreign.exists() and elsewhere.exists()
    assert stat.S_IMODE(out.stat().st_mode) == 0o750  # 0777 & ~umask, not mkdtemp's 0700
    assert not (out / ".edge_sched_partial").exists()
    import export

    assert export.verify_manifest(out) == []
    record("export: stale partial folders of a dead export removed", CORRECT)
    record("export: new folder gets the umask's mode", CORRECT)

    first = json.loads((out / "edge_sched.json").read_text())
    rc, stdout, err = run_cli(_export(src, out, "--overwrite"))
    assert rc == 0, err
    assert export.verify_manifest(out) == [] and json.loads((out / "edge_sched.json").read_text())["files"] == first["files"]
    assert sorted(p.name for p in parent.iterdir()) == sorted([live.name, foreign.name, elsewhere.name, "model"])
    assert_unchanged(source_before, tree_state(src.parent))
    record("export: --overwrite replaces an earlier export", CORRECT)
