"""Argument checks shared by every scheduler, so errors read the same everywhere."""

from __future__ import annotations

from typing import Iterable


def check_choice(name: str, value, allowed: Iterable) -> None:
    """Raise ValueError naming the option, the bad value and the allowed ones."""
    allowed = tuple(allowed)
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"Unknown {name} {value!r}; expected one of {choices}.")
