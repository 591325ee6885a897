"""edge_sched: diffusers' schedulers in pure numpy, for devices that never install torch."""

from . import random
from .schedulers import *  # noqa: F401,F403  (scheduler classes under their diffusers names)
from .schedulers import __all__ as _scheduler_names

__version__ = "0.1.0"

__all__ = ["random", "__version__", *_scheduler_names]
