"""Guidance in a limited interval on the built-in digits model: UNet evaluations, seconds and quality.

    python benchmarks/guidance_interval.py [--samples 500] [--steps 16] [--scheduler "DPM++ 2M"]

Same labels (``arange(n) % 10``) and seed for every row; quality is edge_sched.quality's class accuracy
and Frechet distance to the real digits (as ``edge-sched compare``). Rows: full guidance, several
intervals (sigma in the schedule's own terms, sqrt((1 - alpha_bar) / alpha_bar) for this VP model), no
guidance. Writes benchmarks/results/guidance_interval.md and prints it. Timings are medians of --rounds
interleaved rounds (this machine's timings move by 5-10% between runs).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from edge_sched.compare import make_scheduler
from edge_sched.pipelines import DiffusionPipeline
from edge_sched.quality import class_accuracy, frechet_distance_to_real

INF = float("inf")
ROWS = {  # label -> (guidance_scale or None for the model's default, interval)
    "full guidance": (None, None),
    "interval (0.28, 5.42]": (None, (0.28, 5.42)),
    "interval (0.28, inf)": (None, (0.28, INF)),
    "interval (1, inf)": (None, (1.0, INF)),
    "interval (0, 5.42]": (None, (0.0, 5.42)),
    "no guidance": (1.0, None),
}


def unet_images(pipe, run) -> tuple[np.ndarray, int, float]:
    """Run once, counting UNet rows evaluated (images x doubled steps)."""
    rows, real = [], type(pipe).run_batched

    def counting(component, feeds_for, n, batch_input):
        if component.name == "unet":
            rows.append(n)
        return real(component, feeds_for, n, batch_input)

    pipe.run_batched = counting
    start = time.perf_counter()
    try:
        images = run()
    finally:
        del pipe.run_batched
    return images, sum(rows), time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--scheduler", default="DPM++ 2M")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "guidance_interval.md")
    args = parser.parse_args(argv)

    pipe = DiffusionPipeline.from_pretrained("digits")
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_scheduler(args.scheduler, pipe.scheduler.config)
    labels = np.arange(args.samples) % 10
    scale_default = pipe.default_guidance_scale
    results = {label: {"seconds": []} for label in ROWS}
    for _ in range(args.rounds):
        for label, (scale, interval) in ROWS.items():
            def run():
                return pipe(class_labels=labels, generator=0, num_inference_steps=args.steps, output_type="latent",
                            guidance_scale=scale_default if scale is None else scale,
                            guidance_interval=interval).images

            images, rows, seconds = unet_images(pipe, run)
            results[label]["seconds"].append(seconds)
            results[label]["rows"] = rows
            results[label]["images"] = images
    full = results["full guidance"]
    lines = [
        f"# Guidance interval on the digits model ({args.scheduler}, {args.steps} steps, {args.samples} samples, "
        f"guidance {scale_default}, median of {args.rounds} rounds)",
        "",
        "| run | UNet rows | vs full | seconds | vs full | class accuracy | Frechet distance |",
        "|---|---|---|---|---|---|---|",
    ]
    full_seconds = statistics.median(full["seconds"])
    for label, r in results.items():
        seconds = statistics.median(r["seconds"])
        images = r.pop("images")
        lines.append(f"| {label} | {r['rows']} | {r['rows'] / full['rows']:.2f}x | {seconds:.2f} | "
                     f"{seconds / full_seconds:.2f}x | {class_accuracy(images, labels):.3f} | "
                     f"{frechet_distance_to_real(images):.2f} |")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
