"""The config fixes diffusers makes when it builds a Stable Diffusion pipeline, so that an older Hub
config gives the same image here as there.

diffusers' SD pipelines (text-to-image, image-to-image, inpainting; not SDXL, LCM, DDPM or DDIM)
rewrite what their constructor is given, with a ``FutureWarning``:

- a scheduler config with ``steps_offset`` other than 1 gets 1 ("leading" timesteps shift by one);
- text-to-image and image-to-image: ``clip_sample: true`` becomes false (x0 clipping to [-1, 1] off);
- inpainting: ``skip_prk_steps: false`` becomes true (PNDM's Runge-Kutta warm-up steps skipped);
- a UNet config written by diffusers before 0.9 with an integer ``sample_size`` under 64 gets 64
  (the default image size follows it).

The scheduler and the UNet config are changed in place, as diffusers changes them (a scheduler the
caller keeps sees the fix too); assigning ``pipe.scheduler = ...`` afterwards is not fixed, in
diffusers either.
"""

from __future__ import annotations

import re
import warnings

#: the fixes each pipeline class makes (diffusers' per-class lists)
SCHEDULER_FIXES = {
    "steps_offset": ("steps_offset", 1, lambda v: v != 1),
    "clip_sample": ("clip_sample", False, lambda v: v is True),
    "skip_prk_steps": ("skip_prk_steps", True, lambda v: v is False),
}


def _warn(message: str) -> None:
    warnings.warn(message, FutureWarning, stacklevel=4)


def fix_scheduler_config(scheduler, fixes: tuple[str, ...]) -> None:
    """Apply ``fixes`` (names of SCHEDULER_FIXES) to ``scheduler``'s config in place, warning for each."""
    if scheduler is None:
        return
    for name in fixes:
        key, good, outdated = SCHEDULER_FIXES[name]
        if key not in scheduler.config or not outdated(scheduler.config[key]):
            continue
        _warn(f"{type(scheduler).__name__}'s config has {key}={scheduler.config[key]!r}, an outdated value; the "
              f"pipeline uses {key}={good!r}, as diffusers' pipeline does (the same image as diffusers). Update "
              f"the scheduler_config.json to {key}: {str(good).lower()} to silence this warning.")
        # diffusers replaces the config dict without re-running __init__; so do we (set_timesteps reads it)
        scheduler._register_hidden({key: good})


def _version_below(version, major: int, minor: int) -> bool:
    match = re.match(r"(\d+)\.(\d+)", str(version or ""))
    return bool(match) and (int(match[1]), int(match[2])) < (major, minor)


def fix_unet_sample_size(unet_config: dict, where: str, require_int: bool = True) -> None:
    """diffusers' fix of UNet configs from before 0.9 with ``sample_size`` < 64 (in place). The
    inpainting pipeline compares without checking the type first; the others only for an int."""
    size = unet_config.get("sample_size")
    if not _version_below(unet_config.get("_diffusers_version"), 0, 9):
        return
    if require_int and (not isinstance(size, int) or isinstance(size, bool)):
        return
    if not isinstance(size, (int, float)) or size >= 64:
        return
    _warn(f"{where}: the UNet config (diffusers {unet_config.get('_diffusers_version')}) has sample_size={size}, "
          "which old SD 1.x configs got wrong; the pipeline uses 64 (512x512 images by default), as diffusers' "
          "pipeline does. Set sample_size to 64 in unet/config.json to silence this warning.")
    unet_config["sample_size"] = 64
