"""Compare schedulers on a problem with a known answer, with numpy only (no torch, no model files).

The "model" is the exact noise predictor for Gaussian data x0 ~ N(0, DATA_STD^2): for
x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, E[eps | x_t] = sqrt(1 - abar_t) x_t / (abar_t DATA_STD^2 + 1 - abar_t).
A good sampler turns N(0, init_noise_sigma^2) noise into samples whose standard deviation is
DATA_STD; the table shows how far each scheduler is from it at each step count.

    python examples/compare_schedulers.py [--steps 5 10 25] [--seed 0]
"""

from __future__ import annotations

import argparse
import inspect

import numpy as np

import edge_sched
from edge_sched.random import TorchGenerator

DATA_STD = 0.5
SD15 = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def exact_eps(scheduler, model_input: np.ndarray, t) -> np.ndarray:
    """The ideal epsilon prediction at (possibly fractional) training timestep t."""
    abar_table = scheduler.alphas_cumprod.astype(np.float64)
    abar = np.interp(float(t), np.arange(len(abar_table)), abar_table)
    var = abar * DATA_STD**2 + (1 - abar)
    return (np.sqrt(1 - abar) * model_input / var).astype(np.float32)


def sample(name: str, steps: int, seed: int, shape=(4, 4, 32, 32)) -> np.ndarray:
    scheduler = getattr(edge_sched, name).from_config(SD15)
    scheduler.set_timesteps(steps)
    generator = TorchGenerator(seed)
    x = generator.randn(shape) * np.float32(scheduler.init_noise_sigma)
    noise = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for t in scheduler.timesteps:
        # sigma-parameterised schedulers scale the input so the model sees x_t of a VP process
        model_input = scheduler.scale_model_input(x, t)
        x = scheduler.step(exact_eps(scheduler, model_input, t), t, x, **noise).prev_sample
    return x


def applicable(name: str, cls) -> bool:
    """Denoising schedulers with a discrete-time VP training schedule whose step takes only
    (model_output, timestep, sample): not inversion, inpainting (RePaint) or VQ classes."""
    if "Inverse" in name or not hasattr(cls, "step"):
        return False
    try:
        scheduler = cls.from_config(SD15)
    except (TypeError, ValueError):  # needs other arguments (VQ-Diffusion) or other betas (UnCLIP)
        return False
    required = [p for p in list(inspect.signature(cls.step).parameters.values())[4:]
                if p.default is inspect.Parameter.empty]
    return hasattr(scheduler, "alphas_cumprod") and not required


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 25])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # denoising schedulers with a discrete-time VP training schedule (not inversion)
    names = [n for n, cls in sorted(edge_sched.SCHEDULER_CLASSES.items()) if applicable(n, cls)]
    print("| scheduler | " + " | ".join(f"|std - {DATA_STD}| at {s} steps" for s in args.steps) + " |")
    print("|---|" + "---|" * len(args.steps))
    for name in names:
        cells = []
        for steps in args.steps:
            try:
                cells.append(f"{abs(float(sample(name, steps, args.seed).std()) - DATA_STD):.4f}")
            except ValueError:  # a step count this scheduler does not support (e.g. PNDM's warm-up)
                cells.append("n/a")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
