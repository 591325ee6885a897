"""Refuse before spending: an estimate of the memory a generation needs, against the memory available.

A 16384x16384 image or 20,000 images per prompt would run the machine into its OOM killer (on a 2-4 GB
board) long before an error; ``check_memory`` says so before the first graph call. The estimate is a
lower bound from the shapes alone, counted as the big arrays the run must hold at once:

- latents: the latents, the guided UNet input and output, the scheduler's saved model outputs and the
  step's temporaries (about 12 latent-sized float32 arrays; x2 batch under classifier-free guidance);
- UNet activations at full latent resolution: a few feature maps of the first block's width
  (``block_out_channels[0]``), and the attention scores of one head when that block attends
  ((h*w)^2 per image: what makes large sizes explode);
- VAE decoder activations at image resolution (its first block's width) and its mid-block attention;
- the images: decoded float32, the 8-bit copies and the grid;
- in low-memory mode the largest graph, which is loaded only when its stage comes.

Available memory is the kernel's ``MemAvailable``, or the cgroup's limit minus its use when that is
smaller (containers). Where neither is known the check is skipped.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

_F32 = 4
_LATENT_COPIES = 12
_FEATURE_MAPS = 4  # live full-resolution feature maps of a conv block (input, output, norm, skip)


@dataclasses.dataclass
class MemoryEstimate:
    total: int
    parts: dict[str, int]

    def describe(self, top: int = 3) -> str:
        biggest = sorted(self.parts.items(), key=lambda kv: -kv[1])[:top]
        return ", ".join(f"{name} {format_bytes(size)}" for name, size in biggest if size)


class NotEnoughMemoryError(MemoryError):
    """The estimate for this call is larger than the memory available (``--no-memory-check`` overrides)."""


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit in ("B", "KiB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory(root: str = "/") -> int | None:
    """Bytes this process can still get: MemAvailable, bounded by a cgroup (v2 or v1) limit. ``root``: where
    /proc and /sys are (tests)."""
    available = None
    try:
        with open(os.path.join(root, "proc/meminfo")) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory.current"),
                                   ("sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(os.path.join(root, limit_file)), _read_int(os.path.join(root, usage_file))
        if limit is not None and usage is not None and limit < 1 << 60:
            room = max(limit - usage, 0)
            available = room if available is None else min(available, room)
            break
    if available is None and root == "/" and hasattr(os, "sysconf"):
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            pass
    return available


def _pair(value, default):
    if value is None:
        return default
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


def _first_block(config: dict) -> tuple[int, bool]:
    """(width of the UNet's first block, whether that block attends)."""
    widths = config.get("block_out_channels") or [64]
    blocks = config.get("down_block_types") or []
    return int(widths[0]), bool(blocks) and "Attn" in str(blocks[0])


def estimate(pipe, kwargs: dict) -> MemoryEstimate | None:
    """The estimate for ``pipe(**kwargs)`` (the generate command's call), or None where the pipeline's shapes
    are not known here."""
    from .unconditional import UnconditionalPipelineBase

    per_prompt = int(kwargs.get("num_images_per_prompt", 1))
    parts: dict[str, int] = {}
    if isinstance(pipe, UnconditionalPipelineBase):
        config = pipe.unet_config
        prompt = kwargs.get("prompt")
        images = (len(pipe.labels_from_prompt(prompt)) if prompt else int(kwargs.get("batch_size", 1))) * per_prompt
        guidance = kwargs.get("guidance_scale", pipe.default_guidance_scale)
        guided = guidance > 1 and getattr(pipe, "_class_info", lambda: None)() is not None
        h, w = _pair(config.get("sample_size"), (64, 64))
        channels = int(config.get("in_channels") or 3)
        latent_hw, image_hw, vae = (h, w), (h, w), None
    else:
        unet_config = getattr(pipe, "unet_config", None)
        if unet_config is None or not hasattr(pipe, "vae_scale_factor"):
            return None
        config = unet_config
        if "image" in kwargs:  # image-to-image: the init image's size, rounded down
            image = kwargs["image"]
            f = pipe.vae_scale_factor
            height, width = image.height - image.height % f, image.width - image.width % f
        else:
            height, width = pipe._default_size(kwargs.get("height"), kwargs.get("width"))
        images = per_prompt * (len(kwargs["prompt"]) if isinstance(kwargs.get("prompt"), list) else 1)
        guidance = kwargs.get("guidance_scale", 7.5)
        guided = guidance > 1 and getattr(pipe, "time_cond_proj_dim", None) is None
        f = pipe.vae_scale_factor
        latent_hw, image_hw = (height // f, width // f), (height, width)
        channels = int(getattr(pipe, "latent_channels", 4))
        vae = getattr(pipe, "vae_config", {}) or {}
    batch = images * (2 if guided else 1)
    tokens = latent_hw[0] * latent_hw[1]
    parts["latents"] = _LATENT_COPIES * batch * channels * tokens * _F32
    width0, attends = _first_block(config)
    unet = _FEATURE_MAPS * batch * width0 * tokens * _F32
    if attends:  # one head's scores: a lower bound (fused attention may avoid the other heads' copies)
        unet += batch * tokens * tokens * _F32
    parts["UNet activations"] = unet
    pixels = image_hw[0] * image_hw[1]
    if vae is not None:
        vae_width = int((vae.get("block_out_channels") or [128])[0])
        parts["VAE decoder activations"] = 3 * images * vae_width * pixels * _F32 + images * tokens * tokens * _F32
    grid = 1 if images == 1 else 2
    parts["images"] = images * pixels * 3 * (2 * _F32 + 1 + grid)
    if getattr(getattr(pipe, "components", None), "low_memory", False):
        sizes = [pipe.components.size_on_disk(n) for n in pipe.components.names]
        parts["largest graph (low-memory mode)"] = max(sizes, default=0)
    # the UNet and the VAE decoder run one after the other; latents and images stay
    stage = max(parts.get("UNet activations", 0), parts.get("VAE decoder activations", 0))
    total = parts["latents"] + stage + parts["images"] + parts.get("largest graph (low-memory mode)", 0)
    return MemoryEstimate(total, parts)


def check_memory(pipe, kwargs: dict, *, options: str = "", available: int | None = None) -> MemoryEstimate | None:
    """Raise NotEnoughMemoryError when the estimate for ``pipe(**kwargs)`` exceeds the available memory;
    ``options`` names what the user chose (``--size 16384x16384``) in the message."""
    result = estimate(pipe, kwargs)
    available = available_memory() if available is None else available
    if result is None or available is None or result.total <= available:
        return result
    what = f"{options} needs" if options else "this generation needs"
    raise NotEnoughMemoryError(
        f"{what} at least {format_bytes(result.total)} of memory ({result.describe()}) and "
        f"{format_bytes(available)} is available: choose a smaller size or fewer images, or pass "
        f"--no-memory-check if you know better"
    )
