"""benchmarks/report.py: RESULTS.md carries the Targets section and the side reports (from a copy of the
committed performance.json in a temporary folder; no timing asserts)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_report_has_targets_and_side_reports(tmp_path):
    (tmp_path / "results").mkdir()
    shutil.copy(ROOT / "benchmarks" / "results" / "performance.json", tmp_path / "results")
    (tmp_path / "results" / "soak.md").write_text("# Soak: a side report\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "RESULTS.md").read_text()
    targets = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
    assert "peak RSS, edge_sched, ONNX Runtime |" in targets and "weights" in targets and "+ 10%" in targets
    assert "install footprint, edge_sched[onnx]" in targets
    assert "ONNX Runtime steady image / optimum's" in targets and "per-round ratios" in targets
    # the side report, verbatim, after the suite's sections; absent ones are skipped
    assert "## Soak: a side report\n" in text and "| a | b |\n|---|---|\n| 1 | 2 |" in text
    assert text.index("## Targets") < text.index("## Soak: a side report")
    assert "flow_performance.md" not in text
