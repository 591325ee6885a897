"""benchmarks/import_time.py runs (one round, results in a temporary folder); no timing asserts."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_time_quick(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "import_time.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "results" / "import_time.json").read_text())
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from import_time import CASES

    assert results["rounds"] == 1
    assert set(results["cases"]) == set(CASES)  # the digits torch weights are in tests/digits/model
    for case, r in results["cases"].items():
        assert "error" not in r, (case, r)
        assert r["total_s"]["median"] > 0 and r["process_s"]["median"] > 0
        assert r["import_s"]["median"] > 0
    assert results["import_costs_ms"] and all(v >= 0 for v in results["import_costs_ms"].values())
    assert results["first_scheduler_costs_ms"]["numpy"] > 0
    assert "# Import and load time" in (tmp_path / "results" / "import_time.md").read_text()
    assert not (tmp_path / "RESULTS.md").exists()  # no performance.json there: nothing else rewritten
