"""Sample the digits model with diffusers' own schedulers in a plain torch loop (the reference).

Class-conditional sampling with classifier-free guidance: each step runs the UNet on the batch
twice (the requested digits and the null class 10) and combines
``eps = eps_null + w * (eps_digit - eps_null)``. Initial noise comes from
``torch.Generator("cpu").manual_seed(seed)``.

    python -m tests.digits.torch_sampling --model /work/digits_model [--steps 20] [--n 100]

prints class accuracy and Frechet distance (edge_sched.quality) per scheduler as a markdown table.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

NULL_CLASS = 10
GUIDANCE_SCALE = 3.0
REPO = Path(__file__).resolve().parents[2]

#: label -> (diffusers class name, extra config); 20-step table of the report
SCHEDULERS = {
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
    "DDPM": ("DDPMScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "DEIS": ("DEISMultistepScheduler", {}),
}


def model_dir() -> Path | None:
    """Where the trained diffusers folder is: $EDGE_SCHED_DIGITS_MODEL, the copy shipped with the tests
    (``tests/digits/model``: the torch weights, 2.5 MB, not in the package), or ``digits_model`` next
    to the checkout."""
    candidates = [os.environ.get("EDGE_SCHED_DIGITS_MODEL"),
                  REPO / "tests" / "digits" / "model",
                  REPO.parent / "digits_model"]
    for c in candidates:
        if c and (Path(c) / "unet" / "config.json").is_file():
            return Path(c)
    return None


def load_unet(path: Path):
    from diffusers import UNet2DModel

    return UNet2DModel.from_pretrained(path, subfolder="unet").eval()


def make_scheduler(path: Path, class_name: str, extra: dict):
    import diffusers

    base = json.loads((Path(path) / "scheduler" / "scheduler_config.json").read_text())
    return getattr(diffusers, class_name).from_config({**base, **extra})


@torch.no_grad()
def sample(unet, scheduler, labels, steps: int = 20, seed: int = 0,
           guidance_scale: float = GUIDANCE_SCALE) -> np.ndarray:
    """Images (N, 1, 16, 16) in [-1, 1] for the digits ``labels``."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    both = torch.cat([labels, torch.full_like(labels, NULL_CLASS)])
    generator = torch.Generator("cpu").manual_seed(seed)
    size = unet.config.sample_size
    x = torch.randn((len(labels), unet.config.in_channels, size, size), generator=generator)
    scheduler.set_timesteps(steps)
    x = x * scheduler.init_noise_sigma
    noise_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(torch.cat([x, x]), t)
        eps_digit, eps_null = unet(model_in, t, class_labels=both).sample.chunk(2)
        eps = eps_null + guidance_scale * (eps_digit - eps_null)
        x = scheduler.step(eps, t, x, **noise_kwargs).prev_sample
    return x.clamp(-1, 1).numpy()


def main(argv=None) -> int:
    from edge_sched.quality import class_accuracy, frechet_distance_to_real

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=model_dir())
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--guidance", type=float, default=GUIDANCE_SCALE)
    parser.add_argument("--only", nargs="*", default=None, help="scheduler labels to run")
    args = parser.parse_args(argv)
    if args.model is None:
        raise SystemExit("no digits model found: pass --model or set EDGE_SCHED_DIGITS_MODEL")
    torch.set_num_threads(1)
    unet = load_unet(args.model)
    labels = np.arange(args.n) % 10
    print(f"| scheduler ({args.steps} steps, guidance {args.guidance}, {args.n} samples, seed {args.seed}) "
          f"| class accuracy | Frechet distance to real | seconds |")
    print("|---|---|---|---|")
    for label in args.only or SCHEDULERS:
        class_name, extra = SCHEDULERS[label]
        start = time.time()
        images = sample(unet, make_scheduler(args.model, class_name, extra), labels, args.steps,
                        args.seed, args.guidance)
        seconds = time.time() - start
        print(f"| {label} | {class_accuracy(images, labels):.2f} | "
              f"{frechet_distance_to_real(images):.3f} | {seconds:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
