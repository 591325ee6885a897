"""Soak: many generations in one process, and how much its resident memory grows.

A device runs edge_sched unattended for days; a few KB kept per image is a leak that ends in the OOM
killer. This runs ``--digits`` generations of the built-in digits model and ``--sd`` generations of the
tiny random-weight SD pipeline of the tests (exported once into ``benchmarks/.cache/soak/``; building
it needs torch, the soak itself runs in a child process that never imports it), each through the
Python API as a device script would (new prompt, seed and scheduler each time, outputs dropped), and
reports RSS (``VmRSS``) after a warm-up and at the end, per model.

Usage: python benchmarks/soak.py [--digits 1000] [--sd 200] [--sd-folder FOLDER] [--out benchmarks/results/soak.md]
The issue's measurement (issue 15): +0.9 MB over 1,000 digits generations, +0.1 MB over 200 tiny-SD ones.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache" / "soak"
WARMUP = 20  # generations before the first reading: lazily built tables, allocator pools, caches

CHILD = r"""
import gc, json, sys, time
import numpy as np

def rss_mb():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:")) / 1024

from edge_sched import DiffusionPipeline
from edge_sched.schedulers import scheduler_from_name

SCHEDULERS = ["Euler", "Euler a", "DPM++ 2M", "DDIMScheduler", "UniPCMultistepScheduler", "Heun", "LMS", "DPM++ 2M SDE"]
model, count, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pipe = DiffusionPipeline.from_pretrained(model)
pipe.set_progress_bar_config(disable=True)
base = pipe.scheduler.config
prompts = ["3 1 4", "1 5", "9 2 6 5"] if model == "digits" else ["a cat", "a dog and a cat", "the cat"]
readings, trace, t0 = {}, [], time.perf_counter()
every = max((count - warmup) // 10, 1)
for i in range(count):
    pipe.scheduler = scheduler_from_name(SCHEDULERS[i % len(SCHEDULERS)], base)
    out = pipe(prompts[i % len(prompts)], num_inference_steps=4, generator=i, output_type="np").images
    assert np.isfinite(out).all()
    del out
    if i + 1 >= warmup and (i + 1 - warmup) % every == 0:
        gc.collect()
        trace.append((i + 1, rss_mb()))
gc.collect()
if not trace or trace[-1][0] != count:
    trace.append((count, rss_mb()))
readings["after_warmup_mb"], readings["end_mb"] = trace[0][1], trace[-1][1]
readings.update(generations=count, warmup=min(warmup, count), seconds=time.perf_counter() - t0,
                torch_loaded="torch" in sys.modules, trace=trace)
print(json.dumps(readings))
"""


def build_tiny_sd(folder: Path) -> Path:
    """The tests' tiny SD pipeline, exported to ONNX by edge-sched (a separate process: it needs torch)."""
    if (folder / "edge_sched.json").is_file():
        return folder
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; import export; "
        "from tests.export.tiny import build_tiny_sd; "
        "src = build_tiny_sd(Path(sys.argv[2]) / 'tiny-sd-src'); "
        "export.export_pipeline(src, Path(sys.argv[2]) / 'tiny-sd-onnx', format='onnx', progress=None)"
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", script, str(ROOT), str(folder.parent)], check=True, cwd=ROOT)
    return folder


def soak(model: str, count: int, warmup: int = WARMUP) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, model, str(count), str(warmup)], capture_output=True,
                          text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"soak of {model} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["growth_mb"] = result["end_mb"] - result["after_warmup_mb"]
    # the second half's trend: a leak keeps growing, allocator and arena settling does not
    half = [p for p in result["trace"] if p[0] >= (result["warmup"] + count) / 2]
    span = half[-1][0] - half[0][0] if len(half) > 1 else 0
    result["second_half_mb_per_100"] = (half[-1][1] - half[0][1]) / span * 100 if span else 0.0
    return result


def report(results: dict) -> str:
    lines = ["# Soak: RSS growth over many generations in one process", "",
             f"Python {platform.python_version()}, {platform.machine()}; 4 steps per image, the scheduler changing "
             "every image, RSS (VmRSS) read after the warm-up generations and at the end (`python benchmarks/soak.py`).",
             "", "| model | generations | warm-up | RSS after warm-up | RSS at the end | growth | "
                 "second half, per 100 | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['generations']} | {r['warmup']} | {r['after_warmup_mb']:.1f} MB | "
                     f"{r['end_mb']:.1f} MB | {r['growth_mb']:+.2f} MB | {r['second_half_mb_per_100']:+.3f} MB | "
                     f"{r['seconds']:.0f} |")
    lines += ["", "RSS every tenth of the run (generation: MB): " + "; ".join(
        f"{name}: " + ", ".join(f"{n}: {mb:.1f}" for n, mb in r["trace"]) for name, r in results.items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=1000, help="digits generations (0: none)")
    parser.add_argument("--sd", type=int, default=200, help="tiny-SD generations (0: none)")
    parser.add_argument("--sd-folder", type=Path, help="an exported tiny SD folder (default: built in benchmarks/.cache)")
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON instead of the table")
    args = parser.parse_args(argv)
    results = {}
    if args.digits:
        results["digits"] = soak("digits", args.digits, args.warmup)
    if args.sd:
        folder = args.sd_folder or build_tiny_sd(CACHE / "tiny-sd-onnx")
        results["tiny SD"] = soak(str(folder), args.sd, args.warmup)
    if any(r["torch_loaded"] for r in results.values()):
        raise RuntimeError("torch was imported in the soak process; its numbers would not be a device's")
    text = report(results)
    print(json.dumps(results, indent=2) if args.json else text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
