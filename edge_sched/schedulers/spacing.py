"""Timestep spacing: which of the training timesteps an inference schedule visits.

See "Common Diffusion Noise Schedules and Sample Steps are Flawed" (Lin et al. 2023),
Table 2, for the three spacings.
"""

from __future__ import annotations

import numpy as np

from .errors import check_choice

TIMESTEP_SPACINGS = ("linspace", "leading", "trailing")


def spaced_timesteps(
    spacing: str,
    num_inference_steps: int,
    num_train_timesteps: int,
    steps_offset: int = 0,
    *,
    rounded: bool = True,
    extra_step: bool = False,
    last_timestep: int | None = None,
) -> np.ndarray:
    """Descending float64 timesteps for ``num_inference_steps`` steps.

    rounded:       round "linspace" to whole timesteps (DDPM/DDIM/multistep solvers do;
                   the sigma-based Euler/Heun/LMS keep fractional timesteps).
    extra_step:    plan ``num_inference_steps + 1`` points for linspace/leading and drop the
                   final one (multistep solvers: the last step goes to sigma 0 instead).
    last_timestep: exclusive upper end of the range (multistep solvers clip it through
                   ``lambda_min_clipped``); defaults to ``num_train_timesteps``.
    """
    check_choice("timestep_spacing", spacing, TIMESTEP_SPACINGS)
    n = num_inference_steps
    points = n + 1 if extra_step else n
    last = num_train_timesteps if last_timestep is None else last_timestep
    if spacing == "linspace":
        t = np.linspace(0, last - 1, points)
        if rounded:
            t = t.round()
        t = t[::-1]
    elif spacing == "leading":
        step_ratio = last // points
        t = (np.arange(0, points) * step_ratio).round()[::-1] + steps_offset
    else:  # trailing
        step_ratio = num_train_timesteps / n
        t = np.arange(last, 0, -step_ratio).round() - 1
    if extra_step and spacing != "trailing":
        t = t[:-1]
    return np.ascontiguousarray(t, dtype=np.float64)


def check_table_range(timesteps: np.ndarray, num_train_timesteps: int, spacing: str, steps_offset: int) -> None:
    """For schedulers that index their training tables with the timesteps (DDIM and its kin; the sigma-based
    ones interpolate and clamp instead): every timestep must be one of 0 .. num_train_timesteps - 1.
    diffusers fails with an IndexError there."""
    t = np.asarray(timesteps)
    if t.size and (t.max() > num_train_timesteps - 1 or t.min() < 0):
        bad = t.max() if t.max() > num_train_timesteps - 1 else t.min()
        raise ValueError(f"{spacing} spacing of {t.size} steps with steps_offset={steps_offset} gives timestep "
                         f"{bad:g}, outside the training timesteps 0..{num_train_timesteps - 1}; use fewer steps "
                         f"or a smaller steps_offset.")
