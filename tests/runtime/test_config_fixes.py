"""diffusers' pipeline-build fixes of old configs (steps_offset -> 1, clip_sample -> False, inpainting's
skip_prk_steps -> True, the pre-0.9 UNet sample_size -> 64): the same image as diffusers from the same
old config, loaded from the folder or given as ``scheduler=``, with a FutureWarning each.
Bound: max abs pixel difference at most 1e-3, images in [0, 1]."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import torch

import diffusers
from edge_sched import DDIMScheduler, PNDMScheduler
from edge_sched.pipelines import StableDiffusionInpaintPipeline, StableDiffusionPipeline

from .conftest import IMAGE_PARITY
from .pipeline_runs import sample_image

BOUND = 1e-3
OLD_DDIM = {"_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
            "beta_schedule": "scaled_linear", "clip_sample": True, "set_alpha_to_one": False,
            "steps_offset": 0, "num_train_timesteps": 1000}


def _with_config(folder, out, component: str, file: str, edit):
    """A copy of ``folder`` whose ``component/file`` JSON is replaced by ``edit(old)``."""
    shutil.copytree(folder, out)
    path = out / component / file
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return out


def _old_scheduler(folder, out):
    _with_config(folder, out, "scheduler", "scheduler_config.json", lambda old: dict(OLD_DDIM))
    index = json.loads((out / "model_index.json").read_text())
    (out / "model_index.json").write_text(json.dumps({**index, "scheduler": ["diffusers", "DDIMScheduler"]}))
    return out


def _images(reference, pipe, seed=5, **kwargs):
    ref = reference("a cat", generator=torch.Generator().manual_seed(seed), output_type="np", **kwargs).images
    ours = pipe("a cat", generator=seed, output_type="np", **kwargs).images
    return np.asarray(ours), np.asarray(ref)


def _check(ours, ref, key):
    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY[key].append(diff)
    assert ours.shape == ref.shape
    assert diff <= BOUND, f"{key}: max abs pixel difference {diff:.3g}"
    assert ref.std() > 0.01, "the reference image is flat: the test would prove nothing"
    return diff


def _load(cls, folder, **kwargs):
    with pytest.warns(FutureWarning) as record:
        pipe = cls.from_pretrained(folder, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe, " ".join(str(w.message) for w in record)


@pytest.fixture(scope="module")
def old_folders(sd_folders, tmp_path_factory):
    root = tmp_path_factory.mktemp("old-config")
    return _old_scheduler(sd_folders("source"), root / "src"), _old_scheduler(sd_folders("edge-onnx"), root / "onnx")


def test_old_scheduler_config_in_the_folder_gives_diffusers_image(old_folders):
    source, folder = old_folders
    reference, ref_warnings = _load(diffusers.StableDiffusionPipeline, source)
    pipe, our_warnings = _load(StableDiffusionPipeline, folder)
    for text in (ref_warnings, our_warnings):
        assert "steps_offset" in text and "clip_sample" in text
    assert pipe.scheduler.config.steps_offset == reference.scheduler.config.steps_offset == 1
    assert pipe.scheduler.config.clip_sample is reference.scheduler.config.clip_sample is False
    reference.set_progress_bar_config(disable=True)
    ours, ref = _images(reference, pipe, num_inference_steps=4)
    _check(ours, ref, "config fixes: old scheduler config in the folder")

    # without the fix (the old config assigned after building, which neither library fixes) the image moves
    pipe.scheduler = DDIMScheduler.from_config(OLD_DDIM)
    reference.scheduler = diffusers.DDIMScheduler.from_config(OLD_DDIM)
    unfixed, unfixed_ref = _images(reference, pipe, num_inference_steps=4)
    _check(unfixed, unfixed_ref, "config fixes: old config assigned after building (not fixed)")
    assert float(np.abs(unfixed - ours).max()) > 0.05, "the fix should change this image: the test proves nothing"


def test_old_scheduler_given_as_argument_is_fixed_too(old_folders, sd_folders):
    source, folder = old_folders
    ref_scheduler = diffusers.DDIMScheduler.from_pretrained(source, subfolder="scheduler")
    our_scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
    reference, _ = _load(diffusers.StableDiffusionPipeline, sd_folders("source"), scheduler=ref_scheduler)
    pipe, text = _load(StableDiffusionPipeline, sd_folders("edge-onnx"), scheduler=our_scheduler)
    assert "steps_offset" in text and "clip_sample" in text
    assert pipe.scheduler is our_scheduler and our_scheduler.config.steps_offset == 1  # fixed in place
    reference.set_progress_bar_config(disable=True)
    ours, ref = _images(reference, pipe, num_inference_steps=4)
    _check(ours, ref, "config fixes: scheduler= argument")


def test_the_class_model_index_names_is_loaded_as_diffusers_does(sd_folders, tmp_path):
    """model_index.json names PNDM, the config DDIM: diffusers loads a PNDMScheduler from that config."""
    source = _with_config(sd_folders("source"), tmp_path / "src", "scheduler", "scheduler_config.json",
                          lambda old: dict(OLD_DDIM, steps_offset=1, clip_sample=False))
    folder = _with_config(sd_folders("edge-onnx"), tmp_path / "onnx", "scheduler", "scheduler_config.json",
                          lambda old: dict(OLD_DDIM, steps_offset=1, clip_sample=False))
    reference = diffusers.StableDiffusionPipeline.from_pretrained(source)
    pipe = StableDiffusionPipeline.from_pretrained(folder)
    assert type(reference.scheduler).__name__ == type(pipe.scheduler).__name__ == "PNDMScheduler"
    reference.set_progress_bar_config(disable=True)
    pipe.set_progress_bar_config(disable=True)
    ours, ref = _images(reference, pipe, num_inference_steps=6)  # PRK warm-up (skip_prk_steps defaults off)
    _check(ours, ref, "config fixes: model_index's scheduler class")


def test_current_configs_are_left_alone(sd_folders):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        pipe = StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"))
    assert pipe.scheduler.config.steps_offset == 1


def test_inpainting_fixes_skip_prk_steps_and_steps_offset(pipeline_folder, tmp_path):
    def old_pndm(config):
        return {**config, "steps_offset": 0, "skip_prk_steps": False}

    source = _with_config(pipeline_folder("inpaint", "source"), tmp_path / "src", "scheduler",
                          "scheduler_config.json", old_pndm)
    folder = _with_config(pipeline_folder("inpaint", "edge-onnx"), tmp_path / "onnx", "scheduler",
                          "scheduler_config.json", old_pndm)
    reference, ref_text = _load(diffusers.StableDiffusionInpaintPipeline, source)
    pipe, text = _load(StableDiffusionInpaintPipeline, folder)
    assert "skip_prk_steps" in ref_text and "skip_prk_steps" in text and "steps_offset" in text
    assert isinstance(pipe.scheduler, PNDMScheduler) and pipe.scheduler.config.skip_prk_steps is True
    reference.set_progress_bar_config(disable=True)
    image = sample_image(32)
    mask = sample_image(32, seed=4).convert("L")
    ours, ref = _images(reference, pipe, num_inference_steps=3, image=image, mask_image=mask)
    _check(ours, ref, "config fixes: inpainting skip_prk_steps")


def test_pre_0_9_unet_sample_size_becomes_64(sd_folders, tmp_path):
    def old_unet(config):
        return {**config, "_diffusers_version": "0.8.0"}

    source = _with_config(sd_folders("source"), tmp_path / "src", "unet", "config.json", old_unet)
    folder = _with_config(sd_folders("edge-onnx"), tmp_path / "onnx", "unet", "config.json", old_unet)
    reference, ref_text = _load(diffusers.StableDiffusionPipeline, source)
    pipe, text = _load(StableDiffusionPipeline, folder)
    assert "sample_size" in ref_text and "sample_size" in text
    assert reference.unet.config.sample_size == pipe.unet_config["sample_size"] == 64
    reference.set_progress_bar_config(disable=True)
    ours, ref = _images(reference, pipe, num_inference_steps=2)  # default size: 64 latents -> 128 pixels
    assert ours.shape == (1, 128, 128, 3)
    _check(ours, ref, "config fixes: unet sample_size")
