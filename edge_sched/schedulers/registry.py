"""The registry of scheduler classes by diffusers name, filled on first use (``SCHEDULER_CLASSES``).

Importing the 40 scheduler modules costs about 100 ms, most of ``import edge_sched`` (issue 18 item 4),
so no module is imported until its class is asked for. The registry knows every built-in class by name
and module (``BUILTIN``, checked against the modules by tests/runtime/test_lazy_imports.py); looking up
a name imports its one module, and listing the values imports them all. Classes defined elsewhere
(a user's subclass of SchedulerMixin) register themselves as before, through ``__init_subclass__``.
This module imports nothing heavy: ``import edge_sched.schedulers`` stays free of numpy.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

# diffusers class name -> the module of edge_sched.schedulers that defines it
BUILTIN: dict[str, str] = {
    "DDIMScheduler": "ddim",
    "DPMSolverMultistepScheduler": "dpmsolver_multistep",
    "DPMSolverSinglestepScheduler": "dpmsolver_singlestep",
    "EulerDiscreteScheduler": "euler",
    "EulerAncestralDiscreteScheduler": "euler_ancestral",
    "HeunDiscreteScheduler": "heun",
    "DPMAdaptiveScheduler": "dpm_adaptive",
    "DPMFastScheduler": "dpm_fast",
    "DPMPP2SAncestralScheduler": "dpmpp_2s_ancestral",
    "KDPM2DiscreteScheduler": "kdpm2",
    "KDPM2AncestralDiscreteScheduler": "kdpm2_ancestral",
    "LCMScheduler": "lcm",
    "LMSDiscreteScheduler": "lms",
    "PNDMScheduler": "pndm",
    "UniPCMultistepScheduler": "unipc_multistep",
    "DPMSolverSDEScheduler": "dpmsolver_sde",
    "CMStochasticIterativeScheduler": "cm_stochastic_iterative",
    "DDIMParallelScheduler": "ddim_parallel",
    "DDPMScheduler": "ddpm",
    "DDPMParallelScheduler": "ddpm_parallel",
    "DDPMWuerstchenScheduler": "ddpm_wuerstchen",
    "KarrasVeScheduler": "karras_ve",
    "RePaintScheduler": "repaint",
    "ScoreSdeVeScheduler": "score_sde_ve",
    "ScoreSdeVpScheduler": "score_sde_vp",
    "UnCLIPScheduler": "unclip",
    "EDMEulerScheduler": "edm_euler",
    "EDMDPMSolverMultistepScheduler": "edm_dpmsolver_multistep",
    "CosineDPMSolverMultistepScheduler": "cosine_dpmsolver_multistep",
    "DEISMultistepScheduler": "deis_multistep",
    "DPMSolverMultistepInverseScheduler": "dpmsolver_multistep_inverse",
    "FlowMatchEulerDiscreteScheduler": "flow_match_euler",
    "FlowMatchHeunDiscreteScheduler": "flow_match_heun",
    "IPNDMScheduler": "ipndm",
    "SASolverScheduler": "sa_solver",
    "TCDScheduler": "tcd",
    "DDIMInverseScheduler": "ddim_inverse",
    "VQDiffusionScheduler": "vq_diffusion",
}


class SchedulerRegistry(MutableMapping):
    """name -> class. Membership and the names need no import; a class is imported when it is read."""

    def __init__(self, builtin: dict[str, str]):
        self._builtin = builtin
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        if name not in self._classes and name in self._builtin:
            importlib.import_module(f"{__package__}.{self._builtin[name]}")  # registers it (and its module's others)
        return self._classes[name]

    def __setitem__(self, name: str, cls: type) -> None:
        self._classes[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._classes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._classes or name in self._builtin

    def __iter__(self) -> Iterator[str]:
        yield from self._builtin
        yield from (name for name in self._classes if name not in self._builtin)

    def __len__(self) -> int:
        return len(self._builtin.keys() | self._classes.keys())

    def __repr__(self) -> str:
        return f"SchedulerRegistry({len(self)} classes, {len(self._classes)} imported)"


SCHEDULER_CLASSES = SchedulerRegistry(BUILTIN)
