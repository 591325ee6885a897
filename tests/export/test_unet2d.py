"""Unconditional and class-conditional UNet2DModel pipelines (DDPMPipeline / DDIMPipeline), exported
directly with torch.onnx.export / openvino.convert_model into optimum's layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

import export
from export.backends import BACKENDS
from export.errors import ExportError

from .conftest import GRAPH_FILE


def test_layout_and_manifest(exported_unet2d):
    e, m = exported_unet2d, exported_unet2d.manifest
    pipeline = "DDPMPipeline" if e.kind == "uncond" else "DDIMPipeline"
    scheduler = "DDPMScheduler" if e.kind == "uncond" else "DDIMScheduler"
    index = json.loads((e.folder / "model_index.json").read_text())
    assert index["_class_name"] == pipeline
    assert index["unet"] == ["diffusers", "UNet2DModel"] and index["scheduler"] == ["diffusers", scheduler]
    assert set(index) - {"_class_name", "_diffusers_version", "_name_or_path"} == {"unet", "scheduler"}
    assert e.graph("unet").is_file() and (e.folder / "unet" / "config.json").is_file()
    assert (e.folder / "scheduler" / "scheduler_config.json").is_file()
    assert sorted(p.name for p in e.folder.iterdir() if p.is_dir()) == ["scheduler", "unet"]
    assert m["pipeline"] == pipeline and m["family"] == "unet2d" and m["tokenizer"] is None
    assert m["scheduler"]["class"] == scheduler and m["static_shapes"] is None
    assert list(m["components"]) == ["unet"]
    assert export.verify_manifest(e.folder) == []
    assert any(msg.startswith("[1/1] unet: exported in") for msg in e.messages), e.messages


def test_graph_interface(exported_unet2d):
    """Names, dtypes and dynamic axes as documented in export/direct.py, as the engine reports them."""
    e = exported_unet2d
    unet = e.manifest["components"]["unet"]
    names = [i["name"] for i in unet["inputs"]]
    assert names == (["sample", "timestep"] if e.kind == "uncond" else ["sample", "timestep", "class_labels"])
    spec = {i["name"]: i for i in unet["inputs"]}
    dynamic = (lambda d: d is None) if e.format == "openvino" else (lambda d: isinstance(d, str))
    sample = spec["sample"]["shape"]
    assert sample[1] == 3 and all(dynamic(sample[i]) for i in (0, 2, 3)), sample
    assert spec["sample"]["dtype"] == "float32"
    assert len(spec["timestep"]["shape"]) == 1 and dynamic(spec["timestep"]["shape"][0])
    assert spec["timestep"]["dtype"] == "float32"  # fractional timesteps (Karras...) must not be truncated
    if e.kind == "class":
        assert spec["class_labels"]["dtype"] == "int64" and len(spec["class_labels"]["shape"]) == 1
    assert [o["name"] for o in unet["outputs"]] == ["out_sample"]
    assert unet["outputs"][0]["dtype"] == "float32"


def test_validation_recorded(exported_unet2d):
    numbers = exported_unet2d.manifest["validation"]["unet"]
    assert numbers["threshold_rel"] == 1e-3 and 0 <= numbers["max_rel"] <= 1e-3, numbers
    assert numbers["outputs"] == ["out_sample"]


def test_graph_matches_torch_on_other_shapes(exported_unet2d):
    """Batch 3 at 24x32 with one timestep (and class) per item, and a single timestep broadcast over the
    batch, against the source's UNet2DModel."""
    import torch
    from diffusers import UNet2DModel

    e = exported_unet2d
    unet = UNet2DModel.from_pretrained(e.source / "unet").eval()
    run = BACKENDS[e.format].runner(e.graph("unet"))
    rng = np.random.default_rng(7)
    sample = rng.standard_normal((3, 3, 24, 32)).astype(np.float32)
    # integer steps, one broadcast step, and fractional ones (Karras / custom-sigma schedules give those)
    for timestep in (np.array([999, 500, 1], np.float32), np.array([250], np.float32),
                     np.array([749.99994, 250.5, 3.25], np.float32)):
        inputs = {"sample": sample, "timestep": timestep}
        kwargs = {}
        if e.kind == "class":
            inputs["class_labels"] = np.array([0, 9, 4], dtype=np.int64)
            kwargs["class_labels"] = torch.from_numpy(inputs["class_labels"])
        with torch.inference_mode():
            ref = unet(torch.from_numpy(sample), torch.from_numpy(timestep), **kwargs).sample.numpy()
        got = run(inputs)["out_sample"]
        assert got.shape == ref.shape == (3, 3, 24, 32)
        assert np.max(np.abs(got - ref)) <= 1e-3 * np.max(np.abs(ref)), timestep


@pytest.mark.parametrize("exported_unet2d", [("class", "onnx"), ("class", "openvino")], indirect=True)
def test_class_labels_change_the_output(exported_unet2d):
    """The class input is wired (not constant-folded away in tracing)."""
    e = exported_unet2d
    run = BACKENDS[e.format].runner(e.graph("unet"))
    sample = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    outs = [run({"sample": sample, "timestep": np.array([10], np.float32), "class_labels": np.array([c])})["out_sample"]
            for c in (1, 2)]
    assert np.max(np.abs(outs[0] - outs[1])) > 1e-4


def test_scheduler_config_loads_in_diffusers(exported_unet2d):
    import diffusers

    e = exported_unet2d
    name = e.manifest["scheduler"]["class"]
    theirs = getattr(diffusers, name).from_pretrained(e.folder / "scheduler")
    ours = export.convert_scheduler(e.folder / "scheduler")
    assert type(ours).__name__ == name
    theirs.set_timesteps(10)
    ours.set_timesteps(10)
    np.testing.assert_array_equal(ours.timesteps, theirs.timesteps.numpy())


@pytest.mark.parametrize("exported_unet2d", [("uncond", "onnx")], indirect=True)
def test_pipeline_loop_matches_diffusers(exported_unet2d):
    """A 3-step DDPM/DDIM loop with diffusers' scheduler around the graph gives diffusers' own pipeline
    image (same generator), so the folder drives a sampler like the torch model."""
    import diffusers
    import torch

    e = exported_unet2d
    pipe = diffusers.DiffusionPipeline.from_pretrained(e.source)
    pipe.set_progress_bar_config(disable=True)
    want = pipe(batch_size=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="np").images

    scheduler = getattr(diffusers, e.manifest["scheduler"]["class"]).from_pretrained(e.folder / "scheduler")
    scheduler.set_timesteps(3)
    run = BACKENDS[e.format].runner(e.graph("unet"))
    generator = torch.Generator().manual_seed(0)
    image = torch.randn((2, 3, 16, 16), generator=generator)
    for t in scheduler.timesteps:
        noise = run({"sample": image.numpy(), "timestep": np.full((2,), float(t), dtype=np.float32)})["out_sample"]
        image = scheduler.step(torch.from_numpy(noise), t, image, generator=generator).prev_sample
    got = (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= 1e-3


def test_static_shape_not_divisible(tiny_ddpm, tmp_path):
    with pytest.raises(ExportError, match="static height 17 gives a latent size 17 not divisible by the UNet's "
                                          "downsampling factor 2"):
        export.export_pipeline(tiny_ddpm, tmp_path / "o", format="onnx", progress=None,
                               static_shapes={"batch": 1, "height": 17, "width": 16})
    assert list(tmp_path.iterdir()) == []


def test_graph_file_names(exported_unet2d):
    assert exported_unet2d.manifest["components"]["unet"]["file"] == f"unet/{GRAPH_FILE[exported_unet2d.format]}"
