"""Session fixtures for the LCM, SDXL and inpainting parity tests: tiny random-weight diffusers
pipelines (tests/export/tiny.py), exported by edge-sched's export/ and by optimum's ONNX exporter,
each built lazily and once per session. Test modules import the fixtures they use from here.

``pipeline_folder(kind, how)``: kind in "lcm", "sdxl", "inpaint", "sd"; how in "source" (the diffusers
folder), "edge-onnx", "edge-openvino", "optimum-onnx".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.export.tiny import build_tiny_inpaint, build_tiny_lcm, build_tiny_sd, build_tiny_sdxl

# "sd": a plain 4-channel SD pipeline (inpainting by latent masking)
BUILDERS = {"lcm": build_tiny_lcm, "sdxl": build_tiny_sdxl, "inpaint": build_tiny_inpaint, "sd": build_tiny_sd}
OPTIMUM_TASKS = {"lcm": "text-to-image", "sdxl": "text-to-image", "inpaint": "inpainting", "sd": "inpainting"}
HOWS = ("source", "edge-onnx", "edge-openvino", "optimum-onnx")

_CACHE: dict[tuple[str, str], Path] = {}


@pytest.fixture(scope="session")
def pipeline_folder(tmp_path_factory):
    def get(kind: str, how: str) -> Path:
        if how not in HOWS or kind not in BUILDERS:
            raise ValueError(f"unknown folder ({kind!r}, {how!r}); kinds {sorted(BUILDERS)}, hows {HOWS}")
        key = (kind, how)
        if key in _CACHE:
            return _CACHE[key]
        out = tmp_path_factory.mktemp(f"{kind}-{how}") / "model"
        if how == "source":
            BUILDERS[kind](out)
        elif how.startswith("edge-"):
            import export

            export.export_pipeline(get(kind, "source"), out, format=how.removeprefix("edge-"), progress=None)
        else:
            from optimum.exporters.onnx import main_export

            main_export(str(get(kind, "source")), str(out), task=OPTIMUM_TASKS[kind])
        _CACHE[key] = out
        return out

    return get


def load_ours(cls, folder: Path):
    pipe = cls.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    pipe.base_scheduler_config = pipe.scheduler.config
    return pipe


def load_reference(cls, folder: Path, **kwargs):
    pipe = cls.from_pretrained(folder, **kwargs)
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


def sample_image(size: int = 32, seed: int = 3):
    """A smooth RGB test picture with some noise (PIL)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / (size - 1.0)
    pixels = np.stack([x, y, 0.5 + 0.3 * np.sin(6 * x * y)], axis=-1) + 0.05 * rng.standard_normal((size, size, 3))
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))


def rename_graph_input(folder: Path, component: str, old: str, new: str) -> None:
    """Rename one input of an ONNX graph in place (a graph that lacks the input a pipeline needs)."""
    import onnx

    path = folder / component / "model.onnx"
    model = onnx.load(str(path))
    for node in model.graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
    next(i for i in model.graph.input if i.name == old).name = new
    onnx.save(model, str(path))
