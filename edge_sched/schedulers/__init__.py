"""numpy schedulers with diffusers' names, configs and numbers."""

from .ays import AysSchedules
from .base import SchedulerMixin, SchedulerNotReadyError, SchedulerOutput, scheduler_class
from .configuration import SCHEDULER_CLASSES, ConfigError, FrozenConfig
from .euler import EulerDiscreteScheduler

__all__ = [
    "AysSchedules",
    "ConfigError",
    "EulerDiscreteScheduler",
    "FrozenConfig",
    "SCHEDULER_CLASSES",
    "SchedulerMixin",
    "SchedulerNotReadyError",
    "SchedulerOutput",
    "scheduler_class",
]
