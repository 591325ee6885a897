"""Scheduler names -> scheduler classes, with one "did you mean" error.

A name is a diffusers class name (``EulerDiscreteScheduler``, exact) or an A1111 sampler name
(``DPM++ 2M Karras``, case and repeated spaces ignored; the table is in a1111.py). The command line,
the export side, ``from_a1111_name`` and ``scheduler_class`` (a config's ``_class_name``) all
resolve names here.
"""

from __future__ import annotations

import difflib
from types import MappingProxyType

from .a1111 import A1111_SAMPLERS, find_a1111_sampler, fold_name
from .base import SchedulerMixin
from .configuration import SCHEDULER_CLASSES

CLASS_NAMES, A1111_NAMES = "diffusers class names", "A1111 sampler names"
_CUTOFF = 0.6  # difflib's default: how close a known name must be to be suggested
_NO_OPTIONS = MappingProxyType({})


class UnknownSchedulerError(ValueError):
    """A name that is no scheduler of the accepted kinds. ``suggestions``: the closest known name of
    each accepted kind, if one is close enough, closest first."""

    def __init__(self, name: str, *, class_names: bool = True, a1111_names: bool = True):
        kinds = {CLASS_NAMES: sorted(SCHEDULER_CLASSES)} if class_names else {}
        if a1111_names:
            kinds[A1111_NAMES] = list(A1111_SAMPLERS)
        self.name = name
        self.suggestions = _closest(name, kinds.values())
        what = "scheduler" if len(kinds) == 2 else "scheduler class" if class_names else "A1111 sampler name"
        hint = f" Did you mean {' or '.join(map(repr, self.suggestions))}?" if self.suggestions else ""
        known = " or ".join(f"{kind} ({', '.join(names)})" for kind, names in kinds.items())
        super().__init__(f"unknown {what} {name!r}.{hint} Known schedulers: {known}.")


def _closest(name: str, kinds) -> tuple[str, ...]:
    """The best name of each kind at or above _CUTOFF, closest first. Names are compared folded
    (case, spacing), class names also without their "Scheduler" suffix ("DDIM" -> DDIMScheduler)."""
    matcher = difflib.SequenceMatcher(b=fold_name(name))

    def closeness(known: str) -> float:
        folded = fold_name(known)
        best = 0.0
        for candidate in {folded, folded.removesuffix("scheduler")}:
            matcher.set_seq1(candidate)
            best = max(best, matcher.ratio())
        return best

    scored = [max((closeness(n), n) for n in names) for names in kinds if names]
    return tuple(n for score, n in sorted(scored, reverse=True) if score >= _CUTOFF)


def resolve_scheduler(name: str, *, class_names: bool = True,
                      a1111_names: bool = True) -> tuple[type[SchedulerMixin], MappingProxyType]:
    """(scheduler class, init options) of a diffusers class name or an A1111 sampler name; the
    options are an A1111 name's (``use_karras_sigmas``...), empty for a class name.
    ``class_names=False`` / ``a1111_names=False`` refuses that kind of name.
    Raises UnknownSchedulerError (a ValueError) naming the closest known names."""
    if not isinstance(name, str):
        raise TypeError(f"a scheduler name must be a string, got {name!r}.")
    if class_names and name in SCHEDULER_CLASSES:
        return SCHEDULER_CLASSES[name], _NO_OPTIONS
    row = find_a1111_sampler(name) if a1111_names else None
    if row is None:
        raise UnknownSchedulerError(name, class_names=class_names, a1111_names=a1111_names)
    return SCHEDULER_CLASSES[row.scheduler], row.options


def scheduler_class(name: str) -> type[SchedulerMixin]:
    """The scheduler class of a diffusers class name (a config's ``_class_name``)."""
    return resolve_scheduler(name, a1111_names=False)[0]


def scheduler_from_name(name: str, config=None, *, class_names: bool = True, a1111_names: bool = True,
                        **overrides) -> SchedulerMixin:
    """The scheduler ``name`` stands for, built by ``from_config(config)`` (a scheduler config dict,
    e.g. a pipeline's scheduler_config.json, or a scheduler): the name's options over the config,
    ``overrides`` over both."""
    cls, options = resolve_scheduler(name, class_names=class_names, a1111_names=a1111_names)
    return cls.from_config(config, **{**options, **overrides})


__all__ = ["UnknownSchedulerError", "resolve_scheduler", "scheduler_class", "scheduler_from_name"]
