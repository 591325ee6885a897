"""benchmarks/flow_performance.py runs end to end on the tests' tiny SD3 (every runner in its own process:
edge_sched, optimum-intel and openvino-genai on one int8 OpenVINO folder, and the floors) and writes its
table; the numbers are the benchmark's business (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path, *extra):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "flow_performance.py"), "--model", "tiny",
                           "--height", "32", "--width", "32", "--steps", "2", "--floor-repeats", "1",
                           "--cache", str(tmp_path / "cache"), "--out", str(tmp_path), *extra],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "flow_performance.json").read_text())


def test_flow_performance_runs_every_runner(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from flow_performance import RUNNERS

    results = _run(tmp_path)["runners"]
    pipelines = [n for n in results if not n.startswith("floor")]
    assert sorted(results) == sorted(RUNNERS)
    assert {"edge_sched-ov", "optimum-ov", "genai", "genai-bf16", "edge_sched-ov-77", "floor-ov"} <= set(results)
    assert all(results[n]["steady_s"] > 0 and results[n]["peak_rss_mb"] > 0 for n in pipelines)
    floors = [n for n in results if n.startswith("floor")]
    assert all(results[n]["floor_s"] > 0 and results[n]["calls"]["transformer"] == 2 for n in floors)
    # each default-precision runner was compared with its own f32 image
    assert all("image_diff_vs_f32" in results[n]
               for n in ("edge_sched-ov-fast", "optimum-ov-bf16", "genai-bf16", "edge_sched-ov-fast-77"))
    table = (tmp_path / "flow_performance.md").read_text()
    assert "openvino-genai Text2ImagePipeline (C++)" in table and "error" not in table
    assert "77 + 77 text tokens" in table

    # --update re-runs the named runners only and keeps the other rows
    updated = _run(tmp_path, "--update", "--runners", "floor-ov-77", "--note", "second run")
    assert sorted(updated["runners"]) == sorted(RUNNERS)
    assert updated["runners"]["genai"] == results["genai"]
    assert "updated" in updated["date"] and updated["notes"] == ["second run"]
