"""Per-step cost of ``scale_model_input`` + ``step``: edge_sched (numpy) against diffusers (torch).

One thread on both sides, float32 latents, the same schedule and model outputs, medians
over repeats of a whole denoising loop. Prints a markdown table with the ratio
diffusers/ours (higher = we are faster) and writes it to benchmarks/results/scheduler_step.md.

    python benchmarks/scheduler_step.py [--steps 20] [--repeats 7] [--quick]
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import diffusers  # noqa: E402
from edge_sched.random import TorchGenerator  # noqa: E402
from edge_sched.schedulers import SCHEDULER_CLASSES  # noqa: E402

SD = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
SHAPES = [(1, 4, 64, 64), (2, 4, 128, 128)]


def loop_time(sched, timesteps, outputs, sample, make_gen, to_lib) -> float:
    """Seconds per step for one whole loop (scale_model_input + step only)."""
    x = to_lib(sample)
    kwargs = {"generator": make_gen()} if "generator" in inspect.signature(sched.step).parameters else {}
    scale = getattr(sched, "scale_model_input", None)  # flow-matching schedulers have none
    start = time.perf_counter()
    for t, out in zip(timesteps, outputs):
        if scale is not None:
            scale(x, t)
        x = sched.step(out, t, x, **kwargs).prev_sample
    return (time.perf_counter() - start) / len(timesteps)


def measure(name: str, shape, steps: int, repeats: int) -> tuple[float, float]:
    ref = getattr(diffusers, name).from_config(SD)
    ours = SCHEDULER_CLASSES[name].from_config(SD)
    rng = np.random.default_rng(0)
    sample = rng.standard_normal(shape).astype(np.float32)
    results = {}
    for label, sched, to_lib, make_gen in (
        ("diffusers", ref, torch.from_numpy, lambda: torch.Generator("cpu").manual_seed(0)),
        ("ours", ours, lambda a: a, lambda: TorchGenerator(0)),
    ):
        sched.set_timesteps(steps)
        n = len(sched.timesteps)
        outputs = [to_lib(rng.standard_normal(shape).astype(np.float32) * 0.5) for _ in range(min(n, 4))]
        outputs = [outputs[i % len(outputs)] for i in range(n)]
        times = []
        for _ in range(repeats):
            sched.set_timesteps(steps)
            times.append(loop_time(sched, list(sched.timesteps), outputs, sample, make_gen, to_lib))
        results[label] = statistics.median(times)
    return results["diffusers"], results["ours"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="first shape only, 3 repeats")
    parser.add_argument("--only", nargs="*", help="scheduler names")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    shapes = SHAPES[:1] if args.quick else SHAPES
    repeats = 3 if args.quick else args.repeats
    names = args.only or sorted(n for n in SCHEDULER_CLASSES if hasattr(diffusers, n))
    lines = [
        f"Per step (scale_model_input + step), {args.steps}-step loop, float32, 1 thread, "
        f"median of {repeats} loops. numpy {np.__version__}, torch {torch.__version__}, "
        f"diffusers {diffusers.__version__}.",
        "",
        "| scheduler | shape | diffusers (us) | edge_sched (us) | speed-up |",
        "|---|---|---|---|---|",
    ]
    ratios = {s: [] for s in shapes}
    for name in names:
        for shape in shapes:
            ref_t, our_t = measure(name, shape, args.steps, repeats)
            ratios[shape].append(ref_t / our_t)
            row = f"| {name} | {'x'.join(map(str, shape))} | {ref_t * 1e6:.0f} | {our_t * 1e6:.0f} | {ref_t / our_t:.1f}x |"
            lines.append(row)
            print(row, flush=True)
    lines.append("")
    for shape, rs in ratios.items():
        if rs:
            lines.append(
                f"{'x'.join(map(str, shape))}: median speed-up {statistics.median(rs):.1f}x, "
                f"slowest {min(rs):.1f}x over {len(rs)} schedulers."
            )
    text = "\n".join(lines)
    print("\n" + text)
    out = Path(__file__).parent / "results" / "scheduler_step.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
