"""benchmarks/tiny_flow_exports.py runs (one tiny pipeline, one format, a temporary output) and reports a time
and a size per export; no timing asserts."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_flow_export_sizes(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tiny_flow_exports.py"), "--only", "sana",
                           "--formats", "onnx", "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "tiny_flow_exports.json").read_text())["pipelines"]
    r = results["sana"]["onnx"]
    assert r["export_s"] > 0 and r["size_mb"] > 0
    assert {"transformer", "text_encoder", "vae_decoder"} <= set(r["components_mb"])
    assert "| sana | onnx |" in (tmp_path / "tiny_flow_exports.md").read_text()
