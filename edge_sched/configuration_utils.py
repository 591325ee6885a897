"""diffusers' ``diffusers.configuration_utils`` names, at the same path under edge_sched: ``ConfigMixin``,
``register_to_config`` and ``FrozenDict`` (our FrozenConfig), for custom schedulers written for diffusers."""

from .schedulers.configuration import ConfigMixin, FrozenConfig, register_to_config

FrozenDict = FrozenConfig

__all__ = ["ConfigMixin", "FrozenDict", "register_to_config"]
