"""diffusers' ``diffusers.utils`` helpers scripts use around a pipeline, at ``edge_sched.utils``:
``load_image`` (a path, an http(s) URL through ``requests``, or a PIL image; EXIF orientation applied,
RGB unless ``convert_method`` says otherwise), ``make_image_grid`` (rows x cols, optional square
resize), ``numpy_to_pil`` and ``pil_to_numpy``. Needs Pillow."""

from __future__ import annotations

import io
import os
from typing import Callable

#: seconds a URL may take, as diffusers' DIFFUSERS_REQUEST_TIMEOUT (env var of the same name)
REQUEST_TIMEOUT = int(os.environ.get("DIFFUSERS_REQUEST_TIMEOUT", 60))


def load_image(image, convert_method: Callable | None = None):
    """A PIL image from a path, a URL (http:// or https://) or a PIL image, as diffusers' load_image."""
    from PIL import Image, ImageOps

    if isinstance(image, os.PathLike):
        image = os.fspath(image)
    if isinstance(image, str):
        if image.startswith(("http://", "https://")):
            import requests  # installed with huggingface_hub

            response = requests.get(image, timeout=REQUEST_TIMEOUT)
            response.raise_for_status()
            image = Image.open(io.BytesIO(response.content))
        elif os.path.isfile(image):
            image = Image.open(image)
        else:
            raise ValueError(f"Incorrect path or URL: {image!r} is not a file, and URLs start with http:// or https://")
    elif not isinstance(image, Image.Image):
        raise ValueError(f"load_image takes a path, a URL or a PIL image, got {type(image).__name__}")
    image = ImageOps.exif_transpose(image)
    return convert_method(image) if convert_method is not None else image.convert("RGB")


def make_image_grid(images: list, rows: int, cols: int, resize: int | None = None):
    """One RGB image of ``rows`` x ``cols`` tiles, filled row by row (diffusers' make_image_grid)."""
    from .pipelines.image_io import make_grid

    if resize is not None:
        images = [im.resize((resize, resize)) for im in images]
    return make_grid(list(images), rows, cols)


def numpy_to_pil(images):
    from .pipelines.image_io import numpy_to_pil as convert

    return convert(images)


def pil_to_numpy(images):
    from .pipelines.image_io import pil_to_numpy as convert

    return convert(images)


__all__ = ["load_image", "make_image_grid", "numpy_to_pil", "pil_to_numpy"]
