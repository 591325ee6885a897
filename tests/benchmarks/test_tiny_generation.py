"""benchmarks/tiny_generation.py runs end to end (build and exports in a child, every runner in its own
process, interleaved rounds) and writes its table; the numbers are the benchmark's business."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_generation_runs_every_runner(tmp_path):
    out = tmp_path / "tiny.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tiny_generation.py"), "--repeats", "1",
                           "--rounds", "1", "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "runner" not in line]
    assert [r.split(" | ")[0].removeprefix("| ") for r in rows] == [
        "edge_sched-onnxruntime", "optimum-ort", "edge_sched-openvino", "edge_sched-openvino-default", "optimum-ov"]
    assert all(float(cell.split()[0]) > 0 for r in rows for cell in r.strip("| ").split(" | ")[1:])
