"""Train the built-in digits model: a small class-conditional UNet2DModel on scikit-learn's digits.

Workstation side (torch + diffusers + scikit-learn). The method:

- data: scikit-learn's bundled 8x8 digits (1797 images, no download), upscaled bilinearly to
  16x16, pixels in [-1, 1] (``edge_sched.quality.prepare_digits``, the one home of that recipe);
- model: ``UNet2DModel`` (about 0.64M parameters, 16x16x1), conditioned on ``class_labels``
  through ``num_class_embeds=11``: labels 0..9 are the digits, label 10 is the "null" class;
  during training a label is replaced by 10 with probability ``--label-dropout``, so the same
  network predicts the unconditional noise and classifier-free guidance works at sampling time;
- objective: epsilon prediction, MSE, timesteps uniform in 0..999, noise added by diffusers'
  ``DDPMScheduler`` with the standard linear betas (1e-4 .. 0.02, 1000 steps);
- optimiser: AdamW with linear warm-up and cosine decay; the saved weights are an exponential
  moving average (EMA) of the trained ones, which samples cleaner after a short training.

A fixed seed, a fixed thread count and deterministic algorithms make a run repeatable. The
output is a diffusers folder (``DDPMPipeline`` layout: ``unet/``, ``scheduler/``,
``model_index.json``) plus a model card ``README.md``, written to a temporary folder and
renamed at the end.

    python examples/train_digits.py --out /work/digits_model [--steps 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from diffusers.optimization import get_cosine_schedule_with_warmup
from sklearn.datasets import load_digits

from edge_sched.quality import prepare_digits

NULL_CLASS = 10
NUM_CLASS_EMBEDS = 11

UNET_CONFIG = {
    "sample_size": 16,
    "in_channels": 1,
    "out_channels": 1,
    "block_out_channels": (16, 32, 64),
    "down_block_types": ("DownBlock2D", "DownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "UpBlock2D", "UpBlock2D"),
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "num_class_embeds": NUM_CLASS_EMBEDS,
}
SCHEDULER_CONFIG = {"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 1e-4,
                    "beta_end": 0.02, "prediction_type": "epsilon"}


def build_unet() -> UNet2DModel:
    return UNet2DModel(**UNET_CONFIG)


def ema_decay(step: int, target: float) -> float:
    # short warm-up of the average so the first, random weights fade quickly
    return min(target, (1 + step) / (10 + step))


def train(args) -> tuple[UNet2DModel, DDPMScheduler, dict]:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    generator = torch.Generator().manual_seed(args.seed)

    digits = load_digits()
    data = torch.from_numpy(prepare_digits(digits.data))
    labels = torch.from_numpy(digits.target.astype(np.int64))
    n = len(data)

    unet = build_unet()
    scheduler = DDPMScheduler(**SCHEDULER_CONFIG)
    params = sum(p.numel() for p in unet.parameters())
    ema = [p.detach().clone() for p in unet.parameters()]
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=1e-4)
    lr_schedule = get_cosine_schedule_with_warmup(optimizer, args.warmup, args.steps)

    print(f"{n} digits, UNet2DModel with {params:,} parameters, {args.steps} steps of "
          f"{args.batch_size}, {args.threads} threads, seed {args.seed}", flush=True)
    order, cursor = torch.randperm(n, generator=generator), 0
    start, cpu_start, running, logged = time.time(), time.process_time(), 0.0, 0
    unet.train()
    for step in range(args.steps):
        if cursor + args.batch_size > n:  # a new epoch: reshuffle
            order, cursor = torch.randperm(n, generator=generator), 0
        idx = order[cursor:cursor + args.batch_size]
        cursor += args.batch_size
        x0, y = data[idx], labels[idx].clone()
        y[torch.rand(len(y), generator=generator) < args.label_dropout] = NULL_CLASS
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),), generator=generator)
        pred = unet(scheduler.add_noise(x0, noise, t), t, class_labels=y).sample
        loss = F.mse_loss(pred, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        lr_schedule.step()
        with torch.no_grad():
            d = ema_decay(step, args.ema)
            for e, p in zip(ema, unet.parameters()):
                e.mul_(d).add_(p.detach(), alpha=1 - d)
        running, logged = running + loss.item(), logged + 1
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            elapsed = time.time() - start
            eta = elapsed / (step + 1) * (args.steps - step - 1)
            print(f"step {step + 1:5d}/{args.steps}  loss {running / logged:.4f}  "
                  f"lr {lr_schedule.get_last_lr()[0]:.2e}  {elapsed:6.0f}s elapsed, ~{eta:.0f}s left  "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
            running, logged = 0.0, 0
    seconds, cpu_seconds = time.time() - start, time.process_time() - cpu_start

    with torch.no_grad():
        for e, p in zip(ema, unet.parameters()):
            p.copy_(e)
    unet.eval()
    stats = {"parameters": params, "train_seconds": round(seconds, 1),
             "train_cpu_seconds": round(cpu_seconds, 1), "steps": args.steps,
             "batch_size": args.batch_size, "lr": args.lr, "label_dropout": args.label_dropout,
             "ema": args.ema, "seed": args.seed, "threads": args.threads,
             "load_average_at_end": round(os.getloadavg()[0], 2), "torch": torch.__version__}
    return unet, scheduler, stats


MODEL_CARD = """---
library_name: diffusers
pipeline_tag: unconditional-image-generation
license: apache-2.0
tags: [edge_sched, digits, class-conditional, classifier-free-guidance]
---

# edge_sched digits: a class-conditional 16x16 digit model

A small `UNet2DModel` ({parameters:,} parameters) trained by `examples/train_digits.py` of
edge_sched on scikit-learn's bundled 8x8 digits (1797 images), upscaled bilinearly to 16x16,
one channel, pixels in [-1, 1].

- **Class-conditional**: pass `class_labels` to the UNet. Labels 0..9 are the digits "0".."9";
  **label 10 is the null class** (no digit), used for classifier-free guidance:
  `eps = eps(x, t, 10) + w * (eps(x, t, digit) - eps(x, t, 10))`.
  During training a label was replaced by 10 with probability {label_dropout}.
- **Prediction**: epsilon. **Scheduler**: `DDPMScheduler`, linear betas 1e-4 .. 0.02,
  1000 training steps; any diffusers scheduler can be loaded from this config.
- `model_index.json` names `DDPMPipeline` so the folder loads with diffusers' standard loaders,
  but `DDPMPipeline.__call__` does not pass class labels: sample with your own loop (see
  edge_sched's tests/digits/test_digits_torch.py) or with edge_sched's runtime.

## Training

{steps} AdamW steps of batch {batch_size} (lr {lr}, warm-up then cosine decay), weights saved as an
EMA (decay {ema}), seed {seed}, {threads} CPU threads, deterministic algorithms, torch {torch}.
Wall time {train_seconds} s ({train_cpu_seconds} s of CPU) on a 2-core machine shared with other
jobs (1-minute load average {load_average_at_end} at the end).

Labels: `{{"0": 0, "1": 1, ..., "9": 9, "null": 10}}`.
"""


def save(unet, scheduler, stats, out: Path) -> None:
    out = out.resolve()
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(tmp)
        (tmp / "README.md").write_text(MODEL_CARD.format(**stats))
        labels = {str(d): d for d in range(10)} | {"null": NULL_CLASS}
        (tmp / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
        (tmp / "training.json").write_text(json.dumps(stats, indent=1) + "\n")
        tmp.chmod(0o755)  # mkdtemp makes it private
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="diffusers folder to write")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--label-dropout", type=float, default=0.12)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--seed", type=int, default=0)
    # one thread: on a shared 2-core machine two OpenMP threads spin-wait and run ~7x slower
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-every", type=int, default=100)
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "threads", "log_every"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not 0.0 <= args.label_dropout < 1.0:
        raise ValueError(f"--label-dropout must be in [0, 1), got {args.label_dropout}")
    unet, scheduler, stats = train(args)
    save(unet, scheduler, stats, args.out)
    print(f"saved {args.out} ({stats['parameters']:,} parameters) in {stats['train_seconds']:.0f} s "
          f"of training", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
