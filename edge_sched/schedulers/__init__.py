"""numpy schedulers with diffusers' names, configs and numbers."""

from .ays import AysSchedules
from .base import SchedulerMixin, SchedulerNotReadyError, SchedulerOutput, scheduler_class
from .configuration import SCHEDULER_CLASSES, ConfigError, FrozenConfig
from .ddim import DDIMScheduler
from .ddim_inverse import DDIMInverseScheduler
from .ddpm import DDPMScheduler
from .euler import EulerDiscreteScheduler
from .flow_match_euler import FlowMatchEulerDiscreteScheduler
from .lcm import LCMScheduler, LCMSchedulerOutput
from .pndm import PNDMScheduler

__all__ = [
    "AysSchedules",
    "ConfigError",
    "DDIMInverseScheduler",
    "DDIMScheduler",
    "DDPMScheduler",
    "EulerDiscreteScheduler",
    "FlowMatchEulerDiscreteScheduler",
    "LCMScheduler",
    "LCMSchedulerOutput",
    "PNDMScheduler",
    "FrozenConfig",
    "SCHEDULER_CLASSES",
    "SchedulerMixin",
    "SchedulerNotReadyError",
    "SchedulerOutput",
    "scheduler_class",
]
