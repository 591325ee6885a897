"""Stable Diffusion 3 / 3.5 text-to-image on exported graphs, step for step as diffusers'
``StableDiffusion3Pipeline`` runs it, so the same seed gives the same image.

Method: the prompt goes through two CLIP text encoders (``prompt`` -> text_encoder, ``prompt_2``
(default ``prompt``) -> text_encoder_2), taking each one's penultimate hidden state (``clip_skip``
layers earlier when given) and its projected pooled embedding, and through T5 (``prompt_3``, default
``prompt``; ``max_sequence_length`` tokens; zeros when the folder has no text_encoder_3, as diffusers).
The two CLIP states are concatenated on the feature axis, zero-padded (or cut) to T5's width and put in
front of T5's tokens; the pooled embeddings are concatenated. Negative prompts (default "") are encoded
the same way, without clip_skip. The transformer is fed ``timestep`` = the schedule's t (sigma * 1000)
and predicts the flow velocity; classifier-free guidance is ``uncond + scale (cond - uncond)``. With
``use_dynamic_shifting`` the schedule's ``mu`` is ``calculate_shift`` of the image's token count
(defaults 256 / 4096 / 0.5 / 1.16, SD3's). Latents are decoded as ``latents / scaling + shift``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..random import randn_tensor
from .base import PipelineLoadError, register_pipeline
from .common import check_generator_count, check_strength, load_tokenizer, spread_batch
from .fast_tokenizer import load_fast_tokenizer
from .flow_base import FlowImageToImage, FlowPipelineBase, as_prompts, check_prompt_args
from .loop import LoopHooks, denoise

# diffusers' StableDiffusion3Pipeline calls calculate_shift with this max_shift when the scheduler config has none
SD3_MAX_SHIFT = 1.16


def _fit_width(x: np.ndarray, width: int) -> np.ndarray:
    """torch.nn.functional.pad(x, (0, width - x.shape[-1])): zeros on the right, or a cut when narrower."""
    extra = width - x.shape[-1]
    if extra >= 0:
        return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, extra)])
    return x[..., :width]


@register_pipeline
class StableDiffusion3Pipeline(FlowPipelineBase):
    """``pipe(prompt, prompt_2=None, prompt_3=None, negative_prompt=None, guidance_scale=7.0, ...)``."""

    required_graphs = {
        "text_encoder": ("input_ids",),
        "text_encoder_2": ("input_ids",),
        "transformer": ("hidden_states", "timestep", "encoder_hidden_states", "pooled_projections"),
        "vae_decoder": ("latent_sample",),
    }
    optional_graphs = ("text_encoder_3", "vae_encoder")
    _callback_tensor_inputs = ("latents", "prompt_embeds", "pooled_prompt_embeds")

    @classmethod
    def _load_tokenizers(cls, folder: Path) -> dict:
        names = [n for n in ("tokenizer", "tokenizer_2") if (folder / n).is_dir()]
        if len(names) < 2:
            raise PipelineLoadError(f"{folder}: {cls.__name__} needs tokenizer/ and tokenizer_2/ (found: "
                                    f"{', '.join(names) or 'none'})")
        tokenizers = {n: load_tokenizer(folder, n) for n in names}
        if (folder / "text_encoder_3").is_dir():
            if not (folder / "tokenizer_3").is_dir():
                raise PipelineLoadError(f"{folder}: text_encoder_3/ (T5) is there but not its tokenizer_3/")
            tokenizers["tokenizer_3"] = load_fast_tokenizer(folder, "tokenizer_3")
        return tokenizers

    @property
    def has_t5(self) -> bool:
        return "text_encoder_3" in self.graphs and "tokenizer_3" in self.tokenizers

    @property
    def latent_channels(self) -> int:
        return int(self.transformer_config.get("in_channels", 16))

    def default_size(self, height, width) -> tuple[int, int]:
        size = self.transformer_config.get("sample_size", 128)
        height = height or size * self.vae_scale_factor
        width = width or size * self.vae_scale_factor
        return self.check_size(height, width, self.size_multiple)

    t5_tokenizer_name = "tokenizer_3"

    def reshape(self, batch_size: int = 1, height: int | None = None, width: int | None = None,
                num_images_per_prompt: int = 1, guidance_scale: float = 7.0, max_sequence_length: int = 256):
        """Static shapes (OpenVINO) for calls of this size; ``guidance_scale > 1`` doubles the transformer batch."""
        return super().reshape(batch_size, height, width, num_images_per_prompt, guidance_scale > 1,
                               max_sequence_length)

    def static_shape_plan(self, batch: int, height: int, width: int, per_prompt: int, guided: bool,
                          max_sequence_length: int) -> dict:
        """{component: {input: shape}}; None keeps a graph's own static dim."""
        clip = self.tokenizers["tokenizer"].model_max_length
        images = batch * per_prompt
        rows = images * (2 if guided else 1)
        latent = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        plan = {n: {"input_ids": (batch, clip)} for n in ("text_encoder", "text_encoder_2")}
        if "text_encoder_3" in self.graphs:
            plan["text_encoder_3"] = {"input_ids": (batch, max_sequence_length)}
        plan["transformer"] = {"hidden_states": (rows, None, *latent), "timestep": (rows,),
                               "encoder_hidden_states": (rows, clip + max_sequence_length, None),
                               "pooled_projections": (rows, None)}
        return {**plan, **self.vae_shapes(images, height, width)}

    # ---- prompts ---------------------------------------------------------------------------------

    def _t5_or_zeros(self, texts: list[str], max_sequence_length: int) -> np.ndarray:
        if not self.has_t5:
            width = int(self.transformer_config.get("joint_attention_dim", 4096))
            return np.zeros((len(texts), max_sequence_length, width), dtype=np.float32)
        return self.t5_embeddings("tokenizer_3", "text_encoder_3", texts, max_sequence_length)

    def _encode(self, texts, texts_2, texts_3, clip_skip, max_sequence_length) -> tuple[np.ndarray, np.ndarray]:
        for name, other in (("prompt_2", texts_2), ("prompt_3", texts_3)):
            if len(other) != len(texts):
                raise ValueError(f"{name} has {len(other)} entries, prompt {len(texts)}")
        hidden_1, pooled_1 = self.clip_embeddings("tokenizer", "text_encoder", texts, clip_skip)
        hidden_2, pooled_2 = self.clip_embeddings("tokenizer_2", "text_encoder_2", texts_2, clip_skip)
        t5 = self._t5_or_zeros(texts_3, max_sequence_length)
        clip = _fit_width(np.concatenate([hidden_1, hidden_2], axis=-1), t5.shape[-1])
        return np.concatenate([clip, t5], axis=-2), np.concatenate([pooled_1, pooled_2], axis=-1)

    def encode_prompt(self, prompt, prompt_2=None, prompt_3=None, num_images_per_prompt: int = 1,
                      do_classifier_free_guidance: bool = True, negative_prompt=None, negative_prompt_2=None,
                      negative_prompt_3=None, prompt_embeds=None, negative_prompt_embeds=None,
                      pooled_prompt_embeds=None, negative_pooled_prompt_embeds=None, clip_skip=None,
                      max_sequence_length: int = 256):
        """(prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds), each
        repeated ``num_images_per_prompt`` times per prompt (the negatives None without guidance)."""
        texts = check_prompt_args(prompt, prompt_embeds, prompt_2=prompt_2, prompt_3=prompt_3)
        if prompt_embeds is None:
            prompt_embeds, pooled_prompt_embeds = self._encode(
                texts, as_prompts("prompt_2", prompt_2, len(texts)) or texts,
                as_prompts("prompt_3", prompt_3, len(texts)) or texts, clip_skip, max_sequence_length)
        elif pooled_prompt_embeds is None:
            raise ValueError("prompt_embeds needs pooled_prompt_embeds too (the two CLIP encoders' pooled embeddings)")
        embeds = np.asarray(prompt_embeds, dtype=np.float32)
        pooled = np.asarray(pooled_prompt_embeds, dtype=np.float32)
        batch = embeds.shape[0]
        negative = negative_pooled = None
        if do_classifier_free_guidance:
            if negative_prompt_embeds is not None:
                if any(v is not None for v in (negative_prompt, negative_prompt_2, negative_prompt_3)):
                    raise ValueError("give either negative_prompt(_2/_3) or negative_prompt_embeds, not both")
                if negative_pooled_prompt_embeds is None:
                    raise ValueError("negative_prompt_embeds needs negative_pooled_prompt_embeds too")
                negative = np.asarray(negative_prompt_embeds, dtype=np.float32)
                negative_pooled = np.asarray(negative_pooled_prompt_embeds, dtype=np.float32)
                if negative.shape != embeds.shape:
                    raise ValueError(f"negative_prompt_embeds has shape {negative.shape}, prompt_embeds {embeds.shape}")
            else:
                if texts is not None and negative_prompt is not None and isinstance(prompt, str) != isinstance(negative_prompt, str):
                    raise TypeError(f"negative_prompt should be of the same type as prompt (str or list), got "
                                    f"{type(negative_prompt).__name__} and {type(prompt).__name__}")
                uncond = as_prompts("negative_prompt", negative_prompt or "", batch)
                uncond_2 = as_prompts("negative_prompt_2", negative_prompt_2 or negative_prompt or "", batch)
                uncond_3 = as_prompts("negative_prompt_3", negative_prompt_3 or negative_prompt or "", batch)
                if len(uncond) != batch:
                    raise ValueError(f"negative_prompt has {len(uncond)} entries, prompt {batch}: pass a string or one "
                                     "per prompt")
                negative, negative_pooled = self._encode(uncond, uncond_2, uncond_3, None, max_sequence_length)
            negative = np.repeat(negative, num_images_per_prompt, axis=0)
            negative_pooled = np.repeat(negative_pooled, num_images_per_prompt, axis=0)
        return (np.repeat(embeds, num_images_per_prompt, axis=0), negative,
                np.repeat(pooled, num_images_per_prompt, axis=0), negative_pooled)

    # ---- generation ------------------------------------------------------------------------------

    def prepare_latents(self, batch: int, height: int, width: int, generator, latents=None) -> np.ndarray:
        shape = (batch, self.latent_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        if latents is not None:
            latents = np.asarray(latents, dtype=np.float32)
            if latents.shape != shape:
                raise ValueError(f"latents must have shape {shape}, got {latents.shape}")
            return latents
        check_generator_count(generator, batch)
        return randn_tensor(shape, generator=generator, dtype=np.float32)

    def schedule_mu(self, latent_height: int, latent_width: int, mu):
        """``mu`` for dynamic shifting (when the scheduler config asks for it and the call gives none)."""
        if mu is None and self.scheduler.config.get("use_dynamic_shifting"):
            tokens = (latent_height // self.patch_size) * (latent_width // self.patch_size)
            mu = self.dynamic_shift_mu(tokens, SD3_MAX_SHIFT)
        return mu

    def conditioning(self, prompt, prompt_2, prompt_3, negative_prompt, negative_prompt_2, negative_prompt_3,
                     num_images_per_prompt, prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds,
                     negative_pooled_prompt_embeds, clip_skip, max_sequence_length, skip_guidance_layers) -> dict:
        """The loop's starting state without latents: [negative, positive] embeddings when guided."""
        if skip_guidance_layers is not None:
            raise ValueError(f"skip_guidance_layers={skip_guidance_layers!r}: the exported transformer graph has no "
                             "skip_layers input, so skip-layer guidance cannot run on it")
        max_sequence_length = self.check_max_sequence_length(max_sequence_length, "tokenizer_3")
        guided = self.do_classifier_free_guidance
        embeds, negative, pooled, negative_pooled = self.encode_prompt(
            prompt, prompt_2, prompt_3, num_images_per_prompt, guided, negative_prompt, negative_prompt_2,
            negative_prompt_3, prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds,
            negative_pooled_prompt_embeds, clip_skip, max_sequence_length)
        if guided:
            embeds, pooled = np.concatenate([negative, embeds]), np.concatenate([negative_pooled, pooled])
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled,
                "batch": embeds.shape[0] // (2 if guided else 1)}

    def hooks(self) -> LoopHooks:
        def feeds(state: dict, guided: bool) -> dict:
            return {"encoder_hidden_states": state["prompt_embeds"], "pooled_projections": state["pooled_prompt_embeds"]}

        return LoopHooks(unet_feeds=feeds, denoiser=self.denoiser)

    def __call__(
        self,
        prompt=None,
        prompt_2=None,
        prompt_3=None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 28,
        sigmas=None,
        guidance_scale: float = 7.0,
        negative_prompt=None,
        negative_prompt_2=None,
        negative_prompt_3=None,
        num_images_per_prompt: int = 1,
        generator=None,
        latents=None,
        prompt_embeds=None,
        negative_prompt_embeds=None,
        pooled_prompt_embeds=None,
        negative_pooled_prompt_embeds=None,
        output_type: str = "pil",
        return_dict: bool = True,
        clip_skip: int | None = None,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        max_sequence_length: int = 256,
        skip_guidance_layers=None,
        mu: float | None = None,
    ):
        height, width = self.default_size(height, width)
        names = self._begin_call(callback_on_step_end, callback_on_step_end_tensor_inputs, guidance_scale, 0.0,
                                 num_images_per_prompt, output_type)
        state = self.conditioning(prompt, prompt_2, prompt_3, negative_prompt, negative_prompt_2, negative_prompt_3,
                                  num_images_per_prompt, prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds,
                                  negative_pooled_prompt_embeds, clip_skip, max_sequence_length, skip_guidance_layers)
        generator = self._generator(generator)
        state["latents"] = self.prepare_latents(state.pop("batch"), height, width, generator, latents)
        latent_h, latent_w = state["latents"].shape[-2:]
        timesteps = self.flow_timesteps(num_inference_steps, sigmas, self.schedule_mu(latent_h, latent_w, mu))
        state = denoise(self, timesteps, state, self.hooks(), self._step_kwargs(generator, None),
                        callback_on_step_end, names)
        return self.finish(state["latents"], output_type, return_dict)


@register_pipeline
class StableDiffusion3Img2ImgPipeline(FlowImageToImage, StableDiffusion3Pipeline):
    """``pipe(prompt, image=init_image, strength=0.6, ...)``: the init image is encoded (a sample of the VAE
    encoder's Gaussian, ``(z - shift) * scaling``), moved along the flow to the first kept timestep with
    ``scheduler.scale_noise`` and denoised from there, as diffusers' ``StableDiffusion3Img2ImgPipeline``."""

    required_graphs = {**StableDiffusion3Pipeline.required_graphs, "vae_encoder": ("sample",)}
    optional_graphs = ("text_encoder_3",)

    def __call__(
        self,
        prompt=None,
        prompt_2=None,
        prompt_3=None,
        height: int | None = None,
        width: int | None = None,
        image=None,
        strength: float = 0.6,
        num_inference_steps: int = 50,
        sigmas=None,
        guidance_scale: float = 7.0,
        negative_prompt=None,
        negative_prompt_2=None,
        negative_prompt_3=None,
        num_images_per_prompt: int = 1,
        generator=None,
        latents=None,
        prompt_embeds=None,
        negative_prompt_embeds=None,
        pooled_prompt_embeds=None,
        negative_pooled_prompt_embeds=None,
        output_type: str = "pil",
        return_dict: bool = True,
        clip_skip: int | None = None,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        max_sequence_length: int = 256,
        mu: float | None = None,
    ):
        height, width = self.default_size(height, width)
        check_strength(strength)
        names = self._begin_call(callback_on_step_end, callback_on_step_end_tensor_inputs, guidance_scale, 0.0,
                                 num_images_per_prompt, output_type)
        state = self.conditioning(prompt, prompt_2, prompt_3, negative_prompt, negative_prompt_2, negative_prompt_3,
                                  num_images_per_prompt, prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds,
                                  negative_pooled_prompt_embeds, clip_skip, max_sequence_length, None)
        batch = state.pop("batch")
        init = self.preprocess_image(image, height, width)
        generator = self._generator(generator)
        check_generator_count(generator, batch)
        latent_h, latent_w = height // self.vae_scale_factor, width // self.vae_scale_factor
        timesteps = self.flow_timesteps(num_inference_steps, sigmas, self.schedule_mu(latent_h, latent_w, mu))
        steps = len(timesteps) if sigmas is not None else num_inference_steps
        timesteps = self.strength_timesteps(timesteps, steps, strength)
        if latents is None:
            if isinstance(generator, list):  # diffusers encodes image i with generator i, one per image
                init = spread_batch(init, batch, "init images")
            clean = spread_batch(self.encode_image_latents(init, generator), batch, "init images")
            latents = self.noised_latents(clean, timesteps[0], generator)
        state["latents"] = self.prepare_latents(batch, height, width, generator, latents)
        state = denoise(self, timesteps, state, self.hooks(), self._step_kwargs(generator, None),
                        callback_on_step_end, names)
        return self.finish(state["latents"], output_type, return_dict)
