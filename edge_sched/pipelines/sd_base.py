"""What the Stable Diffusion pipelines share (text-to-image, image-to-image, inpainting, SDXL, LCM): sizes
and static shapes, prompt encoding, latents, the UNet feeds of the one denoising loop, VAE decoding; all
step for step as diffusers' pipelines, so the same seed gives the same image."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from ..random import randn_tensor
from .base import DiffusionPipeline, ImagePipelineOutput
from .common import load_tokenizer, prompt_list
from .guidance import guidance_scale_embedding
from .loop import LoopHooks


logger = logging.getLogger(__name__)


class StableDiffusionBase(DiffusionPipeline):
    """Prompt encoding, latent shapes, guided UNet calls and VAE decoding shared by the SD pipelines."""

    required_graphs = {
        "text_encoder": ("input_ids",),
        "unet": ("sample", "timestep", "encoder_hidden_states"),
        "vae_decoder": ("latent_sample",),
    }
    optional_graphs = ("vae_encoder",)
    _callback_tensor_inputs = ("latents", "prompt_embeds", "negative_prompt_embeds")
    #: diffusers' constructor parts, in its order (pipe.components)
    _component_names = ("vae", "text_encoder", "tokenizer", "unet", "scheduler", "safety_checker",
                        "feature_extractor", "image_encoder")

    @classmethod
    def _load_tokenizers(cls, folder: Path) -> dict:
        return {"tokenizer": load_tokenizer(folder, "tokenizer")}

    @property
    def tokenizer(self):
        return self.tokenizers["tokenizer"]

    @property
    def unet_config(self) -> dict:
        return self.graphs.configs.get("unet", {})

    @property
    def vae_config(self) -> dict:
        return self.graphs.configs.get("vae_decoder", {})

    @property
    def image_processor(self):
        """diffusers' ``pipe.image_processor`` (VaeImageProcessor: preprocess / postprocess)."""
        from .image_io import image_processor  # needs Pillow

        return image_processor(self.vae_scale_factor)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae_config.get("block_out_channels", [0, 0, 0, 0])) - 1)

    @property
    def scaling_factor(self) -> float:
        return float(self.vae_config.get("scaling_factor", 0.18215))

    @property
    def time_cond_proj_dim(self) -> int | None:
        """The guidance-embedding width of a guidance-distilled UNet (LCM-distilled), else None."""
        return self.unet_config.get("time_cond_proj_dim")

    @property
    def do_classifier_free_guidance(self) -> bool:
        """diffusers' rule; re-read every step (a callback may set ``pipe._guidance_scale``)."""
        return self._guidance_scale > 1 and self.time_cond_proj_dim is None

    def _default_size(self, height, width) -> tuple[int, int]:
        size = self.unet_config.get("sample_size", 64)
        size = size if isinstance(size, (list, tuple)) else (size, size)
        height = height or size[0] * self.vae_scale_factor
        width = width or size[1] * self.vae_scale_factor
        multiple = math.lcm(8, self.vae_scale_factor)  # diffusers requires multiples of 8
        for name, value in (("height", height), ("width", width)):
            if not isinstance(value, (int, np.integer)) or value <= 0 or value % multiple:
                raise ValueError(f"{name} must be a positive multiple of {multiple}, got {value!r}")
        return int(height), int(width)

    def reshape(self, batch_size: int = 1, height: int | None = None, width: int | None = None,
                num_images_per_prompt: int = 1, guidance_scale: float = 7.5):
        """Fix every graph's input shapes for this image size and batch (OpenVINO; as optimum-intel's
        ``pipe.reshape``): static shapes compile to faster code on CPU and are what NPUs run. Later
        calls must use the same size, batch and guidance on/off (another size is an error naming both
        shapes). Returns the pipeline."""
        height, width = self._default_size(height, width)
        for name, value in (("batch_size", batch_size), ("num_images_per_prompt", num_images_per_prompt)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.graphs.set_static_shapes(self.static_shape_plan(batch_size, height, width, num_images_per_prompt,
                                                                 guidance_scale > 1))
        return self

    def static_shape_plan(self, batch: int, height: int, width: int, per_prompt: int, guided: bool) -> dict:
        """{component: {input: shape}} for one call; None keeps a graph's own static dim."""
        length = self.tokenizer.model_max_length
        images = batch * per_prompt
        unet_batch = images * (2 if guided and self.time_cond_proj_dim is None else 1)
        latent = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        unet = {"sample": (unet_batch, None, *latent), "timestep": (unet_batch,),
                "encoder_hidden_states": (unet_batch, length, None)}
        unet.update({n: (unet_batch, None) for n in self.required_graphs["unet"] if n not in unet})
        plan = {n: {"input_ids": (batch, length)} for n in self.required_graphs if n.startswith("text_encoder")}
        plan.update(unet=unet, vae_decoder={"latent_sample": (images, None, *latent)})
        if "vae_encoder" in self.graphs:
            plan["vae_encoder"] = {"sample": (images, None, height, width)}
        return plan

    # ---- prompts ---------------------------------------------------------------------------------

    def _encode_text(self, texts: list[str], max_length: int | None = None) -> np.ndarray:
        ids = self.tokenizer(texts, padding="max_length", max_length=max_length or self.tokenizer.model_max_length,
                             truncation=True).input_ids
        full = self.tokenizer(texts, padding="longest", truncation=False).input_ids
        if full.shape[1] > ids.shape[1]:
            logger.warning("the prompt was longer than the text encoder's %d tokens and was truncated", ids.shape[1])
        encoder = self.graph("text_encoder")
        out = self.run_batched(encoder, lambda rows, n: {"input_ids": ids[rows]}, ids.shape[0], "input_ids")
        hidden = out.get("last_hidden_state", next(iter(out.values())))
        self.graphs.done_with("text_encoder")
        return hidden.astype(np.float32, copy=False)

    def encode_prompt(self, prompt, device=None, num_images_per_prompt: int = 1,
                      do_classifier_free_guidance: bool = True, negative_prompt=None, prompt_embeds=None,
                      negative_prompt_embeds=None, lora_scale=None,
                      clip_skip=None) -> tuple[np.ndarray, np.ndarray | None]:
        """diffusers' ``encode_prompt`` (same arguments, in order; ``device`` is not used): (prompt_embeds,
        negative_prompt_embeds) as numpy arrays, each repeated ``num_images_per_prompt`` times per prompt.
        ``lora_scale``: LoRA weights are fused into the exported text encoder, so only None is accepted;
        ``clip_skip``: the exported text encoder gives its last hidden state only, so only None or 0."""
        if lora_scale is not None:
            raise ValueError(f"lora_scale={lora_scale!r}: LoRA weights are fused at export here; export the "
                             "pipeline with the LoRA fused at the scale wanted")
        if clip_skip:
            raise ValueError(f"clip_skip={clip_skip!r}: this exported text encoder gives only its last hidden state")
        do_cfg = do_classifier_free_guidance
        texts = prompt_list(prompt, prompt_embeds)
        if prompt_embeds is None:
            prompt_embeds = self._encode_text(texts)
        prompt_embeds = np.asarray(prompt_embeds, dtype=np.float32)
        batch = prompt_embeds.shape[0]
        negative = None
        if do_cfg:
            if negative_prompt_embeds is not None:
                negative = np.asarray(negative_prompt_embeds, dtype=np.float32)
                if negative.shape != prompt_embeds.shape:
                    raise ValueError(f"negative_prompt_embeds has shape {negative.shape}, prompt_embeds {prompt_embeds.shape}")
            else:
                if negative_prompt is None:
                    uncond = [""] * batch
                elif isinstance(negative_prompt, str):
                    uncond = [negative_prompt] * batch
                elif isinstance(negative_prompt, (list, tuple)) and len(negative_prompt) == batch:
                    uncond = list(negative_prompt)
                else:
                    raise ValueError(f"negative_prompt must be a string or a list of {batch} strings (one per prompt)")
                negative = self._encode_text(uncond, max_length=prompt_embeds.shape[1])
            negative = np.repeat(negative, num_images_per_prompt, axis=0)
        return np.repeat(prompt_embeds, num_images_per_prompt, axis=0), negative

    # ---- latents, UNet, VAE ----------------------------------------------------------------------

    def prepare_latents(self, batch: int, height: int, width: int, generator, latents=None) -> np.ndarray:
        shape = (batch, self.latent_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, dtype=np.float32)
        else:
            latents = np.asarray(latents, dtype=np.float32)
            if latents.shape != shape:
                raise ValueError(f"latents must have shape {shape}, got {latents.shape}")
        return latents * np.float32(self.scheduler.init_noise_sigma)

    @property
    def latent_channels(self) -> int:
        return int(self.unet_config.get("in_channels", 4))

    def timestep_cond(self, batch: int) -> np.ndarray | None:
        """The guidance-scale embedding a guidance-distilled UNet takes as ``timestep_cond`` (diffusers:
        ``w = guidance_scale - 1``, a float32 tensor), or None for other UNets."""
        dim = self.time_cond_proj_dim
        if dim is None:
            return None
        return guidance_scale_embedding(np.full(batch, np.float32(self._guidance_scale - 1)), int(dim))

    def text_hooks(self, timestep_cond: np.ndarray | None = None, feeds_from_state: dict | None = None,
                   **extra) -> LoopHooks:
        """Loop hooks feeding the UNet from the callback state (graph input -> state key; default
        ``encoder_hidden_states`` <- ``prompt_embeds``), plus a fixed ``timestep_cond``."""
        names = feeds_from_state or {"encoder_hidden_states": "prompt_embeds"}

        def feeds(state: dict, guided: bool) -> dict:
            out = {graph_input: state[key] for graph_input, key in names.items()}
            if timestep_cond is not None:
                out["timestep_cond"] = np.concatenate([timestep_cond] * 2) if guided else timestep_cond
            return out

        return LoopHooks(unet_feeds=feeds, **extra)

    @staticmethod
    def text_state(latents: np.ndarray, embeds: np.ndarray, negative: np.ndarray | None) -> dict:
        """The callback state diffusers keeps: ``prompt_embeds`` is [negative, positive] when guided."""
        both = embeds if negative is None else np.concatenate([negative, embeds])
        return {"latents": latents, "prompt_embeds": both, "negative_prompt_embeds": negative}

    def strength_timesteps(self, num_inference_steps: int, strength: float, custom: bool) -> np.ndarray:
        """The tail of the schedule that ``strength`` keeps (diffusers' ``get_timesteps``); call after
        set_timesteps. diffusers counts a custom schedule's length as its number of steps, and refuses
        a strength that leaves fewer than one step (PNDM's schedule has one timestep more than steps)."""
        steps = len(self.scheduler.timesteps) if custom else num_inference_steps
        init = min(int(steps * strength), steps)
        if init < 1:
            raise ValueError(f"strength={strength} with {num_inference_steps} steps leaves no step to run")
        start = max(steps - init, 0)
        order = self.scheduler.order
        self.scheduler.set_begin_index(start * order)
        return self._record_timesteps(self.scheduler.timesteps[start * order:])

    def decode_latents(self, latents: np.ndarray) -> np.ndarray:
        """latents -> images in [-1, 1] (NCHW), sliced or tiled as ``pipe.vae`` is set."""
        self.graph("vae_decoder")  # checked (low-memory mode) before use
        images = self.vae.decode(latents / np.float32(self.scaling_factor), return_dict=False)[0]
        self.graphs.done_with("vae_decoder")
        return images.astype(np.float32, copy=False)

    def _finish(self, latents, output_type, return_dict):
        if output_type == "latent":
            images = latents
        else:
            from .image_io import image_processor  # needs Pillow

            images = image_processor(self.vae_scale_factor).postprocess(self.decode_latents(latents), output_type)
        return ImagePipelineOutput(images) if return_dict else (images, None)
