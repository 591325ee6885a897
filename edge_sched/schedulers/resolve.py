"""Scheduler names -> scheduler classes, with one "did you mean" error.

A name is a diffusers class name (``EulerDiscreteScheduler``, exact) or an A1111 sampler name
(``DPM++ 2M Karras``, case and repeated spaces ignored; the table is in a1111.py). The command line,
the export side, ``from_a1111_name`` and ``scheduler_class`` (a config's ``_class_name``) all
resolve names here. ``resolve_sampler`` (the ``generate`` command line) also takes the modern A1111
names, ComfyUI's names and a schedule type apart from the name (``"DPM++ 2M"`` + ``karras``, or the
legacy ``"DPM++ 2M Karras"``), and refuses the names of samplers no scheduler here reproduces.
"""

from __future__ import annotations

import difflib
from types import MappingProxyType

from dataclasses import dataclass

from . import schedule_types
from .a1111 import (
    A1111_AUTOMATIC_SCHEDULE, A1111_EXTRA_SAMPLERS, A1111_SAMPLERS, COMFYUI_SAMPLERS, UNAVAILABLE_SAMPLERS,
    A1111Sampler, find_a1111_sampler, fold_name,
)
from .base import SchedulerMixin
from .configuration import SCHEDULER_CLASSES

CLASS_NAMES, A1111_NAMES, COMFYUI_NAMES = "diffusers class names", "A1111 sampler names", "ComfyUI sampler names"
_CUTOFF = 0.6  # difflib's default: how close a known name must be to be suggested
_NO_OPTIONS = MappingProxyType({})


class UnknownSchedulerError(ValueError):
    """A name that is no scheduler of the accepted kinds. ``suggestions``: the closest known name of
    each accepted kind, if one is close enough, closest first."""

    def __init__(self, name: str, *, class_names: bool = True, a1111_names: bool = True, wide: bool = False):
        kinds = {CLASS_NAMES: sorted(SCHEDULER_CLASSES)} if class_names else {}
        if a1111_names:
            kinds[A1111_NAMES] = list(A1111_SAMPLERS) + (list(A1111_EXTRA_SAMPLERS) if wide else [])
        if wide:
            kinds[COMFYUI_NAMES] = list(COMFYUI_SAMPLERS)
        self.name = name
        self.suggestions = _closest(name, kinds.values())
        what = "scheduler" if len(kinds) >= 2 else "scheduler class" if class_names else "A1111 sampler name"
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


class SamplerNotAvailableError(ValueError):
    """A known A1111 / ComfyUI sampler name that no scheduler here reproduces."""


@dataclass(frozen=True)
class SamplerChoice:
    """What ``--scheduler NAME [--schedule TYPE]`` stands for: the class, the init options (the name's, then
    the schedule type's), and the A1111 names (``sampler`` None for a diffusers class name; ``schedule``
    None when no schedule type was named)."""

    cls: type
    options: MappingProxyType
    sampler: str | None
    schedule: str | None


_EXTRA_BY_FOLDED = {fold_name(n): row for n, row in A1111_EXTRA_SAMPLERS.items()}
_COMFY_BY_FOLDED = {fold_name(n): a for n, a in COMFYUI_SAMPLERS.items()}
_UNAVAILABLE_BY_FOLDED = {fold_name(n): n for n in UNAVAILABLE_SAMPLERS}


def _wide_row(name: str) -> A1111Sampler | None:
    """An A1111 name (diffusers' table, then the newer names) or a ComfyUI name -> its row."""
    folded = fold_name(name)
    if folded in _COMFY_BY_FOLDED:
        folded = fold_name(_COMFY_BY_FOLDED[folded])
    return find_a1111_sampler(folded) or _EXTRA_BY_FOLDED.get(folded)


def _base_row(row: A1111Sampler) -> tuple[A1111Sampler, str | None]:
    """A legacy combined row ("DPM++ 2M Karras") -> (the sampler's own row, "Karras")."""
    base, label = schedule_types.split_schedule_suffix(row.name)
    return (find_a1111_sampler(base), label) if label else (row, None)


def resolve_sampler(name: str, schedule: str | None = None) -> SamplerChoice:
    """``--scheduler NAME`` (a diffusers class name, an A1111 name old or new, a ComfyUI name, case and
    spacing ignored for the last two; an A1111 name may end in a schedule type) with ``--schedule TYPE``
    (A1111's or ComfyUI's name; "automatic" is the sampler's A1111 default) -> SamplerChoice.
    Without a schedule type the name keeps its meaning in diffusers' table (the pipeline's own spacing).
    Raises UnknownSchedulerError (did you mean), SamplerNotAvailableError, or ValueError for a schedule
    type the sampler cannot take or one that contradicts the name's."""
    if not isinstance(name, str):
        raise TypeError(f"a scheduler name must be a string, got {name!r}.")
    requested = schedule_types.schedule_label(schedule) if schedule is not None else None
    if name in SCHEDULER_CLASSES:
        cls, options, sampler, named = SCHEDULER_CLASSES[name], {}, None, None
    else:
        row = _wide_row(name)
        named = None
        if row is None:  # "DPM++ 2M SDE Exponential", "Euler Karras": a sampler and a schedule type in one name
            base, named = schedule_types.split_schedule_suffix(name)
            row = _wide_row(base) if named else None
        else:
            row, named = _base_row(row)
        if row is None:
            folded = fold_name(name)
            unavailable = _UNAVAILABLE_BY_FOLDED.get(folded) or _UNAVAILABLE_BY_FOLDED.get(
                fold_name(schedule_types.split_schedule_suffix(name)[0]))
            if unavailable:
                raise SamplerNotAvailableError(
                    f"sampler {name!r} is not available here: {UNAVAILABLE_SAMPLERS[unavailable]}; "
                    "edge-sched schedulers lists the samplers that are")
            raise UnknownSchedulerError(name, wide=True)
        cls, options, sampler = SCHEDULER_CLASSES[row.scheduler], dict(row.options), row.name
    if named and requested and requested not in (named, schedule_types.AUTOMATIC):
        raise ValueError(f"--scheduler {name!r} names the schedule type {named}, --schedule {schedule!r} "
                         f"({requested}) another; give the sampler alone (--scheduler {sampler!r}) with --schedule")
    label = named or requested if requested == schedule_types.AUTOMATIC else requested or named
    if label == schedule_types.AUTOMATIC:
        label = A1111_AUTOMATIC_SCHEDULE.get(sampler) if sampler else None
        if label is None:  # no A1111 default: the scheduler's own schedule, as configured
            return SamplerChoice(cls, MappingProxyType(options), sampler, schedule_types.AUTOMATIC)
    if label is not None:
        options.update(schedule_types.options_for(label, cls, repr(sampler or cls.__name__)))
    return SamplerChoice(cls, MappingProxyType(options), sampler, label)


__all__ = ["SamplerChoice", "SamplerNotAvailableError", "UnknownSchedulerError", "resolve_sampler", "resolve_scheduler",
           "scheduler_class", "scheduler_from_name"]
