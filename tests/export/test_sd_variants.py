"""Image-to-image, inpainting (9-channel UNet), LCM-distilled (timestep_cond) and SDXL (two text encoders,
pooled embeddings, time ids) pipelines: exported in both formats, validated, and run by optimum's own
ORT / OV pipelines to the image diffusers' torch pipeline makes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import export

PIPELINE_CLASS = {"inpaint": "StableDiffusionInpaintPipeline", "lcm": "LatentConsistencyModelPipeline",
                  "sdxl": "StableDiffusionXLPipeline"}
SCHEDULER_CLASS = {"inpaint": "PNDMScheduler", "lcm": "LCMScheduler", "sdxl": "EulerDiscreteScheduler"}


def test_manifest_and_layout(exported_kind):
    e, m = exported_kind, exported_kind.manifest
    sdxl = e.kind == "sdxl"
    components = ["text_encoder", *(["text_encoder_2"] if sdxl else []), "unet", "vae_encoder", "vae_decoder"]
    assert sorted(m["components"]) == sorted(components)
    assert m["pipeline"] == PIPELINE_CLASS[e.kind] and m["family"] == ("sdxl" if sdxl else "sd")
    assert m["scheduler"]["class"] == SCHEDULER_CLASS[e.kind]
    assert m["tokenizer"] == "tokenizer/tokenizer.json"
    assert m.get("tokenizer_2") == ("tokenizer_2/tokenizer.json" if sdxl else None)
    for c in components:
        assert e.graph(c).is_file(), c
        numbers = m["validation"][c]
        assert numbers["threshold_rel"] == 1e-3 and 0 <= numbers["max_rel"] <= 1e-3, (c, numbers)
    index = json.loads((e.folder / "model_index.json").read_text())
    assert index["_class_name"] == PIPELINE_CLASS[e.kind]
    assert export.verify_manifest(e.folder) == []


def test_unet_inputs(exported_kind):
    e = exported_kind
    unet = {i["name"]: i for i in e.manifest["components"]["unet"]["inputs"]}
    expected = {"sample", "timestep", "encoder_hidden_states"}
    if e.kind == "lcm":
        expected.add("timestep_cond")
        assert unet["timestep_cond"]["shape"][1] == 32 and unet["timestep_cond"]["dtype"] == "float32"
    if e.kind == "sdxl":
        expected |= {"text_embeds", "time_ids"}
        assert unet["text_embeds"]["shape"][1] == 32 and unet["time_ids"]["shape"][1] == 6
        assert unet["encoder_hidden_states"]["shape"][2] == 64  # both encoders' hidden states
    assert set(unet) == expected
    assert unet["sample"]["shape"][1] == (9 if e.kind == "inpaint" else 4)
    if e.kind == "sdxl":
        te2 = [o["name"] for o in e.manifest["components"]["text_encoder_2"]["outputs"]]
        assert "text_embeds" in te2 and "last_hidden_state" in te2  # pooled projection for the UNet


def _optimum_pipeline(e):
    prefix = {"inpaint": "StableDiffusionInpaintPipeline", "lcm": "LatentConsistencyModelPipeline",
              "sdxl": "StableDiffusionXLPipeline"}[e.kind]
    if e.format == "onnx":
        import optimum.onnxruntime as ort

        return getattr(ort, "ORT" + prefix).from_pretrained(e.folder)
    import optimum.intel as ovi

    return getattr(ovi, "OV" + prefix).from_pretrained(e.folder, ov_config={"INFERENCE_PRECISION_HINT": "f32"})


def test_loads_and_runs_in_optimums_pipeline(exported_kind):
    """Interop: optimum's own pipeline for the kind loads our folder; its image equals diffusers'."""
    import diffusers
    import torch

    e = exported_kind
    pipe = _optimum_pipeline(e)
    reference = getattr(diffusers, PIPELINE_CLASS[e.kind]).from_pretrained(e.source)
    reference.set_progress_bar_config(disable=True)
    size = 32
    kwargs = dict(num_inference_steps=2, height=size, width=size, output_type="np")
    if e.kind == "inpaint":
        rng = np.random.default_rng(3)
        image = rng.uniform(0, 1, (1, 3, size, size)).astype(np.float32)
        mask = np.zeros((1, 1, size, size), dtype=np.float32)
        mask[..., 8:24, 8:24] = 1
        kwargs.update(image=torch.from_numpy(image) * 2 - 1, mask_image=torch.from_numpy(mask), strength=1.0)
    if e.kind == "lcm":
        kwargs.update(guidance_scale=8.0)
    latents = torch.from_numpy(np.random.default_rng(5).standard_normal((1, 4, size // 2, size // 2)).astype(np.float32))
    got = np.asarray(pipe("a cat and the dog", latents=latents, generator=torch.Generator().manual_seed(0), **kwargs).images)
    want = reference("a cat and the dog", latents=latents, generator=torch.Generator().manual_seed(0), **kwargs).images
    assert got.shape == want.shape == (1, size, size, 3)
    assert np.max(np.abs(got - want)) <= 1e-3


@pytest.mark.parametrize("exported", ["onnx", "openvino"], indirect=True)
def test_img2img_through_the_vae_encoder(exported, tiny_sd):
    """Image-to-image from the text-to-image folder: optimum's img2img pipeline (VAE encoder graph)
    matches diffusers' StableDiffusionImg2ImgPipeline for the same image, strength and generator."""
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline

    if exported.format == "onnx":
        from optimum.onnxruntime import ORTStableDiffusionImg2ImgPipeline as Pipe

        pipe = Pipe.from_pretrained(exported.folder)
    else:
        from optimum.intel import OVStableDiffusionImg2ImgPipeline as Pipe

        pipe = Pipe.from_pretrained(exported.folder, ov_config={"INFERENCE_PRECISION_HINT": "f32"})
    reference = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    reference.set_progress_bar_config(disable=True)
    image = torch.from_numpy(np.random.default_rng(9).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32))
    kwargs = dict(image=image, strength=0.6, num_inference_steps=4, output_type="np")
    got = np.asarray(pipe("a dog", generator=torch.Generator().manual_seed(1), **kwargs).images)
    want = reference("a dog", generator=torch.Generator().manual_seed(1), **kwargs).images
    assert got.shape == want.shape == (1, 32, 32, 3)
    assert np.max(np.abs(got - want)) <= 1e-3


def test_img2img_pipeline_class_exports(tiny_sd, tmp_path):
    """A folder saved as StableDiffusionImg2ImgPipeline exports like text-to-image (same components)."""
    src = tmp_path / "src"
    shutil.copytree(tiny_sd, src)
    index = json.loads((src / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionImg2ImgPipeline"
    (src / "model_index.json").write_text(json.dumps(index))
    m = export.export_pipeline(src, tmp_path / "out", format="onnx", validate=False, progress=None)
    assert m["pipeline"] == "StableDiffusionImg2ImgPipeline" and "vae_encoder" in m["components"]
    assert json.loads((tmp_path / "out" / "model_index.json").read_text())["_class_name"] == "StableDiffusionImg2ImgPipeline"
