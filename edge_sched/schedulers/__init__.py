"""numpy schedulers with diffusers' names, configs and numbers."""

from .ays import AysSchedules
from .base import SchedulerMixin, SchedulerNotReadyError, SchedulerOutput, scheduler_class
from .configuration import SCHEDULER_CLASSES, ConfigError, FrozenConfig
from .ddim import DDIMScheduler
from .ddim_inverse import DDIMInverseScheduler
from .ddpm import DDPMScheduler
from .dpmsolver_multistep import DPMSolverMultistepScheduler
from .euler import EulerDiscreteScheduler
from .euler_ancestral import EulerAncestralDiscreteScheduler
from .flow_match_euler import FlowMatchEulerDiscreteScheduler
from .heun import HeunDiscreteScheduler
from .lcm import LCMScheduler, LCMSchedulerOutput
from .lms import LMSDiscreteScheduler
from .pndm import PNDMScheduler
from .unipc_multistep import UniPCMultistepScheduler

__all__ = [
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
]
