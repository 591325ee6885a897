"""Tiled and sliced VAE decoding (and tiled encoding for image-to-image) against diffusers with the same
switches: ``pipe.enable_vae_tiling()`` / ``pipe.vae.enable_tiling()`` with diffusers' tile sizes and with
smaller ones set on both sides, at sizes that cut the latents into several tiles.
Bound: max abs pixel difference at most 1e-3, images in [0, 1]."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import diffusers
from edge_sched.pipelines import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

from .conftest import IMAGE_PARITY
from .pipeline_runs import sample_image

BOUND = 1e-3


@pytest.fixture(scope="module")
def pair(sd_folders):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reference = diffusers.StableDiffusionPipeline.from_pretrained(sd_folders("source"))
    pipe = StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"))
    for p in (reference, pipe):
        p.set_progress_bar_config(disable=True)
    yield reference, pipe
    for p in (reference, pipe):
        p.vae.disable_tiling()
        p.vae.disable_slicing()


def _set_tiles(pipe, sample: int | None, latent: int | None):
    if sample is not None:
        pipe.vae.tile_sample_min_size, pipe.vae.tile_latent_min_size = sample, latent


def _run(reference, pipe, seed=3, **call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # diffusers' pipe.enable_vae_* deprecation
        ref = reference("a cat", generator=torch.Generator().manual_seed(seed), output_type="np", **call).images
    ours = pipe("a cat", generator=seed, output_type="np", **call).images
    return np.asarray(ours), np.asarray(ref)


# (id, tile_sample_min_size, tile_latent_min_size or None = the VAE config's, height, width)
TILES = [
    ("config-tiles-64x64", None, None, 64, 64),       # tiny VAE: sample_size 32 -> 16-latent tiles, 2x2 and more
    ("small-tiles-32x48", 16, 8, 32, 48),             # 8-latent tiles over 16x24 latents: 3 x 4 tiles
    ("small-tiles-48x32", 16, 8, 48, 32),
]


@pytest.mark.parametrize("case", TILES, ids=[c[0] for c in TILES])
def test_tiled_decoding_matches_diffusers(pair, case):
    reference, pipe = pair
    _, sample, latent, height, width = case
    untiled, _ = _run(reference, pipe, height=height, width=width, num_inference_steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reference.enable_vae_tiling()
    pipe.enable_vae_tiling()
    try:
        for p in (reference, pipe):
            _set_tiles(p, sample, latent)
        assert pipe.vae.tile_sample_min_size == reference.vae.tile_sample_min_size
        assert pipe.vae.tile_latent_min_size == reference.vae.tile_latent_min_size
        ours, ref = _run(reference, pipe, height=height, width=width, num_inference_steps=3)
    finally:
        for p in (reference, pipe):
            p.vae.disable_tiling()
            _set_tiles(p, 32, 16)
    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY["VAE tiling: decode"].append(diff)
    assert ours.shape == ref.shape == (1, height, width, 3)
    assert diff <= BOUND, f"{case}: max abs pixel difference {diff:.3g}"
    # tiles see only part of the image: the tiled image is not the untiled one (else nothing was tiled)
    assert float(np.abs(ours - untiled).max()) > 1e-3


def test_sliced_decoding_of_a_batch_matches_diffusers(pair):
    reference, pipe = pair
    for p in (reference, pipe):
        p.vae.enable_slicing()
    try:
        ours, ref = _run_batch(reference, pipe)
    finally:
        for p in (reference, pipe):
            p.vae.disable_slicing()
    diff = float(np.abs(ours - ref).max())
    IMAGE_PARITY["VAE slicing: decode"].append(diff)
    assert ours.shape == ref.shape == (3, 32, 32, 3) and diff <= BOUND


def _run_batch(reference, pipe):
    gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    ref = reference("a cat", generator=gens, num_images_per_prompt=3, num_inference_steps=3, output_type="np").images
    ours = pipe("a cat", generator=[1, 2, 3], num_images_per_prompt=3, num_inference_steps=3, output_type="np").images
    return np.asarray(ours), np.asarray(ref)


def test_tiled_encoding_and_decoding_in_image_to_image(pair, sd_folders):
    """The init image (64x64 > the tile size 32) is encoded in tiles too, as diffusers' img2img does."""
    reference_t2i, pipe_t2i = pair
    reference = diffusers.StableDiffusionImg2ImgPipeline(**reference_t2i.components)
    pipe = StableDiffusionImg2ImgPipeline(**pipe_t2i.components)
    assert pipe.vae is pipe_t2i.vae and pipe.graphs is pipe_t2i.graphs
    for p in (reference, pipe):
        p.set_progress_bar_config(disable=True)
        p.vae.enable_tiling()
    try:
        image = sample_image(64)
        ref = reference("a cat", image=image, strength=0.6, num_inference_steps=4, output_type="np",
                        generator=torch.Generator().manual_seed(4)).images
        ours = pipe("a cat", image=image, strength=0.6, num_inference_steps=4, output_type="np", generator=4).images
    finally:
        for p in (reference, pipe):
            p.vae.disable_tiling()
    diff = float(np.abs(np.asarray(ours) - np.asarray(ref)).max())
    IMAGE_PARITY["VAE tiling: img2img encode + decode"].append(diff)
    assert diff <= BOUND


def test_vae_decode_and_encode_calls_as_diffusers(pair):
    """pipe.vae.decode(latents / scaling_factor) and pipe.vae.encode(x).latent_dist, as scripts call them."""
    reference, pipe = pair
    latents = np.random.default_rng(0).standard_normal((1, 4, 16, 16)).astype(np.float32)
    ours = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    with torch.no_grad():
        ref = reference.vae.decode(torch.from_numpy(latents) / reference.vae.config.scaling_factor).sample.numpy()
        x = torch.from_numpy(ref)
        ref_mean = reference.vae.encode(x).latent_dist.mean.numpy()
    assert float(np.abs(ours - ref).max()) <= 1e-4
    assert float(np.abs(pipe.vae.encode(ref).latent_dist.mode() - ref_mean).max()) <= 1e-4
