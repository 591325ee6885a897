"""``edge-sched compare``: schedulers compared by measured quality on the built-in digits model.

Every scheduler in :data:`SCHEDULERS` samples the same digits (``labels = arange(n) % 10``, the
same torch-compatible seed, the model's default classifier-free guidance) at each step count, with
the runtime only. Each run is scored by :mod:`edge_sched.quality`'s classifier: class accuracy
(does a "7" come out as a 7) and the Frechet distance between the classifier's hidden features of
the samples and of the 1797 real digits (lower is better; 500+ samples, since the covariance of 32
features is poorly estimated from fewer). Wall time is the whole pipeline call (all UNet calls).

Writes into the output folder:

- ``digits_compare.md``: a markdown table, one row per scheduler and step count;
- ``digits_compare.json``: the same numbers;
- ``digits_compare_quality.png``: Frechet distance and accuracy against steps, one line per
  scheduler (needs matplotlib, imported only here);
- ``digits_compare_grid.png``: the digits 0..9 (the first ten samples) per scheduler (rows) and
  step count (columns), like the seeds' comparison pictures.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from .quality import class_accuracy, frechet_distance_to_real

STEPS = (1, 2, 4, 8, 16, 32, 50)
#: label -> (scheduler class, config overrides on top of the model's DDPM config)
SCHEDULERS = {
    "DDPM": ("DDPMScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "DEIS": ("DEISMultistepScheduler", {}),
}
#: every scheduler above (benchmarks/results/digits_compare.md: about 10 minutes on a quiet 2-core
#: machine, each scheduler being 113 pipeline steps of 500 guided samples); --schedulers picks fewer
DEFAULT_SCHEDULERS = tuple(SCHEDULERS)
MODELS = ("digits",)  # models with a quality metric


def make_scheduler(label: str, config):
    from . import schedulers

    if label not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {label!r} for compare; choose from {', '.join(SCHEDULERS)}")
    class_name, extra = SCHEDULERS[label]
    return getattr(schedulers, class_name).from_config({**config, **extra})


def run_one(pipe, label: str, steps: int, labels: np.ndarray, seed: int, guidance_scale=None, config=None):
    """Images (N, 1, 16, 16) in [-1, 1] and the seconds the pipeline call took; the scheduler is made
    from ``config`` (default: the pipeline's current scheduler's)."""
    pipe.scheduler = make_scheduler(label, pipe.scheduler.config if config is None else config)
    start = time.perf_counter()
    latents = pipe(class_labels=labels, generator=seed, num_inference_steps=steps, guidance_scale=guidance_scale,
                   output_type="latent").images
    return np.clip(latents, -1, 1), time.perf_counter() - start


def compare(model: str = "digits", out: str | Path = "digits_compare", schedulers=DEFAULT_SCHEDULERS,
            steps=STEPS, samples: int = 500, seed: int = 0, guidance_scale=None, backend: str = "auto",
            plot: bool = True, progress=print) -> list[dict]:
    """Run the comparison and write the table, JSON, plot and grid into ``out``; returns the rows."""
    from .pipelines import DiffusionPipeline

    if model not in MODELS:
        raise ValueError(f"compare needs a model with a quality metric; got {model!r}, available: {', '.join(MODELS)}")
    for label in schedulers:
        if label not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {label!r} for compare; choose from {', '.join(SCHEDULERS)}")
    bad = [s for s in steps if not isinstance(s, (int, np.integer)) or s < 1]
    if bad or not steps:
        raise ValueError(f"steps must be positive integers, got {list(steps)}")
    if samples < 10:
        raise ValueError(f"samples must be at least 10 (one of each digit), got {samples}")
    if plot:
        _matplotlib()  # fail before minutes of sampling, not after
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pipe = DiffusionPipeline.from_pretrained(model, backend=backend)
    pipe.set_progress_bar_config(disable=True)
    base_config = pipe.scheduler.config
    guidance = pipe.default_guidance_scale if guidance_scale is None else guidance_scale
    labels = np.arange(samples) % 10
    rows, tiles = [], {}
    for label in schedulers:
        for n in steps:
            images, seconds = run_one(pipe, label, int(n), labels, seed, guidance, base_config)
            row = {"scheduler": label, "steps": int(n), "accuracy": class_accuracy(images, labels),
                   "frechet": frechet_distance_to_real(images), "seconds": seconds}
            rows.append(row)
            tiles[label, int(n)] = images[:10]
            progress(f"{label:16s} {n:3d} steps: accuracy {row['accuracy']:.3f}  Frechet {row['frechet']:.3f}  "
                     f"{seconds:.1f} s")
    setup = {"model": model, "samples": samples, "seed": seed, "guidance_scale": guidance, "backend": pipe.backend,
             "machine": f"{platform.machine()}, {platform.system()}"}
    (out / "digits_compare.json").write_text(json.dumps({"setup": setup, "rows": rows}, indent=2) + "\n")
    (out / "digits_compare.md").write_text(markdown_table(rows, setup))
    image_grid(tiles, list(schedulers), [int(s) for s in steps]).save(out / "digits_compare_grid.png", optimize=True)
    if plot:
        plot_quality(rows, out / "digits_compare_quality.png")
    return rows


def markdown_table(rows: list[dict], setup: dict) -> str:
    lines = [
        f"Schedulers on the built-in `{setup['model']}` model: {setup['samples']} samples (digits 0..9 in turn), "
        f"seed {setup['seed']}, guidance {setup['guidance_scale']:g}, {setup['backend']} on {setup['machine']}. "
        "Accuracy: the classifier of `edge_sched.quality` agrees with the requested digit. Frechet: distance "
        "to the real digits in the classifier's features (lower is better)"
        ". Seconds: the whole pipeline call, all samples.",
        "",
        "| scheduler | steps | accuracy | Frechet distance | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['scheduler']} | {r['steps']} | {r['accuracy']:.3f} | {r['frechet']:.3f} | {r['seconds']:.1f} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def _matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise RuntimeError(f"the quality plot needs matplotlib: pip install matplotlib (or pass --no-plot) ({e})") from e
    return plt


def plot_quality(rows: list[dict], path: Path) -> None:
    """Frechet distance (log scale) and accuracy against steps, one line per scheduler."""
    plt = _matplotlib()
    fig, (ax_fd, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=80)
    for label in dict.fromkeys(r["scheduler"] for r in rows):
        mine = [r for r in rows if r["scheduler"] == label]
        xs = [r["steps"] for r in mine]
        ax_fd.plot(xs, [r["frechet"] for r in mine], marker="o", markersize=3, label=label)
        ax_acc.plot(xs, [r["accuracy"] for r in mine], marker="o", markersize=3, label=label)
    for ax, name in ((ax_fd, "Frechet distance to real digits (lower is better)"), (ax_acc, "class accuracy")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("steps")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    ax_fd.set_yscale("log")
    ax_acc.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def image_grid(tiles: dict, schedulers: list[str], steps: list[int], scale: int = 2):
    """Rows: schedulers; columns: step counts; each cell the ten digits as 5 x 2 tiles."""
    from PIL import Image, ImageDraw

    size = 16 * scale
    cell_w, cell_h, gap = 5 * size, 2 * size, 4
    left, top = 110, 16
    grid = Image.new("L", (left + len(steps) * (cell_w + gap), top + len(schedulers) * (cell_h + gap)), 255)
    draw = ImageDraw.Draw(grid)
    for j, n in enumerate(steps):
        draw.text((left + j * (cell_w + gap) + 2, 2), f"{n} steps", fill=0)
    for i, label in enumerate(schedulers):
        y = top + i * (cell_h + gap)
        draw.text((2, y + cell_h // 2 - 5), label, fill=0)
        for j, n in enumerate(steps):
            pixels = ((tiles[label, n][:, 0] + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
            for k, digit in enumerate(pixels):
                tile = Image.fromarray(digit).resize((size, size), Image.NEAREST)
                grid.paste(tile, (left + j * (cell_w + gap) + (k % 5) * size, y + (k // 5) * size))
    return grid


def add_arguments(parser) -> None:
    """The ``edge-sched compare`` options."""
    parser.add_argument("--model", default="digits", choices=MODELS, help="built-in model with a quality metric")
    parser.add_argument("--out", default="digits_compare", help="output folder (table, JSON, plot, grid)")
    parser.add_argument("--schedulers", nargs="+", default=list(DEFAULT_SCHEDULERS), metavar="NAME",
                        help=f"labels from: {', '.join(SCHEDULERS)} (default: {', '.join(DEFAULT_SCHEDULERS)})")
    parser.add_argument("--steps", nargs="+", type=int, default=list(STEPS), metavar="N")
    parser.add_argument("--samples", type=int, default=500, help="samples per run (500+ for a stable Frechet distance)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--guidance", type=float, default=None, help="default: the model's (3.0 for digits)")
    parser.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "openvino"])
    parser.add_argument("--no-plot", action="store_true", help="skip the matplotlib plot")


def cmd_compare(args) -> int:
    compare(args.model, args.out, args.schedulers, args.steps, args.samples, args.seed, args.guidance,
            args.backend, plot=not args.no_plot)
    print(f"wrote {args.out}/digits_compare.md, .json, _grid.png" + ("" if args.no_plot else ", _quality.png"))
    return 0
