"""Single-file checkpoints (.safetensors in the original LDM layout) with a local diffusers config folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import export
from export.backends import BACKENDS
from export.errors import SourceError

from .ldm_checkpoint import sd_to_ldm_checkpoint


@pytest.fixture(scope="session")
def single_file(tiny_sd, tmp_path_factory):
    """(checkpoint, config folder without weights) made from the tiny SD pipeline."""
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("single")
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    checkpoint = root / "tiny-sd.safetensors"
    save_file(sd_to_ldm_checkpoint(pipe), str(checkpoint))
    config = root / "config"
    shutil.copytree(tiny_sd, config)
    for weights in config.rglob("*.safetensors"):
        weights.unlink()
    return checkpoint, config


def test_single_file_export_reproduces_the_original(single_file, tiny_sd, tmp_path):
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    checkpoint, config = single_file
    out = tmp_path / "out"
    m = export.export_pipeline(checkpoint, out, format="onnx", config=config, progress=None)
    assert m["source"] == {"id": str(checkpoint), "kind": "single_file", "revision": None}
    assert m["pipeline"] == "StableDiffusionPipeline" and m["scheduler"]["class"] == "PNDMScheduler"
    assert all(v["max_rel"] <= 1e-3 for v in m["validation"].values())
    assert export.verify_manifest(out) == []
    # against the original folder's modules, not the single-file load: the weights really came through
    rng = np.random.default_rng(4)
    sample = rng.standard_normal((2, 4, 16, 16)).astype(np.float32)
    hidden = rng.standard_normal((2, 77, 32)).astype(np.float32)
    ids = rng.integers(0, 80, (1, 77)).astype(np.int64)
    unet = UNet2DConditionModel.from_pretrained(tiny_sd / "unet").eval()
    text = CLIPTextModel.from_pretrained(tiny_sd / "text_encoder").eval()
    with torch.inference_mode():
        ref_unet = unet(torch.from_numpy(sample), 500, encoder_hidden_states=torch.from_numpy(hidden)).sample.numpy()
        ref_text = text(torch.from_numpy(ids)).last_hidden_state.numpy()
    got_unet = BACKENDS["onnx"].runner(out / "unet" / "model.onnx")(
        {"sample": sample, "timestep": np.array(500, dtype=np.float32), "encoder_hidden_states": hidden})["out_sample"]
    got_text = BACKENDS["onnx"].runner(out / "text_encoder" / "model.onnx")({"input_ids": ids})["last_hidden_state"]
    for got, ref in ((got_unet, ref_unet), (got_text, ref_text)):
        assert np.max(np.abs(got - ref)) <= 1e-3 * np.max(np.abs(ref))


def test_single_file_errors(single_file, tiny_sd, tmp_path):
    checkpoint, config = single_file
    out = tmp_path / "out"
    with pytest.raises(SourceError, match="a single-file checkpoint needs config=<local diffusers folder> \\(--config\\)"):
        export.export_pipeline(checkpoint, out, format="onnx", progress=None)
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"not really")
    with pytest.raises(SourceError, match="model.ckpt: a pickle checkpoint.*allow_pickle=True"):
        export.export_pipeline(pickle, out, format="onnx", config=config, progress=None)
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(SourceError, match="notes.txt: is a file but not a checkpoint"):
        export.export_pipeline(other, out, format="onnx", progress=None)
    with pytest.raises(SourceError, match="--config applies to single-file checkpoints"):
        export.export_pipeline(tiny_sd, out, format="onnx", config=config, progress=None)
    with pytest.raises(SourceError, match="the config for tiny-sd.safetensors must be a local diffusers folder"):
        export.export_pipeline(checkpoint, out, format="onnx", config=tmp_path / "nope", progress=None)
    assert not out.exists()
