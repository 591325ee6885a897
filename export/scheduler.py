"""Scheduler conversion: any diffusers scheduler config -> one of edge_sched's numpy schedulers.

Targets are diffusers class names (``EulerDiscreteScheduler``...) or A1111 sampler names
("DPM++ 2M Karras"), resolved by ``edge_sched.schedulers.resolve_scheduler``: the name picks the class
and its options (Karras sigmas, SDE, ...), ``key=value`` overrides are applied on top.
"""

from __future__ import annotations

import difflib
import inspect
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_sched.jsonfile import read_json
from edge_sched.schedulers import SCHEDULER_CLASSES, UnknownSchedulerError, resolve_scheduler

from .errors import SchedulerConversionError

logger = logging.getLogger(__name__)

VALIDATION_STEPS = 20


def available_schedulers() -> dict[str, type]:
    """Every scheduler class edge_sched defines, by diffusers class name."""
    return dict(SCHEDULER_CLASSES)


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as JSON when it parses
    (``true``, ``0.5``, ``null``, ``[1, 2]``), else kept as a string (``trailing``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SchedulerConversionError(f"scheduler override {text!r} is not of the form key=value")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def _read_config(config) -> tuple[dict, str]:
    """A config dict, a scheduler object (ours or diffusers'), a scheduler_config.json, or a folder
    holding one (directly or in ``scheduler/``). Returns (dict, where it came from)."""
    if isinstance(config, Mapping):
        return dict(config), "the given config"
    if hasattr(config, "config") and isinstance(config.config, Mapping):
        return dict(config.config), type(config).__name__
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if path.is_dir():
            for candidate in (path / "scheduler_config.json", path / "scheduler" / "scheduler_config.json"):
                if candidate.is_file():
                    path = candidate
                    break
            else:
                raise SchedulerConversionError(f"{path}: no scheduler_config.json (nor scheduler/scheduler_config.json)")
        return read_json(path, "a scheduler config", error=SchedulerConversionError), str(path)
    raise SchedulerConversionError(
        f"convert_scheduler expects a config dict, a scheduler, or a path; got {type(config).__name__}"
    )


def resolve_target(name: str) -> tuple[type, Mapping]:
    """(class, init options) of a diffusers class name or an A1111 sampler name (edge_sched's resolver)."""
    try:
        return resolve_scheduler(name)
    except UnknownSchedulerError as e:
        raise SchedulerConversionError(str(e)) from None


def convert_scheduler(config, target: str | None = None, *, save_to: str | os.PathLike | None = None, **overrides):
    """Turn any diffusers scheduler config into one of edge_sched's schedulers.

    ``config``: a dict, a scheduler object, a ``scheduler_config.json`` or a folder holding one.
    ``target``: a diffusers class name (default: the config's own ``_class_name``), or an A1111
    sampler name.
    ``overrides``: constructor arguments of the target (``timestep_spacing="trailing"``...);
    an unknown key is an error naming it.
    The result is validated by instantiating it and running ``set_timesteps(20)``; with
    ``save_to`` its diffusers-compatible ``scheduler_config.json`` is written into that folder.
    Returns the edge_sched scheduler.
    """
    data, origin = _read_config(config)
    if target is None:
        target = data.get("_class_name")
        if not isinstance(target, str):
            raise SchedulerConversionError(f"{origin}: no `_class_name`; name the target scheduler")
    cls, options = resolve_target(target)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]
    for key in overrides:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SchedulerConversionError(
                f"unknown override {key!r} for {cls.__name__}.{hint} Options: {', '.join(accepted)}"
            )
    try:
        scheduler = cls.from_config(data, **{**options, **overrides})
    except Exception as e:
        raise SchedulerConversionError(f"{origin}: cannot build {cls.__name__}: {e}") from e
    # dynamic shifting (FLUX, SD3.5 configs) needs a mu: the one calculate_shift gives at base_image_seq_len
    extra = {"mu": scheduler.config.get("base_shift") or 0.5} if scheduler.config.get("use_dynamic_shifting") else {}
    try:
        scheduler.set_timesteps(VALIDATION_STEPS, **extra)
    except Exception as e:
        raise SchedulerConversionError(
            f"{origin}: {cls.__name__} with this config fails set_timesteps({VALIDATION_STEPS}): {e}"
        ) from e
    if save_to is not None:
        scheduler.save_pretrained(save_to)
    return scheduler
