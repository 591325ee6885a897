"""diffusers' DDPMPipeline / DDIMPipeline (UNet2DModel, pixel space) against ours on the exported UNet:
same seed, same images (max abs pixel difference <= 1e-3, images in [0, 1])."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_sched.pipelines import DDIMPipeline, DDPMPipeline, DiffusionPipeline
from tests.export.tiny import build_tiny_ddpm

from .conftest import IMAGE_PARITY

BOUND = 1e-3


@pytest.fixture(scope="module", params=[("ddpm", "onnx"), ("ddim", "onnx"), ("ddim", "openvino")],
                ids=lambda p: "-".join(p))
def folders(request, tmp_path_factory):
    import export

    kind, fmt = request.param
    src = build_tiny_ddpm(tmp_path_factory.mktemp(f"{kind}_src") / "model", ddim=kind == "ddim")
    out = tmp_path_factory.mktemp(f"{kind}_{fmt}") / "model"
    export.export_pipeline(src, out, format=fmt, progress=None)
    return kind, fmt, src, out


def test_unconditional_matches_diffusers(folders):
    import diffusers

    kind, fmt, src, out = folders
    ours = DiffusionPipeline.from_pretrained(out)
    assert type(ours) is {"ddpm": DDPMPipeline, "ddim": DDIMPipeline}[kind]
    ours.set_progress_bar_config(disable=True)
    ref = getattr(diffusers, f"{kind.upper()}Pipeline").from_pretrained(src)
    ref.set_progress_bar_config(disable=True)
    kwargs = dict(batch_size=2, num_inference_steps=8, output_type="np")
    if kind == "ddim":
        kwargs["eta"] = 0.5  # stochastic: noise drawn from the generator at every step
    a = ours(generator=11, **kwargs).images
    b = ref(generator=torch.Generator().manual_seed(11), **kwargs).images
    assert a.shape == b.shape == (2, 16, 16, 3)
    diff = float(np.abs(a - b).max())
    IMAGE_PARITY[f"{kind.upper()}Pipeline edge-{fmt}"].append(diff)
    assert diff <= BOUND
    assert b.std() > 0.01
