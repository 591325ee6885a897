"""benchmarks/loop_graph_speed.py's step benchmark runs (one round, a temporary output) and checks every
graph variant against the numpy step bit for bit before timing; no timing asserts."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# history-shifting multistep schedulers (LMS: a state output that is a placeholder at some calls; DPM
# singlestep: a model output handed on for several calls), a
# two-evaluation one, an ancestral one and one without scaling
LABELS = ["PNDM", "LMS", "DPM singlestep 3", "Heun", "Euler a", "DDIM"]


def test_step_benchmark_one_round(tmp_path):
    out = tmp_path / "loop_graph_speed.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "loop_graph_speed.py"), "--loop", "none",
                           "--only", *LABELS, "--steps", "6", "--rounds", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.with_suffix(".json").read_text())
    rows = results["step"]["rows"]
    assert sorted(rows) == sorted(LABELS)
    for label, row in rows.items():
        assert row["numpy_us"] > 0 and all(v > 0 for v in row["graph_us"].values()), label
        assert set(row["ratio"]) == set(row["graph_us"])
        assert "ort 1 thread, per-call graphs" in row["graph_us"] and len(row["per_call_nodes"]) == row["calls"]
        assert "ort 1 thread, per-call graphs, buffer plan" in row["graph_us"] and row["buffers"] > 0
    text = out.read_text()
    assert all(f"| {label} |" in text for label in LABELS)
    assert "| per-call graph us, 1 thread | ratio, per-call, 1 thread | buffers |" in text
    assert results["loops"] == []


def test_loop_none_carries_earlier_loop_rows_over(tmp_path):
    """A run without a loop (--loop none) keeps the loop rows of the results it replaces, labelled with the run
    that measured them (the first line of the earlier markdown, for rows written before the label existed)."""
    out = tmp_path / "loop_graph_speed.md"
    row = {"source": "benchmarks/.cache/sd15/onnx", "steps": 10, "size": [256, 256], "scheduler": "DPM++ 2M Karras",
           "images": 3, "threads": "all cores", "python_s": 13.6, "graph_s": 13.5, "ratio": [0.99, 0.98, 1.0],
           "rounds_python_s": [13.6, 13.5, 14.0], "rounds_graph_s": [13.5, 13.4, 13.9]}
    out.with_suffix(".json").write_text(json.dumps({"step": None, "loops": [row]}))
    out.write_text("Run 2026-12-03 10:06 UTC on x86_64, 2 cores (shared with other work).\n")
    for _ in range(2):  # and again: a carried row keeps its label
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "loop_graph_speed.py"), "--no-step",
                               "--loop", "none", "--out", str(out)], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = json.loads(out.with_suffix(".json").read_text())
        assert results["loops"] == [{**row, "measured": "2026-12-03 10:06 UTC on x86_64, 2 cores", "carried_over": True}]
        assert "Carried over from an earlier run: measured 2026-12-03 10:06 UTC on x86_64, 2 cores." in out.read_text()
