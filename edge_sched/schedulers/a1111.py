"""A1111 / k-diffusion sampler names -> edge_sched schedulers.

The table is diffusers' own mapping (docs: api/schedulers/overview, "A1111/k-diffusion ->
Diffusers"): the scheduler class and the init options each name stands for. The four names
diffusers marks N/A (DPM++ 2S a [Karras], DPM adaptive, DPM fast) map to our ports of
k-diffusion's samplers in kdiffusion_only.py.

Note (from that table, kept as is): "DPM++ SDE" maps to DPMSolverSinglestepScheduler; k-diffusion's
``sample_dpmpp_sde`` itself is what DPMSolverSDEScheduler implements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from . import (  # noqa: F401  (register every class the table names)
    dpmsolver_multistep, dpmsolver_singlestep, euler, euler_ancestral, heun, kdiffusion_only, kdpm2,
    kdpm2_ancestral, lms,
)
from .base import SchedulerMixin


@dataclass(frozen=True)
class A1111Sampler:
    """One row: the A1111 name, the scheduler class name and the init options it implies."""

    name: str
    scheduler: str
    options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    in_diffusers: bool = True  # False: one of the rows diffusers marks N/A (ours from k-diffusion)


def _row(name, scheduler, in_diffusers=True, **options):
    return A1111Sampler(name, scheduler, MappingProxyType(options), in_diffusers)


KARRAS = {"use_karras_sigmas": True}
SDE = {"algorithm_type": "sde-dpmsolver++"}
# A1111 passes its "eta (ancestral)" setting, default 1, to every k-diffusion sampler taking eta:
# its DPM fast / adaptive are the ancestral variants (k-diffusion's own default is eta = 0)
A1111_ETA = {"eta": 1.0}

A1111_SAMPLERS = {
    row.name: row
    for row in (
        _row("DPM++ 2M", "DPMSolverMultistepScheduler"),
        _row("DPM++ 2M Karras", "DPMSolverMultistepScheduler", **KARRAS),
        _row("DPM++ 2M SDE", "DPMSolverMultistepScheduler", **SDE),
        _row("DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler", **KARRAS, **SDE),
        _row("DPM++ 2S a", "DPMPP2SAncestralScheduler", False),
        _row("DPM++ 2S a Karras", "DPMPP2SAncestralScheduler", False, **KARRAS),
        _row("DPM++ SDE", "DPMSolverSinglestepScheduler"),
        _row("DPM++ SDE Karras", "DPMSolverSinglestepScheduler", **KARRAS),
        _row("DPM2", "KDPM2DiscreteScheduler"),
        _row("DPM2 Karras", "KDPM2DiscreteScheduler", **KARRAS),
        _row("DPM2 a", "KDPM2AncestralDiscreteScheduler"),
        _row("DPM2 a Karras", "KDPM2AncestralDiscreteScheduler", **KARRAS),
        _row("DPM adaptive", "DPMAdaptiveScheduler", False, **A1111_ETA),
        _row("DPM fast", "DPMFastScheduler", False, **A1111_ETA),
        _row("Euler", "EulerDiscreteScheduler"),
        _row("Euler a", "EulerAncestralDiscreteScheduler"),
        _row("Heun", "HeunDiscreteScheduler"),
        _row("LMS", "LMSDiscreteScheduler"),
        _row("LMS Karras", "LMSDiscreteScheduler", **KARRAS),
    )
}


def fold_name(name: str) -> str:
    """A sampler name with case and repeated spaces folded away: how the table is looked up."""
    return " ".join(name.split()).casefold()


_BY_FOLDED = {fold_name(n): row for n, row in A1111_SAMPLERS.items()}


def find_a1111_sampler(name: str) -> A1111Sampler | None:
    """The table row of an A1111 sampler name (case and repeated spaces ignored), or None."""
    return _BY_FOLDED.get(fold_name(name))


# resolve.py builds on this table, hence the imports inside the two functions below


def a1111_sampler(name: str) -> A1111Sampler:
    """The table row of an A1111 sampler name; resolve.UnknownSchedulerError for any other name."""
    from .resolve import resolve_scheduler

    resolve_scheduler(name, class_names=False)  # raises for a name that is not in the table
    return find_a1111_sampler(name)


def from_a1111_name(name: str, config=None, **overrides) -> SchedulerMixin:
    """The scheduler an A1111 sampler name stands for, built from ``config`` (a scheduler config
    dict, e.g. a pipeline's scheduler_config.json, or a scheduler) with the row's init options;
    ``overrides`` win over both."""
    from .resolve import scheduler_from_name

    return scheduler_from_name(name, config, class_names=False, **overrides)


__all__ = ["A1111_SAMPLERS", "A1111Sampler", "a1111_sampler", "find_a1111_sampler", "fold_name", "from_a1111_name"]
