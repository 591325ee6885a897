"""benchmarks/soak.py runs end to end on a few generations of each model, in its torch-free child; the
memory figures are the benchmark's business (no assertion on them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_soak_script_runs_and_reports(tmp_path):
    sys.path.insert(0, str(ROOT))
    from benchmarks.soak import build_tiny_sd

    folder = build_tiny_sd(tmp_path / "tiny-sd-onnx")
    out = tmp_path / "soak.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--digits", "6", "--sd", "3",
                           "--warmup", "2", "--sd-folder", str(folder), "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    assert sorted(results) == ["digits", "tiny SD"]
    for name, count in (("digits", 6), ("tiny SD", 3)):
        r = results[name]
        assert r["generations"] == count and r["warmup"] == 2 and not r["torch_loaded"]
        assert r["end_mb"] > 0 and abs(r["growth_mb"] - (r["end_mb"] - r["after_warmup_mb"])) < 1e-9
    table = out.read_text()
    assert "| digits | 6 | 2 |" in table and "| tiny SD | 3 | 2 |" in table
    assert all(len(r["trace"]) >= 2 for r in results.values())
