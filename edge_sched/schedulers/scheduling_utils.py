"""diffusers' ``diffusers.schedulers.scheduling_utils`` names, at the same module path here:
``SchedulerMixin``, ``SchedulerOutput``, ``KarrasDiffusionSchedulers`` (the schedulers a Stable
Diffusion config can switch between, numbered as diffusers numbers them), ``AysSchedules`` and
``SCHEDULER_CONFIG_NAME``."""

from enum import Enum

from .ays import AysSchedules
from .base import KARRAS_COMPATIBLES, SchedulerMixin, SchedulerOutput
from .configuration import ConfigMixin

SCHEDULER_CONFIG_NAME = ConfigMixin.config_name

KarrasDiffusionSchedulers = Enum("KarrasDiffusionSchedulers",
                                 {name: number for number, name in enumerate(KARRAS_COMPATIBLES, start=1)})

__all__ = ["AysSchedules", "KarrasDiffusionSchedulers", "SCHEDULER_CONFIG_NAME", "SchedulerMixin", "SchedulerOutput"]
