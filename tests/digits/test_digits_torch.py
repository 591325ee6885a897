"""The trained digits model sampled by diffusers in torch: guided DPM++ 2M at 20 steps draws the
digits it is asked for (scored by edge_sched.quality's classifier); edge_sched's numpy schedulers
around the torch UNet, and the whole runtime pipeline on the shipped ONNX graph, give the same images.

Needs the trained model folder (see conftest.digits_model_dir; the repository ships it under
tests/digits/model); without it these tests fail with a message saying where to put it: nothing is
trained here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edge_sched.quality import class_accuracy, frechet_distance_to_real

from .conftest import PARITY, RESULTS
from .torch_sampling import (
    GUIDANCE_SCALE,
    NULL_CLASS,
    SCHEDULERS,
    load_unet,
    make_scheduler,
    sample,
)

pytestmark = pytest.mark.needs_digits_model

LABELS = np.arange(100) % 10  # ten of each digit


@pytest.fixture(scope="session")
def unet(digits_model_dir):
    torch.set_num_threads(1)  # shared 2-core machines: a second thread only spin-waits
    return load_unet(digits_model_dir)


def _run(unet, model_dir, label, **kwargs):
    class_name, extra = SCHEDULERS[label]
    images = sample(unet, make_scheduler(model_dir, class_name, extra), LABELS, steps=20, seed=0, **kwargs)
    return images


@pytest.fixture(scope="session")
def dpmpp_2m(unet, digits_model_dir):
    images = _run(unet, digits_model_dir, "DPM++ 2M")
    RESULTS["DPM++ 2M"] = (class_accuracy(images, LABELS), frechet_distance_to_real(images))
    return images


def test_model_is_small_and_class_conditional(unet):
    assert unet.config.num_class_embeds == 11 and unet.config.sample_size == 16
    assert sum(p.numel() for p in unet.parameters()) <= 1_000_000


def test_dpmpp_2m_20_steps_guided_draws_the_requested_digits(dpmpp_2m):
    assert dpmpp_2m.shape == (100, 1, 16, 16)
    accuracy = class_accuracy(dpmpp_2m, LABELS)
    assert accuracy >= 0.90, f"class accuracy {accuracy:.2f} over 100 guided DPM++ 2M samples"


def test_samples_are_closer_to_real_digits_than_noise(dpmpp_2m):
    noise = np.clip(np.random.default_rng(0).standard_normal(dpmpp_2m.shape), -1, 1)
    assert frechet_distance_to_real(dpmpp_2m) < 0.1 * frechet_distance_to_real(noise)


def test_guidance_is_what_makes_the_class(unet, digits_model_dir, dpmpp_2m):
    # the null class alone draws digits, but not the ones asked for
    unguided = _run(unet, digits_model_dir, "DPM++ 2M", guidance_scale=0.0)
    RESULTS["DPM++ 2M unguided"] = (class_accuracy(unguided, LABELS), frechet_distance_to_real(unguided))
    assert class_accuracy(unguided, LABELS) < 0.5 < class_accuracy(dpmpp_2m, LABELS)


@torch.no_grad()
def _sample_with_edge_sched(unet, model_dir, label, seed=0, guidance_scale=GUIDANCE_SCALE):
    """The same guided loop, with edge_sched's numpy scheduler and noise around the torch UNet."""
    import edge_sched
    from edge_sched.random import TorchGenerator

    class_name, extra = SCHEDULERS[label]
    # the DDPM config as is: DPM-Solver takes DDPM's variance_type "fixed_small" (and ignores it, as diffusers)
    config = json.loads((model_dir / "scheduler" / "scheduler_config.json").read_text())
    scheduler = getattr(edge_sched, class_name).from_config({**config, **extra})
    both = torch.as_tensor(np.concatenate([LABELS, np.full_like(LABELS, NULL_CLASS)]))
    x = TorchGenerator(seed).randn((len(LABELS), 1, 16, 16))
    scheduler.set_timesteps(20)
    x = x * np.float32(scheduler.init_noise_sigma)
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(np.concatenate([x, x]), t)
        out = unet(torch.from_numpy(model_in), torch.as_tensor(t), class_labels=both).sample.numpy()
        eps_digit, eps_null = out[: len(LABELS)], out[len(LABELS):]
        x = scheduler.step(eps_null + np.float32(guidance_scale) * (eps_digit - eps_null), t, x).prev_sample
    return np.clip(x, -1, 1)


@pytest.mark.parametrize("label", ["DPM++ 2M", "DPM++ 2M Karras"])
def test_edge_sched_scheduler_gives_the_same_digits(unet, digits_model_dir, dpmpp_2m, label):
    reference = dpmpp_2m if label == "DPM++ 2M" else _run(unet, digits_model_dir, label)
    ours = _sample_with_edge_sched(unet, digits_model_dir, label)
    worst = float(np.abs(ours - reference).max())
    RESULTS[f"{label} edge_sched"] = (class_accuracy(ours, LABELS), frechet_distance_to_real(ours))
    PARITY[label] = worst
    assert worst <= 1e-3, f"{label}: max abs image difference {worst:.3g} between edge_sched and diffusers"


@pytest.mark.parametrize("class_name", ["DPMSolverMultistepScheduler", "EulerDiscreteScheduler", "DDIMScheduler"])
def test_edge_sched_loads_the_scheduler_config(digits_model_dir, class_name):
    # a DDPM config loads into any diffusers scheduler (a user swaps schedulers this way)
    import diffusers

    import edge_sched

    theirs = getattr(diffusers, class_name).from_pretrained(digits_model_dir, subfolder="scheduler")
    ours = getattr(edge_sched, class_name).from_pretrained(digits_model_dir, subfolder="scheduler")
    ours.set_timesteps(20)
    theirs.set_timesteps(20)
    np.testing.assert_array_equal(ours.timesteps, theirs.timesteps.numpy())


RUNTIME_CASES = {"DPM++ 2M": 100, "DPM++ 2M Karras": 100, "DPM++ 2M SDE": 20, "Euler a": 20}


@pytest.mark.parametrize("label", list(RUNTIME_CASES))
def test_runtime_pipeline_gives_the_diffusers_images(unet, digits_model_dir, dpmpp_2m, label):
    """The shipped ONNX graph driven by edge_sched's DDPMPipeline (built-in "digits", no torch inside)
    against diffusers' UNet2DModel + scheduler loop in torch; the SDE / ancestral cases also check that
    the step noise is drawn from the seed's stream in diffusers' order."""
    import edge_sched
    from edge_sched import DiffusionPipeline

    labels = LABELS[: RUNTIME_CASES[label]]
    class_name, extra = SCHEDULERS[label]
    reference = dpmpp_2m if label == "DPM++ 2M" else sample(
        unet, make_scheduler(digits_model_dir, class_name, extra), labels, steps=20, seed=0)
    pipe = DiffusionPipeline.from_pretrained("digits", backend="onnxruntime")
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = getattr(edge_sched, class_name).from_config({**pipe.scheduler.config, **extra})
    ours = pipe(class_labels=labels, generator=0, num_inference_steps=20, guidance_scale=GUIDANCE_SCALE,
                output_type="latent").images
    worst = float(np.abs(np.clip(ours, -1, 1) - reference).max())
    PARITY[f"{label} runtime (ONNX), {len(labels)} samples"] = worst
    assert worst <= 1e-3, f"{label}: max abs image difference {worst:.3g} between the runtime and diffusers"
