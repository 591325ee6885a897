"""Per-step cost of ``scale_model_input`` + ``step``: edge_sched (numpy) against diffusers (torch).

One thread on both sides, float32 latents, the same schedule and model outputs, medians
over repeats of a whole denoising loop. Prints a markdown table with the ratio
diffusers/ours (higher = we are faster) and writes it to benchmarks/results/scheduler_step.md.

    python benchmarks/scheduler_step.py [--steps 20] [--repeats 15] [--quick] [--all] [--only NAME ...]
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
# the twelve schedulers of issue 2 (the speed target is stated for these); --all adds the rest
CORE = [
    "DDIMInverseScheduler", "DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler",
    "EulerAncestralDiscreteScheduler", "EulerDiscreteScheduler", "FlowMatchEulerDiscreteScheduler",
    "HeunDiscreteScheduler", "LCMScheduler", "LMSDiscreteScheduler", "PNDMScheduler",
    "UniPCMultistepScheduler",
]


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
    sides = []
    for sched, to_lib, make_gen in (
        (ref, torch.from_numpy, lambda: torch.Generator("cpu").manual_seed(0)),
        (ours, lambda a: a, lambda: TorchGenerator(0)),
    ):
        sched.set_timesteps(steps)
        n = len(sched.timesteps)
        outputs = [to_lib(rng.standard_normal(shape).astype(np.float32) * 0.5) for _ in range(min(n, 4))]
        sides.append((sched, to_lib, make_gen, [outputs[i % len(outputs)] for i in range(n)]))
    times = ([], [])
    # the two sides alternate, so a load change on the shared machine hits both alike
    for _ in range(repeats + 1):  # the first loop warms caches and is dropped
        for side, (sched, to_lib, make_gen, outputs) in enumerate(sides):
            sched.set_timesteps(steps)
            times[side].append(loop_time(sched, list(sched.timesteps), outputs, sample, make_gen, to_lib))
    return statistics.median(times[0][1:]), statistics.median(times[1][1:])


def load_average() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="first shape only, 3 repeats")
    parser.add_argument("--only", nargs="*", help="scheduler names")
    parser.add_argument("--all", action="store_true", help="every scheduler diffusers also has, not only the twelve")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    shapes = SHAPES[:1] if args.quick else SHAPES
    repeats = 3 if args.quick else args.repeats
    names = args.only or (sorted(n for n in SCHEDULER_CLASSES if hasattr(diffusers, n)) if args.all else CORE)
    lines = [
        f"Per step (scale_model_input + step), {args.steps}-step loop, float32, 1 thread, "
        f"median of {repeats} loops (the two sides alternate). numpy {np.__version__}, torch {torch.__version__}, "
        f"diffusers {diffusers.__version__}. Load average at start: {load_average()}.",
        "",
        "| scheduler | shape | diffusers (us) | edge_sched (us) | speed-up |",
        "|---|---|---|---|---|",
    ]
    ratios = {s: [] for s in shapes}
    for name in names:
        for shape in shapes:
            try:
                ref_t, our_t = measure(name, shape, args.steps, repeats)
            except Exception as exc:  # e.g. a diffusers scheduler that needs step arguments we do not pass
                if not args.all:
                    raise
                lines.append(f"| {name} | {'x'.join(map(str, shape))} | not measured: {type(exc).__name__} | | |")
                print(lines[-1], flush=True)
                continue
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
    lines.append(f"Load average at end: {load_average()}.")
    text = "\n".join(lines)
    print("\n" + text)
    if args.only or args.quick:  # partial runs do not replace the recorded table
        return 0
    out = Path(__file__).parent / "results" / "scheduler_step.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
