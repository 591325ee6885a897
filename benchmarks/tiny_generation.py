"""One tiny generation, edge_sched against optimum's pipelines on the same exported folder.

Builds the tiny random-weight SD pipeline of the tests, exports it with edge-sched (ONNX and
OpenVINO), then runs, each in a fresh process: edge_sched on ONNX Runtime, optimum's
ORTStableDiffusionPipeline, edge_sched on OpenVINO (f32, our default, and the device's default
precision, which is optimum's setting), optimum's OVStableDiffusionPipeline; same prompt,
seed, 10 steps, 32x32, guidance 7.5. Reports import+load time, the generation time (median of
repeats), and the process's peak RSS. Usage: python benchmarks/tiny_generation.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import platform
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
    precision = {"default": None}.get(runner.split("-")[-1], "f32")  # edge_sched-openvino-default: the device's
    pipe = DiffusionPipeline.from_pretrained(folder, backend=backend,
                                             **({"inference_precision": precision} if backend == "openvino" else {}))
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import export
    from tests.export.tiny import build_tiny_sd

    with tempfile.TemporaryDirectory() as tmp:
        src = build_tiny_sd(Path(tmp) / "src" / "tiny-sd")
        folders = {fmt: Path(tmp) / fmt for fmt in ("onnx", "openvino")}
        for fmt, out in folders.items():
            export.export_pipeline(src, out, format=fmt, progress=None)
        runners = [("edge_sched-onnxruntime", "onnx"), ("optimum-ort", "onnx"),
                   ("edge_sched-openvino", "openvino"), ("edge_sched-openvino-default", "openvino"),
                   ("optimum-ov", "openvino")]
        rows = []
        for runner, fmt in runners:
            out = subprocess.run([sys.executable, "-c", CHILD, runner, str(folders[fmt]), str(args.repeats)],
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            rows.append((runner, json.loads(out)))
    print(f"tiny SD (32x32, 10 steps, CFG), {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, median of {args.repeats}")
    print("| runner | import+load s | first image s | steady image s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for runner, r in rows:
        print(f"| {runner} | {r['load_s']:.2f} | {r['first_s']:.3f} | {r['steady_s']:.3f} | {r['peak_rss_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
