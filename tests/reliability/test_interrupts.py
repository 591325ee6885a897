"""Issue 15 item 7: Ctrl-C. An export stops within a few seconds with one line and status 130, leaving OUTPUT
as it was and no partial folder, also where a library swallows the KeyboardInterrupt or never returns; a
generation stops with one line. Real SIGINTs to real processes (SIGINT's default disposition restored in
the child: a shell may start background jobs with SIGINT ignored)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .harness import CLEAR_ERROR, REPO, assert_unchanged, error_line, record, tree_state

# a driver: edge-sched's main() with the export's work replaced by MODE, so that no torch is needed
DRIVER = r"""
import sys, time, types
# the real backends import torch and optimum (seconds); the work they would do is replaced below anyway
fake = types.ModuleType("export.backends")
fake.BACKENDS = {"onnx": lambda dtype: types.SimpleNamespace(name="onnx")}
sys.modules["export.backends"] = fake
import export.pipeline as P

MODE = sys.argv[1]

def fake_export_into(tmp, resolved, backend, dtype, scheduler, validate, say, *rest):
    (tmp / "unet").mkdir()
    (tmp / "unet" / "model.onnx").write_bytes(b"half a graph")
    say("[1/1] unet: exporting to onnx (fp32)")
    if MODE == "swallow":      # an exporter that catches KeyboardInterrupt once and carries on
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            pass
        say("[1/1] unet: exported")
    elif MODE == "stuck":      # one that never gives control back
        while True:
            try:
                time.sleep(0.05)
            except KeyboardInterrupt:
                pass
    return {"validation": {}, "pipeline": "x", "format": "onnx", "dtype": "fp32", "scheduler": {"class": "x"},
            "export_seconds": 0}

P._export_into = fake_export_into
from edge_sched.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _earlier_export(parent: Path) -> Path:
    out = parent / "model"
    out.mkdir(parents=True)
    (out / "unet").mkdir()
    (out / "unet" / "model.onnx").write_bytes(b"the previous export")
    (out / "edge_sched.json").write_text(json.dumps({"edge_sched_manifest": 1, "files": {"unet/model.onnx": "x"}}))
    return out


def _interrupt(argv: list, wait_for: str, *, delay: float = 0.3, timeout: float = 120,
               signum: int = signal.SIGINT) -> tuple[int, str, float]:
    """Start ``argv``, send ``signum`` once ``wait_for`` appears on stderr; (status, stderr, seconds to exit)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []
    seen = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if wait_for in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert seen.wait(timeout), "".join(lines)
        time.sleep(delay)
        sent = time.monotonic()
        proc.send_signal(signum)
        proc.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    return proc.returncode, "".join(lines), took


def _check(case: str, rc: int, err: str, took: float, parent: Path, before: dict, line_pattern: str,
           expected_rc: int = 130) -> None:
    line = error_line(rc, err, expected_rc=expected_rc)
    assert line_pattern in line, line
    assert took < 10, f"took {took:.1f} s to stop"
    assert_unchanged(before, tree_state(parent))
    assert not [p for p in parent.iterdir() if ".partial-" in p.name]
    record(case, CLEAR_ERROR)


def test_ctrl_c_during_a_real_conversion(tiny_ddpm_src, tmp_path):
    out = _earlier_export(tmp_path / "exports")
    before = tree_state(out.parent)
    rc, err, took = _interrupt([sys.executable, "-m", "edge_sched.cli", "export", tiny_ddpm_src, out, "--format",
                                "onnx", "--overwrite"], "unet: exporting")
    _check("export: Ctrl-C during the UNet's conversion", rc, err, took, out.parent, before,
           f"edge-sched export: interrupted; {out} was left as it was")


def test_sigterm_during_a_real_conversion(tiny_ddpm_src, tmp_path):
    """kill / systemctl stop / a CI timeout: the same cleanup as Ctrl-C, and the status 143 (128 + SIGTERM)."""
    out = _earlier_export(tmp_path / "exports")
    before = tree_state(out.parent)
    rc, err, took = _interrupt([sys.executable, "-m", "edge_sched.cli", "export", tiny_ddpm_src, out, "--format",
                                "onnx", "--overwrite"], "unet: exporting", signum=signal.SIGTERM)
    _check("export: SIGTERM during the UNet's conversion", rc, err, took, out.parent, before,
           f"edge-sched export: interrupted; {out} was left as it was", expected_rc=143)


@pytest.mark.parametrize("mode", ["swallow", "stuck"])
def test_sigterm_that_a_library_swallows(tiny_ddpm_src, tmp_path, mode):
    out = _earlier_export(tmp_path / "exports")
    before = tree_state(out.parent)
    rc, err, took = _interrupt([sys.executable, "-c", DRIVER, mode, "export", tiny_ddpm_src, out, "--format", "onnx",
                                "--overwrite"], "unet: exporting", signum=signal.SIGTERM)
    _check(f"export: SIGTERM that the exporter {'swallows once' if mode == 'swallow' else 'ignores for ever'}",
           rc, err, took, out.parent, before, "interrupted", expected_rc=143)


@pytest.mark.parametrize("mode", ["swallow", "stuck"])
def test_ctrl_c_that_a_library_swallows(tiny_ddpm_src, tmp_path, mode):
    out = _earlier_export(tmp_path / "exports")
    before = tree_state(out.parent)
    rc, err, took = _interrupt([sys.executable, "-c", DRIVER, mode, "export", tiny_ddpm_src, out, "--format", "onnx",
                                "--overwrite"], "unet: exporting")
    _check(f"export: Ctrl-C that the exporter {'swallows once' if mode == 'swallow' else 'ignores for ever'}",
           rc, err, took, out.parent, before, "interrupted")


def test_ctrl_c_during_generate(tmp_path):
    out = tmp_path / "x.png"
    rc, err, took = _interrupt([sys.executable, "-m", "edge_sched.cli", "generate", "0 1 2 3 4 5 6 7 8 9", "--model",
                                "digits", "--steps", "1000", "--images", "8", "--out", out], "it/s]", delay=0.5)
    line = error_line(rc, err, expected_rc=130)
    assert line == "edge-sched generate: interrupted; no image was written", line
    assert took < 10 and sorted(os.listdir(tmp_path)) == []
    record("generate: Ctrl-C during the denoising loop", CLEAR_ERROR)
