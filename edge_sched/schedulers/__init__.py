"""numpy schedulers with diffusers' names, configs and numbers.

Every name is imported on first use (PEP 562 ``__getattr__``): ``import edge_sched`` imports no scheduler
module, and ``from edge_sched.schedulers import DDIMScheduler`` imports only ddim's (issue 18 item 4).
``__all__`` and ``dir()`` stay complete; ``from edge_sched.schedulers import *`` imports everything.
"""

from __future__ import annotations

import importlib

from .registry import BUILTIN as _SCHEDULER_MODULES
from .registry import SCHEDULER_CLASSES

# every public name that is not a scheduler class -> its module
_HOMES = {
    "A1111_SAMPLERS": "a1111", "from_a1111_name": "a1111",
    "AysSchedules": "ays",
    "SchedulerMixin": "base", "SchedulerNotReadyError": "base", "SchedulerOutput": "base",
    "ConfigError": "configuration", "FrozenConfig": "configuration",
    "SamplerChoice": "resolve", "SamplerNotAvailableError": "resolve", "UnknownSchedulerError": "resolve",
    "resolve_sampler": "resolve", "resolve_scheduler": "resolve", "scheduler_class": "resolve",
    "scheduler_from_name": "resolve",
    "KarrasVeOutput": "karras_ve", "SdeVeOutput": "score_sde_ve", "TCDSchedulerOutput": "tcd",
    "LCMSchedulerOutput": "lcm", "VQDiffusionSchedulerOutput": "vq_diffusion",
    **_SCHEDULER_MODULES,
}


def __getattr__(name: str):
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later reads skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "A1111_SAMPLERS",
    "from_a1111_name",
    "DPMSolverSDEScheduler",
    "DPMSolverSinglestepScheduler",
    "DPMAdaptiveScheduler",
    "DPMFastScheduler",
    "DPMPP2SAncestralScheduler",
    "KDPM2DiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler",
    "VQDiffusionScheduler",
    "VQDiffusionSchedulerOutput",
    "CosineDPMSolverMultistepScheduler",
    "DEISMultistepScheduler",
    "DPMSolverMultistepInverseScheduler",
    "EDMDPMSolverMultistepScheduler",
    "EDMEulerScheduler",
    "FlowMatchHeunDiscreteScheduler",
    "IPNDMScheduler",
    "SASolverScheduler",
    "TCDScheduler",
    "TCDSchedulerOutput",
    "CMStochasticIterativeScheduler",
    "DDIMParallelScheduler",
    "DDPMParallelScheduler",
    "DDPMWuerstchenScheduler",
    "KarrasVeOutput",
    "KarrasVeScheduler",
    "RePaintScheduler",
    "ScoreSdeVeScheduler",
    "SdeVeOutput",
    "ScoreSdeVpScheduler",
    "UnCLIPScheduler",
    "AysSchedules",
    "ConfigError",
    "DDIMInverseScheduler",
    "DDIMScheduler",
    "DDPMScheduler",
    "DPMSolverMultistepScheduler",
    "EulerAncestralDiscreteScheduler",
    "EulerDiscreteScheduler",
    "FlowMatchEulerDiscreteScheduler",
    "HeunDiscreteScheduler",
    "LCMScheduler",
    "LCMSchedulerOutput",
    "LMSDiscreteScheduler",
    "PNDMScheduler",
    "UniPCMultistepScheduler",
    "FrozenConfig",
    "SCHEDULER_CLASSES",
    "SchedulerMixin",
    "SchedulerNotReadyError",
    "SchedulerOutput",
    "scheduler_class",
    "SamplerChoice",
    "SamplerNotAvailableError",
    "UnknownSchedulerError",
    "resolve_sampler",
    "resolve_scheduler",
    "scheduler_from_name",
]
