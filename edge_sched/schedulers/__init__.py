"""numpy schedulers with diffusers' names, configs and numbers."""

from .ays import AysSchedules
from .base import SchedulerMixin, SchedulerNotReadyError, SchedulerOutput, scheduler_class
from .configuration import SCHEDULER_CLASSES, ConfigError, FrozenConfig
from .euler import EulerDiscreteScheduler
from .flow_match_euler import FlowMatchEulerDiscreteScheduler
from .lcm import LCMScheduler, LCMSchedulerOutput

__all__ = [
    "AysSchedules",
    "ConfigError",
    "EulerDiscreteScheduler",
    "FlowMatchEulerDiscreteScheduler",
    "LCMScheduler",
    "LCMSchedulerOutput",
    "FrozenConfig",
    "SCHEDULER_CLASSES",
    "SchedulerMixin",
    "SchedulerNotReadyError",
    "SchedulerOutput",
    "scheduler_class",
]
