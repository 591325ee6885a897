"""Issue 15 item 3: what --out may be. A regular file (replaced atomically; a symlink is written through to
the file it names), PNG / JPEG / WebP by suffix with the parameters inside, or a folder (DIR/) that gets a
new numbered file; never a device, FIFO or socket, never an empty name, never PNG bytes under .jpg."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from PIL import Image

from .harness import CORRECT, assert_unchanged, cli_error, record, run_cli, tree_state

DIGITS = ["generate", "3 4", "--model", "digits", "--steps", "2", "--seed", "5", "--quiet"]


def _ok(case: str, out, roots, *, expect_new: list[Path]) -> str:
    before = tree_state(*roots)
    rc, stdout, err = run_cli(DIGITS + ["--out", out])
    assert rc == 0, err
    assert err == "", err
    written = Path(stdout.strip())
    after = tree_state(*roots)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert changed == sorted(str(p) for p in expect_new), changed
    record(case, CORRECT)
    return str(written)


def _exif_parameters(path: Path) -> str:
    raw = Image.open(path).getexif().get_ifd(0x8769)[0x9286]
    assert raw.startswith(b"UNICODE\0")
    return raw[8:].decode("utf-16-be")


def test_empty_out(tmp_path, monkeypatch):
    from edge_sched.pipelines.base import DiffusionPipeline

    def never(*a, **k):
        raise AssertionError("the pipeline was loaded before --out was checked")

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", classmethod(never))
    monkeypatch.chdir(tmp_path)
    cli_error("--out '' (empty)", DIGITS + ["--out", ""], "--out is empty", roots=[tmp_path])


def test_fifo(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    cli_error("--out a FIFO", DIGITS + ["--out", fifo], "is a FIFO, not a regular file", roots=[tmp_path])
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_device(tmp_path):
    cli_error("--out /dev/null (a device)", DIGITS + ["--out", "/dev/null"], "is a character device",
              roots=[tmp_path])
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_symlink_to_a_device(tmp_path):
    link = tmp_path / "x.png"
    link.symlink_to("/dev/full")
    cli_error("--out a symlink to /dev/full", DIGITS + ["--out", link], "/dev/full is a character device",
              roots=[tmp_path])


def test_socket(tmp_path):
    path = tmp_path / "s.png"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        cli_error("--out a socket", DIGITS + ["--out", path], "is a socket", roots=[tmp_path])
    finally:
        server.close()


@pytest.mark.parametrize("name, message", [("x.gif", "suffix '.gif'"), ("x", "no suffix"), ("x.png.txt", "'.txt'")])
def test_unknown_suffix(tmp_path, name, message):
    cli_error(f"--out {name} (not an image type)", DIGITS + ["--out", tmp_path / name],
              message + "; the image types written are .png, .jpg, .jpeg, .webp", roots=[tmp_path])


def test_missing_folder(tmp_path):
    cli_error("--out in a missing folder", DIGITS + ["--out", tmp_path / "nope" / "x.png"],
              "folder .*nope' does not exist", roots=[tmp_path])
    cli_error("--out DIR/ missing", DIGITS + ["--out", f"{tmp_path}/nope/"], "folder .*nope' does not exist",
              roots=[tmp_path])


def test_folder_gets_numbered_files(tmp_path):
    (tmp_path / "00007-old.png").write_bytes(b"someone's")
    first = _ok("--out DIR/ (numbered file)", f"{tmp_path}/", [tmp_path], expect_new=[tmp_path / "00008-5-3_4.png"])
    second = _ok("--out DIR (an existing folder, no slash)", tmp_path, [tmp_path],
                 expect_new=[tmp_path / "00009-5-3_4.png"])
    assert (tmp_path / "00007-old.png").read_bytes() == b"someone's"
    assert "Seed: 5" in Image.open(first).text["parameters"] and Path(second).is_file()


@pytest.mark.parametrize("suffix, fmt", [(".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP"), (".PNG", "PNG")])
def test_formats_by_suffix(tmp_path, suffix, fmt):
    out = tmp_path / f"x{suffix}"
    _ok(f"--out x{suffix} writes {fmt}", out, [tmp_path], expect_new=[out])
    with Image.open(out) as im:
        assert im.format == fmt and im.size == (32, 16)
        text = im.text["parameters"] if fmt == "PNG" else _exif_parameters(out)
    assert text.startswith("3 4\n") and "Seed: 5" in text


def test_symlink_is_written_through(tmp_path):
    real = tmp_path / "real.png"
    real.write_bytes(b"old")
    link = tmp_path / "latest.png"
    link.symlink_to(real.name)
    _ok("--out a symlink (written through to its file)", link, [tmp_path], expect_new=[real])
    assert link.is_symlink() and Image.open(real).format == "PNG"
    dangling = tmp_path / "next.png"
    dangling.symlink_to("made-now.png")
    _ok("--out a dangling symlink (creates its file)", dangling, [tmp_path], expect_new=[tmp_path / "made-now.png"])


def test_existing_file_replaced(tmp_path):
    out = tmp_path / "x.png"
    out.write_bytes(b"old")
    _ok("--out an existing PNG (replaced)", out, [tmp_path], expect_new=[out])
    assert Image.open(out).format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]
