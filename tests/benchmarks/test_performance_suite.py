"""The performance suite (benchmarks/performance.py) runs end to end: every runner (ours, optimum's,
openvino-genai's) and every floor, on the tiny test pipeline at a small size, and writes its report.
The numbers themselves are the suite's business, not a test's (no timed assertions here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_suite_runs_every_runner_and_writes_the_report(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "performance.py"), "--model", "tiny", "--height", "32",
         "--width", "32", "--steps", "2", "--repeats", "1", "--floor-repeats", "1", "--no-footprint",
         "--cache", str(tmp_path / "cache"), "--out", str(out)],
        capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results" / "performance.json").read_text())
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from performance import FLOORS, RUNNERS

    assert set(results["runners"]) == set(RUNNERS) and set(results["floors"]) == set(FLOORS)
    for name, r in results["runners"].items():
        assert "error" not in r, (name, r)
        assert 0 < r["load_s"] and 0 < r["steady_s"] and 0 < r["peak_rss_mb"], (name, r)
        assert r["cold_start_s"] == r["load_s"] + r["first_s"]
        memory = r["memory_mb"]
        assert 0 < memory["after_imports"] <= memory["after_load"] <= r["peak_rss_mb"], (name, memory)
        if name.startswith("edge_sched"):  # the graphs' own time is part of the image's
            assert 0 < r["graphs_s"] <= r["steady_s"] + 1e-6, (name, r)
            # every graph of the profiled image has its high-water mark
            assert set(memory["peak_in_graph"]) == {"text_encoder", "unet", "vae_decoder"}, (name, memory)
            assert all(v >= memory["after_imports"] for v in memory["peak_in_graph"].values()), (name, memory)
    for name, f in results["floors"].items():
        assert f["calls"] == {"text_encoder": 2, "unet": 2, "vae_decoder": 1}
        expected = sum(f["graphs_s"][g] * n for g, n in f["calls"].items())
        assert abs(f["floor_s"] - expected) < 1e-9
    # the guidance-interval runner against full guidance, and the default-precision runners against f32
    assert results["runners"]["edge_sched-ov-dynamic-gi"]["image_diff_vs_full_guidance"]["peer"] == "edge_sched-ov-dynamic"
    assert all("image_diff_vs_f32" in results["runners"][n] for n in ("edge_sched-ov-fast", "genai-bf16"))
    report = (out / "RESULTS.md").read_text()
    assert "## Targets" in report and "## Memory profile" in report and "failed" not in report
    assert "## Guidance interval on the suite" in report and "## Device default precision against f32" in report
    assert (out / "results" / "performance.png").stat().st_size > 1000


def test_rounds_combine_into_medians():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from performance import combine_rounds

    runs = [{"load_s": v, "steady_s": v * 10, "steady_all_s": [v], "memory_mb": {"after_load": v}} for v in (3.0, 1.0, 2.0)]
    merged = combine_rounds(runs)
    assert merged["load_s"] == 2.0 and merged["steady_s"] == 20.0 and merged["rounds"] == 3
    assert merged["rounds_steady_s"] == [30.0, 10.0, 20.0]
    assert merged["memory_mb"] == {"after_load": 3.0}  # the first round's profile, not a mix
    floors = [{"graphs_s": {"unet": u, "vae_decoder": 1.0}, "calls": {"unet": 2, "vae_decoder": 1}, "floor_s": 2 * u + 1}
              for u in (0.5, 0.7, 0.6)]
    merged = combine_rounds(floors)
    assert merged["graphs_s"] == {"unet": 0.6, "vae_decoder": 1.0} and abs(merged["floor_s"] - 2.2) < 1e-12
    failed = {"error": "exit 1: boom"}
    assert combine_rounds([runs[0], failed]) == failed  # a failed round is not hidden by a median
