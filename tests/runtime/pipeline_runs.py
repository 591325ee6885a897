"""Running one of our pipelines and diffusers' on the same call, and recording how far apart the images are.

``run_both`` is the one way the runtime tests compare a pipeline with diffusers': both get the named
scheduler made from their own folder's scheduler config plus the same overrides, diffusers a
``torch.Generator().manual_seed(s)`` per seed and ours the seeds themselves (TorchGenerator(s)).
torch is imported lazily: conftest.py imports this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: call arguments diffusers takes as torch tensors (ours take the numpy arrays)
TORCH_ARGUMENTS = ("latents", "prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds",
                   "negative_pooled_prompt_embeds")


#: low-memory mode against the default on the same graphs: it runs the denoiser one row at a time, and ONNX
#: Runtime rounds a 1-row and a 2-row product differently in the last bits (measured 8.3e-7 on the tiny SD)
LOW_MEMORY_ROUNDING = 1e-5

def load_ours(cls, folder: Path, **options):
    pipe = cls.from_pretrained(folder, **options)
    pipe.set_progress_bar_config(disable=True)
    pipe.base_scheduler_config = pipe.scheduler.config
    return pipe


def load_reference(cls, folder: Path, **options):
    pipe = cls.from_pretrained(folder, **options)
    pipe.set_progress_bar_config(disable=True)
    pipe.base_scheduler_config = pipe.scheduler.config
    return pipe


def set_schedulers(reference, pipe, scheduler: str, overrides: dict) -> None:
    """Both pipelines get ``scheduler`` made from their folder's own scheduler config plus ``overrides``."""
    import diffusers

    from edge_sched.schedulers import scheduler_class

    reference.scheduler = getattr(diffusers, scheduler).from_config(reference.base_scheduler_config, **overrides)
    pipe.scheduler = scheduler_class(scheduler).from_config(pipe.base_scheduler_config, **overrides)


def torch_generators(seed):
    import torch

    if isinstance(seed, list):
        return [torch.Generator().manual_seed(s) for s in seed]
    return torch.Generator().manual_seed(seed)


def as_pixels(images) -> np.ndarray:
    """[N, H, W, C] floats in [0, 1]; PIL images as their 8-bit levels / 255."""
    if isinstance(images, list) and images and hasattr(images[0], "getpixel"):
        return np.stack([np.asarray(image, np.float32) / 255 for image in images])
    return np.asarray(images)


def run_both(reference, pipe, scheduler: str, overrides: dict | None = None, seed=None, **call):
    """diffusers' ``reference`` then our ``pipe`` on ``call`` (output_type "np" unless given). ``seed``: an
    int, a list (one generator per image) or None (no generator). Returns (ours, ref) as ``as_pixels``."""
    import torch

    set_schedulers(reference, pipe, scheduler, overrides or {})
    call.setdefault("output_type", "np")
    # each pipeline gets its own copy of an array argument
    ours_call = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in call.items()}
    ref_call = {k: torch.from_numpy(v.copy()) if k in TORCH_ARGUMENTS and isinstance(v, np.ndarray)
                else v.copy() if isinstance(v, np.ndarray) else v for k, v in call.items()}
    if seed is not None:
        ref_call["generator"] = torch_generators(seed)
        ours_call["generator"] = seed
    ref = reference(**ref_call).images
    ours = pipe(**ours_call).images
    return as_pixels(ours), as_pixels(ref)


def record(key: str, ours: np.ndarray, ref: np.ndarray) -> float:
    """The max abs pixel difference, kept under ``key`` for the terminal summary (conftest.IMAGE_PARITY)."""
    from .conftest import IMAGE_PARITY

    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY[key].append(diff)
    return diff


def sample_image(size: int = 32, seed: int = 3):
    """A smooth RGB test picture with some noise (PIL)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / (size - 1.0)
    pixels = np.stack([x, y, 0.5 + 0.3 * np.sin(6 * x * y)], axis=-1) + 0.05 * rng.standard_normal((size, size, 3))
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))


def square_mask(size: int = 32):
    """An inpainting mask (PIL, mode L): white (repaint) on rows 8:24, columns 4:20 of 32."""
    from PIL import Image

    mask = np.zeros((size, size), np.uint8)
    mask[size // 4:size * 3 // 4, size // 8:size * 5 // 8] = 255
    return Image.fromarray(mask)


def given_latents(shape=(1, 4, 16, 16), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def rename_graph_input(folder: Path, component: str, old: str, new: str) -> None:
    """Rename one input of an ONNX graph in place (a graph that lacks the input a pipeline needs)."""
    import onnx

    path = folder / component / "model.onnx"
    model = onnx.load(str(path))
    for node in model.graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
    next(i for i in model.graph.input if i.name == old).name = new
    onnx.save(model, str(path))
