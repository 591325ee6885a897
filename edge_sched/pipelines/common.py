"""Helpers every pipeline imports (so that no pipeline imports another): argument checks, prompt lists,
batch spreading, tokenizer loading, and VAE-encoder latents (a draw from the encoder's Gaussian)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..random import randn_tensor

OUTPUT_TYPES = ("pil", "np", "latent")


def check_common(num_images_per_prompt, output_type) -> None:
    if not isinstance(num_images_per_prompt, (int, np.integer)) or num_images_per_prompt < 1:
        raise ValueError(f"num_images_per_prompt must be a positive integer, got {num_images_per_prompt!r}")
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")


def check_guidance(guidance_scale, guidance_rescale=0.0) -> None:
    """Guidance scales must be finite numbers: NaN would silently turn guidance off (NaN > 1 is False) and
    inf overflow the latents at the first step."""
    for name, value in (("guidance_scale", guidance_scale), ("guidance_rescale", guidance_rescale)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")


def check_strength(strength) -> None:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1], got {strength!r}")


def prompt_list(prompt, prompt_embeds) -> list[str] | None:
    """The prompts as a list, or None when the call gives ``prompt_embeds`` instead."""
    if prompt is None:
        if prompt_embeds is None:
            raise ValueError("give a prompt (str or list of str) or prompt_embeds")
        return None
    if prompt_embeds is not None:
        raise ValueError("give either prompt or prompt_embeds, not both")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, (list, tuple)) and all(isinstance(p, str) for p in prompt) and prompt:
        return list(prompt)
    raise ValueError(f"prompt must be a string or a non-empty list of strings, got {type(prompt).__name__}")


def spread_batch(x: np.ndarray, batch: int, what: str, strict: bool = True) -> np.ndarray:
    """``x`` repeated along the batch axis up to ``batch`` rows (as diffusers repeats init images and masks);
    ``strict``: the count must divide ``batch``."""
    if x.shape[0] >= batch:
        return x
    if strict and batch % x.shape[0]:
        raise ValueError(f"cannot spread {x.shape[0]} {what} over {batch} images: pass 1 or a divisor of {batch}")
    return np.concatenate([x] * (batch // x.shape[0]))


def run_batched(component, feeds_for, n: int, batch_input: str, max_batch: int | None = None) -> dict[str, np.ndarray]:
    """Run ``component`` on ``n`` items; ``feeds_for(rows, count)`` gives the feeds of a slice. A graph
    with a static batch (``batch_input``'s first dim) runs in chunks of that size; a dynamic one in chunks
    of ``max_batch`` when given (low-memory mode: one image row at a time, half the activations of a
    guided UNet call)."""
    shape = component.inputs[batch_input].shape
    size = shape[0] if shape else None
    if size is None and max_batch is not None and n > max_batch:
        size = max_batch if n % max_batch == 0 else 1
    if size is None or size == n:
        return component(**feeds_for(slice(0, n), n))
    if n % size:
        raise ValueError(f"{component.path}: the graph's static batch {size} cannot run {n} items; "
                         f"export with a batch that divides {n}")
    outs = [component(**feeds_for(slice(i, i + size), size)) for i in range(0, n, size)]
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def check_generator_count(generator, batch: int) -> None:
    if isinstance(generator, list) and len(generator) != batch:
        raise ValueError(f"got {len(generator)} generators for {batch} images: pass one per image")


def load_tokenizer(folder: Path, name: str):
    """The CLIP tokenizer in ``folder/name``, in the flavour model_index.json names (slow unless ...Fast)."""
    from .loading import read_model_index
    from .tokenizer import CLIPTokenizer  # needs the `tokenizers` package

    entry = read_model_index(folder).get(name) or [None, "CLIPTokenizer"]
    flavor = "fast" if str(entry[-1]).endswith("Fast") else "slow"
    return CLIPTokenizer.from_folder(folder / name, flavor=flavor)


def sample_latent_distribution(parameters: np.ndarray, generator) -> np.ndarray:
    """A draw from the VAE encoder's diagonal Gaussian: mean + exp(logvar / 2) * noise, logvar clamped to
    [-30, 20] (the ``latent_parameters`` output holds [mean, logvar] stacked on the channel axis)."""
    mean, logvar = np.split(parameters.astype(np.float32, copy=False), 2, axis=1)
    std = np.exp(np.float32(0.5) * np.clip(logvar, -30.0, 20.0))
    return mean + std * randn_tensor(mean.shape, generator=generator, dtype=np.float32)


def vae_latents(parameters_of, image: np.ndarray, generator, scaling_factor: float) -> np.ndarray:
    """Images [n, 3, H, W] in [-1, 1] -> latents sampled from the VAE encoder's distribution and scaled, as
    diffusers' ``retrieve_latents``: with a list of generators image i draws from generator i.
    ``parameters_of(images)``: the encoder's [mean, logvar] (``pipe.vae.latent_parameters``)."""
    if isinstance(generator, list):
        if len(generator) < image.shape[0]:
            raise ValueError(f"got {len(generator)} generators for {image.shape[0]} images: pass one per image")
        latents = np.concatenate([
            sample_latent_distribution(parameters_of(image[i:i + 1]), generator[i])
            for i in range(image.shape[0])
        ])
    else:
        latents = sample_latent_distribution(parameters_of(image), generator)
    return np.float32(scaling_factor) * latents
