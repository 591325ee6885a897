"""One tiny generation, edge_sched against optimum's pipelines on the same exported folder.

Builds the tiny random-weight SD pipeline of the tests, exports it with edge-sched (ONNX and
OpenVINO), then runs, each in a fresh process: edge_sched on ONNX Runtime, optimum's
ORTStableDiffusionPipeline, edge_sched on OpenVINO (f32, our default, and the device's default
precision, which is optimum's setting), optimum's OVStableDiffusionPipeline; same prompt,
seed, 10 steps, 32x32, guidance 7.5. Reports import+load time, the generation time (median of
repeats), and the process's peak RSS.

So that order cannot decide a ratio, the parent stays idle while a runner is timed (the build and the
exports run in a child process of their own, before any runner: the parent never imports torch) and the
runners are interleaved over ``--rounds`` (each round runs every runner once, in a rotated order); each
number is the median over the rounds, with the rounds' min-max beside it.

Usage: python benchmarks/tiny_generation.py [--repeats N] [--rounds R] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, statistics, sys, time
t0 = time.perf_counter()
runner, folder, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
if runner.startswith("edge_sched"):
    from edge_sched import DiffusionPipeline
    backend = runner.split("-")[1]
    precision = "fast" if runner.endswith("-default") else "exact"  # edge_sched-openvino-default: the device's
    pipe = DiffusionPipeline.from_pretrained(folder, backend=backend, precision=precision)
    pipe.set_progress_bar_config(disable=True)
    run = lambda: pipe("a cat and a dog", num_inference_steps=10, generator=0, output_type="np").images
else:
    import torch
    if runner == "optimum-ort":
        from optimum.onnxruntime import ORTStableDiffusionPipeline as P
    else:
        from optimum.intel import OVStableDiffusionPipeline as P
    pipe = P.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    run = lambda: pipe("a cat and a dog", num_inference_steps=10, generator=torch.Generator().manual_seed(0),
                       output_type="np").images
load = time.perf_counter() - t0
times = []
for _ in range(repeats):
    t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the (torch-laden) parent
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"load_s": load, "first_s": times[0], "steady_s": statistics.median(times[1:] or times),
                  "peak_rss_mb": hwm / 1024}))
"""


BUILD = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import export
from tests.export.tiny import build_tiny_sd
tmp = Path(sys.argv[2])
src = build_tiny_sd(tmp / "src" / "tiny-sd")
for fmt in ("onnx", "openvino"):
    export.export_pipeline(src, tmp / fmt, format=fmt, progress=None)
"""
RUNNERS = [("edge_sched-onnxruntime", "onnx"), ("optimum-ort", "onnx"), ("edge_sched-openvino", "openvino"),
           ("edge_sched-openvino-default", "openvino"), ("optimum-ov", "openvino")]
FIELDS = ("load_s", "first_s", "steady_s", "peak_rss_mb")


def summary(values: list[float], digits: int) -> str:
    """The median over the rounds, with the rounds' min-max when there are several."""
    middle = f"{statistics.median(values):.{digits}f}"
    return middle if len(values) == 1 else f"{middle} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.rounds < 1:
        parser.error("--repeats and --rounds must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-c", BUILD, str(ROOT), tmp], check=True, capture_output=True, text=True)
        results: dict[str, list[dict]] = {runner: [] for runner, _ in RUNNERS}
        for round_index in range(args.rounds):
            shift = round_index % len(RUNNERS)
            for runner, fmt in RUNNERS[shift:] + RUNNERS[:shift]:
                done = subprocess.run([sys.executable, "-c", CHILD, runner, str(Path(tmp) / fmt), str(args.repeats)],
                                      capture_output=True, text=True)
                if done.returncode:
                    raise RuntimeError(f"{runner} failed:\n{done.stderr[-2000:]}")
                results[runner].append(json.loads(done.stdout.strip().splitlines()[-1]))
    lines = [f"tiny SD (32x32, 10 steps, CFG), {platform.processor() or platform.machine()}, "
             f"python {platform.python_version()}; per round the median of {args.repeats} images; "
             f"{args.rounds} interleaved round(s): median [min-max] over the rounds", "",
             "| runner | import+load s | first image s | steady image s | peak RSS MB |", "|---|---|---|---|---|"]
    for runner, rounds in results.items():
        cells = [summary([r[f] for r in rounds], d) for f, d in zip(FIELDS, (2, 3, 3, 0))]
        lines.append(f"| {runner} | {' | '.join(cells)} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
