"""What ``generate`` records of a run in A1111's words: the sampler and schedule type a scheduler's config
stands for (read off the scheduler that ran, not off the name typed), the model's name and its hash.

Model hash: A1111 writes the first 10 hex digits of the sha256 of the checkpoint file. An exported folder
has no single checkpoint; its equivalent here is the denoiser's weights file: the largest graph or weights
file in ``unet/`` (or ``transformer/``): ``model.onnx`` itself, or its external data (``model.onnx_data``,
``weights.pb``), or OpenVINO's ``openvino_model.bin``. Hashes are cached by path, size and mtime in
``$XDG_CACHE_HOME/edge_sched/model_hashes.json`` (as A1111 caches its own), so a large UNet is read once.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path

from ..schedulers import schedule_types
from ..schedulers.a1111 import A1111_EXTRA_SAMPLERS, A1111_SAMPLERS

#: keys whose class default an A1111 name implies although its row does not set them (DPM++ 2M is order 2)
_IMPLIED = {"DPMSolverMultistepScheduler": ("solver_order",), "DPMSolverSinglestepScheduler": ("solver_order",)}
_DENOISERS = ("unet", "transformer")
_WEIGHT_SUFFIXES = (".onnx", ".onnx_data", ".data", ".pb", ".bin")


def _sampler_rows() -> dict[str, list]:
    """Scheduler class name -> the A1111 rows of the sampler alone (no schedule type in the name)."""
    rows: dict[str, list] = {}
    for row in [*A1111_SAMPLERS.values(), *A1111_EXTRA_SAMPLERS.values()]:
        if schedule_types.split_schedule_suffix(row.name)[1] is None:
            rows.setdefault(row.scheduler, []).append(row)
    return rows


def a1111_sampler_name(scheduler) -> str:
    """A1111's name of the sampler this scheduler runs ("DPM++ 2M", "Euler a"), or its class name when no
    A1111 sampler is this method with these settings (DPM-Solver of order 3, algorithm "dpmsolver"...)."""
    cls = type(scheduler)
    rows = _sampler_rows().get(cls.__name__, [])
    params = inspect.signature(cls.__init__).parameters
    keys = {k for row in rows for k in row.options} | set(_IMPLIED.get(cls.__name__, ()))
    keys = {k for k in keys if k in params and k not in schedule_types.SIGMA_FLAGS}
    for row in rows:
        wanted = {k: row.options.get(k, params[k].default) for k in keys}
        if all(scheduler.config.get(k) == v for k, v in wanted.items()):
            return row.name
    return cls.__name__


def a1111_schedule_type(scheduler, requested: str | None = None) -> str:
    """The schedule type label of this scheduler's config; ``requested`` (the label asked for) where it is
    one of two names of the same options (Simple / SGM Uniform, Normal / Uniform) or "Automatic"."""
    cls = type(scheduler)
    derived = schedule_types.label_of(scheduler.config, cls)
    if requested == schedule_types.AUTOMATIC and derived == schedule_types.AUTOMATIC:
        return requested
    if requested in schedule_types.SCHEDULE_TYPES:
        options = schedule_types.options_for(requested, cls, cls.__name__)
        if all(scheduler.config.get(k) == v for k, v in options.items()):
            return requested
    return derived


def schedule_infotext(label: str) -> dict:
    """Fields A1111 writes along with a schedule type (Beta: its distribution's alpha and beta)."""
    schedule = schedule_types.SCHEDULE_TYPES.get(label)
    return dict(schedule.infotext) if schedule else {}


def model_name(model) -> str:
    """A1111 records the checkpoint's file name without folder and suffix: here the folder's own name, the
    repository's name of a Hub id, or a built-in model's name."""
    text = str(model)
    path = Path(text).expanduser()
    if path.exists():
        return path.resolve().name
    return text.rstrip("/").rsplit("/", 1)[-1]


def denoiser_weights(folder: str | os.PathLike) -> Path | None:
    """The file whose hash stands for the model (see the module's docstring), or None."""
    for sub in _DENOISERS:
        files = [p for p in (Path(folder) / sub).glob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES]
        if files:
            return max(files, key=lambda p: (p.stat().st_size, p.name))
    return None


def model_hash(folder: str | os.PathLike) -> str | None:
    """First 10 hex digits of the sha256 of ``denoiser_weights(folder)``; None without one."""
    path = denoiser_weights(folder)
    if path is None:
        return None
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = f"{real}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge_sched" / "model_hashes.json"
    cache = _read_cache(cache_file)
    if key not in cache:
        digest = hashlib.sha256()
        with open(real, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        cache[key] = digest.hexdigest()
        _write_cache(cache_file, cache)
    return cache[key][:10]


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, cache: dict) -> None:
    """Best effort: a read-only home only costs hashing again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


__all__ = ["a1111_sampler_name", "a1111_schedule_type", "denoiser_weights", "model_hash", "model_name",
           "schedule_infotext"]
