"""benchmarks/board_memory.py runs end to end on the tiny pipeline (fp32 and int8 OpenVINO folders, default,
low-memory and tiled modes; ONNX Runtime fp32 and int8) and reports a peak per graph; the numbers are the benchmark's business."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_board_memory_runs_every_mode(tmp_path):
    out = tmp_path / "board.md"
    modes = ["fp32", "fp32, low-memory, VAE tiling", "int8, low-memory", "int8, low-memory, VAE tiling, fast",
             "ORT fp32, low-memory, VAE tiling", "ORT int8, low-memory, VAE tiling"]
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "board_memory.py"), "--model", "tiny",
                           "--size", "64", "--steps", "1", "--cache", str(tmp_path / "cache"), "--out", str(out),
                           "--modes", *modes], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.with_suffix(".json").read_text())
    assert list(results) == modes
    for mode, r in results.items():
        assert set(r["graph_peaks"]) == {"text_encoder", "unet", "vae_decoder"}, (mode, r)
        assert 0 < r["after_imports"] <= r["peak"] and all(v <= r["peak"] for v in r["graph_peaks"].values()), r
        assert r["shape"] == [1, 64, 64, 3]
    assert "| int8, low-memory |" in out.read_text()
    # an int8 image is compared with the fp32 one of the same engine, tiling and precision when that ran
    assert len(results["ORT int8, low-memory, VAE tiling"]["image_vs_fp32"]) == 2
    assert len(results["int8, low-memory"]["image_vs_fp32"]) == 2  # against "fp32"
    assert "image_vs_fp32" not in results["int8, low-memory, VAE tiling, fast"]  # no fast fp32 mode ran
