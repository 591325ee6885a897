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
    text = out.read_text()
    assert all(f"| {label} |" in text for label in LABELS)
    assert results["loops"] == []
