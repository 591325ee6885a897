"""Scheduler conversion: any diffusers scheduler config -> one of edge_sched's numpy schedulers.

Targets are diffusers class names (``EulerDiscreteScheduler``...) or, when edge_sched provides
``edge_sched.schedulers.from_a1111_name``, A1111 sampler names ("DPM++ 2M Karras"): the name picks
the class and its options (Karras sigmas, SDE, ...), ``key=value`` overrides are applied on top.
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

from .errors import SchedulerConversionError

logger = logging.getLogger(__name__)

VALIDATION_STEPS = 20


def available_schedulers() -> dict[str, type]:
    """Every scheduler class edge_sched defines, by diffusers class name."""
    from edge_sched.schedulers import SCHEDULER_CLASSES

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
        if not path.is_file():
            raise SchedulerConversionError(f"{path}: no such scheduler config file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SchedulerConversionError(f"{path}: not a readable JSON scheduler config ({e})") from e
        if not isinstance(data, dict):
            raise SchedulerConversionError(f"{path}: a scheduler config must be a JSON object")
        return data, str(path)
    raise SchedulerConversionError(
        f"convert_scheduler expects a config dict, a scheduler, or a path; got {type(config).__name__}"
    )


def _a1111_resolver():
    """edge_sched's A1111-name table, when this build has it (it comes with its own issue)."""
    try:
        from edge_sched.schedulers import from_a1111_name
    except ImportError:
        try:  # the table's module, before the package re-exports it
            from edge_sched.schedulers.a1111 import from_a1111_name
        except ImportError:
            return None
    return from_a1111_name


def resolve_target(name: str) -> type:
    classes = available_schedulers()
    if name in classes:
        return classes[name]
    close = difflib.get_close_matches(name, classes, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    a1111 = "or A1111 sampler names" if _a1111_resolver() else "A1111 names are not supported in this build"
    raise SchedulerConversionError(
        f"unknown scheduler {name!r}.{hint} Known schedulers (diffusers class names, {a1111}): "
        f"{', '.join(sorted(classes))}"
    )


def _from_a1111(name: str, data: dict, origin: str):
    """((class, config), None) for an A1111 sampler name; (None, why) when ``name`` is not one (or there
    is no table: why is None)."""
    resolver = _a1111_resolver()
    if resolver is None:
        return None, None
    try:
        scheduler = resolver(name, data)
    except (KeyError, ValueError, LookupError) as e:
        return None, str(e).strip("'\"")  # not an A1111 name either
    except Exception as e:
        raise SchedulerConversionError(f"{origin}: cannot build the A1111 sampler {name!r}: {e}") from e
    return (type(scheduler), dict(scheduler.config)), None


def convert_scheduler(config, target: str | None = None, *, save_to: str | os.PathLike | None = None, **overrides):
    """Turn any diffusers scheduler config into one of edge_sched's schedulers.

    ``config``: a dict, a scheduler object, a ``scheduler_config.json`` or a folder holding one.
    ``target``: a diffusers class name (default: the config's own ``_class_name``), or an A1111
    sampler name when edge_sched has the table (``from_a1111_name``).
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
    classes = available_schedulers()
    a1111, why = (None, None) if target in classes else _from_a1111(target, data, origin)
    if a1111 is not None:
        cls, data = a1111  # the sampler's class with its options; the overrides go on top
    else:
        try:
            cls = resolve_target(target)
        except SchedulerConversionError as e:
            if why:  # the A1111 table's own hint ("Did you mean 'DPM++ 2M Karras'?")
                raise SchedulerConversionError(f"{e} As an A1111 name: {why}") from None
            raise
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]
    for key in overrides:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SchedulerConversionError(
                f"unknown override {key!r} for {cls.__name__}.{hint} Options: {', '.join(accepted)}"
            )
    try:
        scheduler = cls.from_config(data, **overrides)
    except Exception as e:
        raise SchedulerConversionError(f"{origin}: cannot build {cls.__name__}: {e}") from e
    try:
        scheduler.set_timesteps(VALIDATION_STEPS)
    except Exception as e:
        raise SchedulerConversionError(
            f"{origin}: {cls.__name__} with this config fails set_timesteps({VALIDATION_STEPS}): {e}"
        ) from e
    if save_to is not None:
        scheduler.save_pretrained(save_to)
    return scheduler
