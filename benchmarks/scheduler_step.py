"""Per-step cost of ``scale_model_input`` + ``step``: edge_sched (numpy) against diffusers (torch).

One thread on both sides, float32 latents, the same schedule and model outputs, medians
over repeats of a whole denoising loop. Prints a markdown table with the ratio
diffusers/ours (higher = we are faster) and writes it to benchmarks/results/scheduler_step.md.

edge_sched runs in a child process that never imports torch, as on a device: a process with
torch loaded allocates differently, and numpy's large temporaries can cost page faults in one
and not the other. The two processes take turns loop by loop, so a load change on the shared
machine hits both alike.

The "ceiling" column bounds what any numpy step could show: a step reads the model output and
the sample and returns a new sample, and numpy's cheapest way to do that, ``x + c * eps``, is
timed in the same run (the "update floor"). A step that draws noise also needs the Mersenne
Twister words for it (torch's bits need torch's generator; numpy's MT19937 producing the 32-bit
words is the part no numpy code can avoid), timed in the same run and counted per step.
Diffusers' time over update floor plus noise words is the largest speed-up a numpy scheduler can
reach. torch.randn against TorchGenerator.randn (the same numbers) is printed below the table.

    python benchmarks/scheduler_step.py [--steps 20] [--repeats 15] [--quick] [--all] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

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
FLOOR_CALLS = 20


def loop_inputs(shape, n: int):
    """The start sample and ``n`` model outputs (four distinct ones, cycled); both processes
    make the same arrays."""
    rng = np.random.default_rng(0)
    sample = rng.standard_normal(shape).astype(np.float32)
    distinct = [rng.standard_normal(shape).astype(np.float32) * 0.5 for _ in range(min(n, 4))]
    return sample, [distinct[i % len(distinct)] for i in range(n)]


def prepared_inputs(sched, steps: int, shape, to_lib):
    """``loop_inputs`` for this scheduler's number of timesteps, as the library's arrays."""
    sched.set_timesteps(steps)
    sample, outputs = loop_inputs(shape, len(sched.timesteps))
    return to_lib(sample), [to_lib(o) for o in outputs]


def loop_time(sched, steps: int, inputs, gen) -> float:
    """Seconds per step for one whole loop (scale_model_input + step only)."""
    sched.set_timesteps(steps)
    x, outputs = inputs
    kwargs = {"generator": gen} if "generator" in inspect.signature(sched.step).parameters else {}
    scale = getattr(sched, "scale_model_input", None)  # flow-matching schedulers have none
    start = time.perf_counter()
    for t, out in zip(list(sched.timesteps), outputs):
        if scale is not None:
            scale(x, t)
        x = sched.step(out, t, x, **kwargs).prev_sample
    return (time.perf_counter() - start) / len(outputs)


def median_per_call(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first round warms caches and is dropped
        start = time.perf_counter()
        for _ in range(FLOOR_CALLS):
            fn()
        times.append((time.perf_counter() - start) / FLOOR_CALLS)
    return statistics.median(times[1:])


# -- our side: a child process without torch ------------------------------------------------


def numpy_floors(shape, repeats: int) -> dict[str, float]:
    """numpy's cheapest update, our torch-exact noise draw, and its Mersenne Twister words alone."""
    rng = np.random.default_rng(1)
    x, eps = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    c = np.float32(0.1)
    gen = TorchGenerator(0)
    words = np.random.Generator(np.random.MT19937(0))
    n = int(np.prod(shape))
    return {
        "update": median_per_call(lambda: x + c * eps, repeats),
        "our_randn": median_per_call(lambda: gen.randn(shape), repeats),
        "mt_words": median_per_call(lambda: words.integers(0, 1 << 32, size=n, dtype=np.uint32), repeats),
    }


class CountingGenerator(TorchGenerator):
    """A TorchGenerator that counts the numbers drawn from it (a noisy step's cost has a floor too)."""

    drawn = 0

    def randn(self, shape, dtype=np.float32):
        out = super().randn(shape, dtype)
        self.drawn += out.size
        return out

    def rand(self, shape, dtype=np.float32):
        out = super().rand(shape, dtype)
        self.drawn += out.size
        return out


def serve() -> int:
    """Child mode: one JSON request per stdin line, one JSON answer per stdout line."""
    assert "torch" not in sys.modules
    loops = {}
    for line in sys.stdin:
        req = json.loads(line)
        shape = tuple(req["shape"])
        if req["op"] == "floors":
            answer = numpy_floors(shape, req["repeats"])
        else:
            key = (req["name"], shape, req["steps"])
            if key not in loops:
                sched = SCHEDULER_CLASSES[req["name"]].from_config(SD)
                loops = {key: (sched, prepared_inputs(sched, req["steps"], shape, np.asarray))}
            sched, inputs = loops[key]
            gen = CountingGenerator(0)
            seconds = loop_time(sched, req["steps"], inputs, gen)
            answer = {"seconds": seconds, "drawn_per_step": gen.drawn / len(inputs[1])}
        print(json.dumps(answer), flush=True)
    return 0


class OurSide:
    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def ask(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the edge_sched side exited (code {self.proc.wait()}) on {request}")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


# -- diffusers' side: this process --------------------------------------------------------


def measure(ours: OurSide, name: str, shape, steps: int, repeats: int) -> tuple[float, float, float]:
    """(diffusers' seconds per step, ours, the numbers our step draws per step)"""
    import diffusers
    import torch

    ref = getattr(diffusers, name).from_config(SD)
    inputs = prepared_inputs(ref, steps, shape, torch.from_numpy)
    times = ([], [])
    for _ in range(repeats + 1):  # the first loop warms caches and is dropped
        times[0].append(loop_time(ref, steps, inputs, torch.Generator("cpu").manual_seed(0)))
        answer = ours.ask(op="loop", name=name, shape=shape, steps=steps)
        times[1].append(answer["seconds"])
    return statistics.median(times[0][1:]), statistics.median(times[1][1:]), answer["drawn_per_step"]


def floors(ours: OurSide, shape, repeats: int) -> dict[str, float]:
    import torch

    gen = torch.Generator("cpu").manual_seed(0)
    found = {"torch_randn": median_per_call(lambda: torch.randn(shape, generator=gen), repeats)}
    found.update(ours.ask(op="floors", shape=shape, repeats=repeats))
    return found


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
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the edge_sched child
    args = parser.parse_args(argv)
    if args.serve:
        return serve()
    import diffusers
    import torch

    torch.set_num_threads(1)
    shapes = SHAPES[:1] if args.quick else SHAPES
    repeats = 3 if args.quick else args.repeats
    names = args.only or (sorted(n for n in SCHEDULER_CLASSES if hasattr(diffusers, n)) if args.all else CORE)
    unknown = [n for n in names if n not in SCHEDULER_CLASSES or not hasattr(diffusers, n)]
    if unknown:
        parser.error(f"not a scheduler both libraries have: {', '.join(unknown)}")
    lines = [
        f"Per step (scale_model_input + step), {args.steps}-step loop, float32, 1 thread, "
        f"median of {repeats} loops (diffusers in this process, edge_sched in a process without torch, taking "
        f"turns). numpy {np.__version__}, torch {torch.__version__}, diffusers {diffusers.__version__}. "
        f"Load average at start: {load_average()}.",
        "",
        "| scheduler | shape | diffusers (us) | edge_sched (us) | speed-up | ceiling |",
        "|---|---|---|---|---|---|",
    ]
    ratios = {s: [] for s in shapes}
    ceilings = {s: [] for s in shapes}
    ours = OurSide()
    try:
        found = {shape: floors(ours, shape, repeats) for shape in shapes}
        for name in names:
            for shape in shapes:
                label = "x".join(map(str, shape))
                try:
                    ref_t, our_t, drawn = measure(ours, name, shape, args.steps, repeats)
                except Exception as exc:  # e.g. a diffusers scheduler that needs step arguments we do not pass
                    if not args.all:
                        raise
                    lines.append(f"| {name} | {label} | not measured: {type(exc).__name__} | | | |")
                    print(lines[-1], flush=True)
                    ours.close()
                    ours = OurSide()  # the child may have died with it
                    continue
                ratios[shape].append(ref_t / our_t)
                # numpy's cheapest update, plus Mersenne Twister words for the noise the step draws
                floor = found[shape]["update"] + drawn * found[shape]["mt_words"] / math.prod(shape)
                ceilings[shape].append(ref_t / floor)
                lines.append(
                    f"| {name} | {label} | {ref_t * 1e6:.0f} | {our_t * 1e6:.0f} | "
                    f"{ref_t / our_t:.1f}x | {ceilings[shape][-1]:.1f}x |"
                )
                print(lines[-1], flush=True)
    finally:
        ours.close()
    lines.append("")
    for shape, rs in ratios.items():
        if rs:
            f = found[shape]
            lines.append(
                f"{'x'.join(map(str, shape))}: median speed-up {statistics.median(rs):.1f}x, "
                f"slowest {min(rs):.1f}x over {len(rs)} schedulers; median ceiling "
                f"{statistics.median(ceilings[shape]):.1f}x. Update floor (x + c * eps) {f['update'] * 1e6:.1f} us. "
                f"One noise draw: torch.randn {f['torch_randn'] * 1e6:.0f} us, TorchGenerator.randn "
                f"{f['our_randn'] * 1e6:.0f} us, of which numpy's Mersenne Twister words "
                f"{f['mt_words'] * 1e6:.0f} us."
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
