"""Argument checks shared by every scheduler, so errors read the same everywhere."""

from __future__ import annotations

import numbers
from typing import Iterable


def check_choice(name: str, value, allowed: Iterable) -> None:
    """Raise ValueError naming the option, the bad value and the allowed ones."""
    allowed = tuple(allowed)
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"Unknown {name} {value!r}; expected one of {choices}.")


def check_strength(strength) -> None:
    """``strength`` (image-to-image: the share of the schedule that runs) must be a number in [0, 1]."""
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0 <= strength <= 1:
        raise ValueError(f"strength must be a number in [0, 1], got {strength!r}.")


class NotSupportedError(ValueError, NotImplementedError):
    """An option combination the class accepts (as diffusers' does) but cannot run; diffusers raises
    NotImplementedError there, and so do we (it is also a ValueError: the config is at fault)."""
