"""benchmarks/flow_performance.py runs end to end on the tests' tiny SD3 (every runner in its own process:
edge_sched, optimum-intel and openvino-genai on one int8 OpenVINO folder, and the floors) and writes its
table; the numbers are the benchmark's business (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_flow_performance_runs_every_runner(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "flow_performance.py"), "--model", "tiny",
                           "--height", "32", "--width", "32", "--steps", "2", "--floor-repeats", "1",
                           "--cache", str(tmp_path / "cache"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "flow_performance.json").read_text())["runners"]
    pipelines = [n for n in results if not n.startswith("floor")]
    assert sorted(results) == sorted(["edge_sched-ov", "optimum-ov", "genai", "edge_sched-ov-fast",
                                      "optimum-ov-bf16", "genai-bf16", "floor-ov", "floor-ov-fast"])
    assert all(results[n]["steady_s"] > 0 and results[n]["peak_rss_mb"] > 0 for n in pipelines)
    assert all(results[n]["floor_s"] > 0 and results[n]["calls"]["transformer"] == 2
               for n in ("floor-ov", "floor-ov-fast"))
    # each default-precision runner was compared with its own f32 image
    assert all("image_diff_vs_f32" in results[n] for n in ("edge_sched-ov-fast", "optimum-ov-bf16", "genai-bf16"))
    table = (tmp_path / "flow_performance.md").read_text()
    assert "openvino-genai Text2ImagePipeline (C++)" in table and "error" not in table
