"""FLUX.1 text-to-image (dev, schnell) on exported graphs, step for step as diffusers' ``FluxPipeline``
runs it, so the same seed gives the same image.

Method: the prompt's pooled embedding comes from CLIP (``pooler_output``), the token embeddings from T5
(``prompt_2``, default ``prompt``; ``max_sequence_length`` tokens). Latents [B, C, h, w] (h, w: the image
size over the VAE factor) are packed into 2 x 2 patches, [B, h/2 * w/2, 4C], with image ids
(0, row, column) per patch and text ids of zeros. The transformer takes ``timestep`` = t / 1000 (the
sigma), and, for guidance-distilled models (dev: ``guidance_embeds``), the embedded guidance
``guidance_scale`` per image. The schedule is diffusers': sigmas linspace(1, 1/n, n) unless given
(none for schedulers on flow sigmas) and ``mu`` = ``calculate_shift`` of the packed token count (defaults
256 / 4096 / 0.5 / 1.15). True classifier-free guidance (``true_cfg_scale > 1`` with a negative prompt)
runs the negative prompt too: ``neg + true_cfg_scale (cond - neg)``. Latents are unpacked and decoded as
``latents / scaling + shift``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..random import randn_tensor
from .base import PipelineLoadError, register_pipeline
from .common import check_generator_count, check_strength, load_tokenizer, spread_batch
from .fast_tokenizer import load_fast_tokenizer
from .flow_base import TRANSFORMER, FlowImageToImage, FlowPipelineBase, as_prompts, check_prompt_args
from .loop import Denoiser, LoopHooks, denoise

FLUX_MAX_SHIFT = 1.15
FLUX_DEFAULT_SAMPLE_SIZE = 128  # diffusers' FluxPipeline.default_sample_size (1024 px with an 8x VAE)


def _sigma_timestep(t):
    """FLUX's transformer takes the sigma: t / 1000 in float32, as diffusers divides the float32 timestep."""
    return np.float32(t) / np.float32(1000)


FLUX_TRANSFORMER = dataclasses.replace(TRANSFORMER, timestep=_sigma_timestep)


def pack_latents(latents: np.ndarray) -> np.ndarray:
    """[B, C, h, w] -> [B, h/2 * w/2, 4C]: each 2 x 2 patch one token (channels, then the patch rows, columns)."""
    b, c, h, w = latents.shape
    x = latents.reshape(b, c, h // 2, 2, w // 2, 2).transpose(0, 2, 4, 1, 3, 5)
    return np.ascontiguousarray(x.reshape(b, (h // 2) * (w // 2), c * 4))


def unpack_latents(latents: np.ndarray, h: int, w: int) -> np.ndarray:
    """[B, h/2 * w/2, 4C] -> [B, C, h, w] (``pack_latents`` undone)."""
    b, _, channels = latents.shape
    x = latents.reshape(b, h // 2, w // 2, channels // 4, 2, 2).transpose(0, 3, 1, 4, 2, 5)
    return np.ascontiguousarray(x.reshape(b, channels // 4, h, w))


def latent_image_ids(h: int, w: int) -> np.ndarray:
    """[h * w, 3] float32 rows (0, row, column) of the packed latent grid (diffusers' _prepare_latent_image_ids)."""
    ids = np.zeros((h, w, 3), dtype=np.float32)
    ids[..., 1] = np.arange(h, dtype=np.float32)[:, None]
    ids[..., 2] = np.arange(w, dtype=np.float32)[None, :]
    return ids.reshape(h * w, 3)


@register_pipeline
class FluxPipeline(FlowPipelineBase):
    """``pipe(prompt, prompt_2=None, guidance_scale=3.5, num_inference_steps=28, true_cfg_scale=1.0, ...)``."""

    required_graphs = {
        "text_encoder": ("input_ids",),
        "text_encoder_2": ("input_ids",),
        "transformer": ("hidden_states", "timestep", "encoder_hidden_states", "pooled_projections", "img_ids",
                        "txt_ids"),
        "vae_decoder": ("latent_sample",),
    }
    optional_graphs = ("vae_encoder",)
    _callback_tensor_inputs = ("latents", "prompt_embeds")
    denoiser: Denoiser = FLUX_TRANSFORMER

    @classmethod
    def _load_tokenizers(cls, folder: Path) -> dict:
        missing = [n for n in ("tokenizer", "tokenizer_2") if not (folder / n).is_dir()]
        if missing:
            raise PipelineLoadError(f"{folder}: {cls.__name__} needs tokenizer/ (CLIP) and tokenizer_2/ (T5); missing "
                                    f"{', '.join(missing)}")
        return {"tokenizer": load_tokenizer(folder, "tokenizer"), "tokenizer_2": load_fast_tokenizer(folder, "tokenizer_2")}

    def _setup(self, *args, **kwargs):
        self._true_cfg_scale, self._true_cfg = 1.0, False
        super()._setup(*args, **kwargs)

    @property
    def latent_channels(self) -> int:
        return int(self.transformer_config.get("in_channels", 64)) // 4

    @property
    def guidance_embeds(self) -> bool:
        """A guidance-distilled model (dev): the transformer takes the guidance scale as an input."""
        return bool(self.transformer_config.get("guidance_embeds", False))

    @property
    def do_classifier_free_guidance(self) -> bool:
        """True CFG (a negative prompt and ``true_cfg_scale > 1``); ``guidance_scale`` is the embedded guidance."""
        return self._true_cfg and self._true_cfg_scale > 1

    @property
    def true_cfg_scale(self) -> float:
        return self._true_cfg_scale

    def default_size(self, height, width) -> tuple[int, int]:
        height = height or FLUX_DEFAULT_SAMPLE_SIZE * self.vae_scale_factor
        width = width or FLUX_DEFAULT_SAMPLE_SIZE * self.vae_scale_factor
        # diffusers warns and rounds down; a different image size than asked is refused here instead
        return self.check_size(height, width, self.size_multiple)

    @property
    def size_multiple(self) -> int:
        return self.vae_scale_factor * 2

    def size_rule(self) -> str:
        return f"the VAE scale factor {self.vae_scale_factor} times 2: FLUX packs 2x2 latent patches"

    t5_tokenizer_name = "tokenizer_2"

    def reshape(self, batch_size: int = 1, height: int | None = None, width: int | None = None,
                num_images_per_prompt: int = 1, true_cfg_scale: float = 1.0, max_sequence_length: int = 512):
        """Static shapes (OpenVINO) for calls of this size; ``true_cfg_scale > 1`` (with a negative prompt in the
        calls) doubles the transformer batch."""
        return super().reshape(batch_size, height, width, num_images_per_prompt, true_cfg_scale > 1,
                               max_sequence_length)

    def static_shape_plan(self, batch: int, height: int, width: int, per_prompt: int, guided: bool,
                          max_sequence_length: int) -> dict:
        """{component: {input: shape}}; None keeps a graph's own static dim."""
        images = batch * per_prompt
        rows = images * (2 if guided else 1)
        h, w = self.latent_size(height, width)
        tokens = (h // 2) * (w // 2)
        transformer = {"hidden_states": (rows, tokens, None), "timestep": (rows,),
                       "encoder_hidden_states": (rows, max_sequence_length, None), "pooled_projections": (rows, None),
                       "img_ids": (tokens, None), "txt_ids": (max_sequence_length, None)}
        if self.guidance_embeds:
            transformer["guidance"] = (rows,)
        plan = {"text_encoder": {"input_ids": (batch, self.tokenizers["tokenizer"].model_max_length)},
                "text_encoder_2": {"input_ids": (batch, max_sequence_length)}, "transformer": transformer}
        return {**plan, **self.vae_shapes(images, height, width)}

    # ---- prompts ---------------------------------------------------------------------------------

    def encode_prompt(self, prompt, prompt_2=None, num_images_per_prompt: int = 1, prompt_embeds=None,
                      pooled_prompt_embeds=None, max_sequence_length: int = 512):
        """(prompt_embeds [B, S, D] from T5, pooled_prompt_embeds [B, P] from CLIP, text_ids [S, 3] zeros),
        repeated ``num_images_per_prompt`` times per prompt."""
        texts = check_prompt_args(prompt, prompt_embeds, prompt_2=prompt_2)
        if prompt_embeds is None:
            texts_2 = as_prompts("prompt_2", prompt_2, len(texts)) or texts
            if len(texts_2) != len(texts):
                raise ValueError(f"prompt_2 has {len(texts_2)} entries, prompt {len(texts)}")
            _, pooled_prompt_embeds = self.clip_embeddings("tokenizer", "text_encoder", texts, hidden=False)
            prompt_embeds = self.t5_embeddings("tokenizer_2", "text_encoder_2", texts_2, max_sequence_length)
        elif pooled_prompt_embeds is None:
            raise ValueError("prompt_embeds needs pooled_prompt_embeds too (CLIP's pooled embedding)")
        embeds = np.repeat(np.asarray(prompt_embeds, dtype=np.float32), num_images_per_prompt, axis=0)
        pooled = np.repeat(np.asarray(pooled_prompt_embeds, dtype=np.float32), num_images_per_prompt, axis=0)
        return embeds, pooled, np.zeros((embeds.shape[1], 3), dtype=np.float32)

    def conditioning(self, prompt, prompt_2, negative_prompt, negative_prompt_2, num_images_per_prompt, prompt_embeds,
                     pooled_prompt_embeds, negative_prompt_embeds, negative_pooled_prompt_embeds,
                     max_sequence_length) -> tuple[dict, np.ndarray]:
        """The loop's starting state (without latents) and the text ids; sets whether true CFG runs."""
        max_sequence_length = self.check_max_sequence_length(max_sequence_length, "tokenizer_2")
        has_negative = negative_prompt is not None or (
            negative_prompt_embeds is not None and negative_pooled_prompt_embeds is not None)
        self._true_cfg = has_negative
        embeds, pooled, text_ids = self.encode_prompt(prompt, prompt_2, num_images_per_prompt, prompt_embeds,
                                                      pooled_prompt_embeds, max_sequence_length)
        state = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
        if self.do_classifier_free_guidance:
            if negative_prompt_embeds is None:
                batch = embeds.shape[0] // num_images_per_prompt
                negative_prompt = as_prompts("negative_prompt", negative_prompt, batch)
                negative_prompt_2 = as_prompts("negative_prompt_2", negative_prompt_2, batch)
            negative, negative_pooled, _ = self.encode_prompt(negative_prompt, negative_prompt_2, num_images_per_prompt,
                                                              negative_prompt_embeds, negative_pooled_prompt_embeds,
                                                              max_sequence_length)
            if negative.shape != embeds.shape:
                raise ValueError(f"the negative prompt embeddings have shape {negative.shape}, the prompt's "
                                 f"{embeds.shape}: give one negative prompt per prompt")
            state.update(negative_prompt_embeds=negative, negative_pooled_prompt_embeds=negative_pooled)
        return state, text_ids

    # ---- latents and the loop --------------------------------------------------------------------

    def latent_size(self, height: int, width: int) -> tuple[int, int]:
        """The unpacked latent grid: 2 * (size // (vae_scale_factor * 2)) (diffusers' rule)."""
        f = self.vae_scale_factor * 2
        return 2 * (height // f), 2 * (width // f)

    def prepare_latents(self, batch: int, height: int, width: int, generator, latents=None) -> np.ndarray:
        h, w = self.latent_size(height, width)
        packed = (batch, (h // 2) * (w // 2), self.latent_channels * 4)
        if latents is not None:
            latents = np.asarray(latents, dtype=np.float32)
            if latents.shape != packed:
                raise ValueError(f"latents must be packed, of shape {packed}, got {latents.shape}")
            return latents
        check_generator_count(generator, batch)
        return pack_latents(randn_tensor((batch, self.latent_channels, h, w), generator=generator, dtype=np.float32))

    def flux_timesteps(self, num_inference_steps, sigmas, image_seq_len: int, strength_steps: bool = False):
        """diffusers' FLUX schedule: default sigmas linspace(1, 1/n, n) (none on flow-sigma solvers), mu from the
        token count."""
        if sigmas is None:
            if not isinstance(num_inference_steps, (int, np.integer)) or num_inference_steps < 1:
                raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
            sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
        if self.scheduler.config.get("use_flow_sigmas"):
            sigmas = None
        mu = self.dynamic_shift_mu(image_seq_len, FLUX_MAX_SHIFT)
        return self.flow_timesteps(num_inference_steps, sigmas, mu)

    def hooks(self, text_ids: np.ndarray, image_ids: np.ndarray) -> LoopHooks:
        guidance = np.float32(self._guidance_scale) if self.guidance_embeds else None

        def feeds(state: dict, doubled: bool) -> dict:
            embeds, pooled = state["prompt_embeds"], state["pooled_prompt_embeds"]
            if doubled:  # one batch [negative, positive] instead of diffusers' two calls
                embeds = np.concatenate([state["negative_prompt_embeds"], embeds])
                pooled = np.concatenate([state["negative_pooled_prompt_embeds"], pooled])
            out = {"encoder_hidden_states": embeds, "pooled_projections": pooled}
            if guidance is not None:
                out["guidance"] = np.full((embeds.shape[0],), guidance, dtype=np.float32)
            return out

        return LoopHooks(unet_feeds=feeds, denoiser=self.denoiser, fixed_feeds={"txt_ids": text_ids, "img_ids": image_ids},
                         guidance_scale=lambda: self._true_cfg_scale)

    def decode_packed(self, latents: np.ndarray, height: int, width: int, output_type: str, return_dict: bool):
        if output_type != "latent":
            latents = unpack_latents(latents, *self.latent_size(height, width))
        return self.finish(latents, output_type, return_dict)

    def __call__(
        self,
        prompt=None,
        prompt_2=None,
        negative_prompt=None,
        negative_prompt_2=None,
        true_cfg_scale: float = 1.0,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 28,
        sigmas=None,
        guidance_scale: float = 3.5,
        num_images_per_prompt: int = 1,
        generator=None,
        latents=None,
        prompt_embeds=None,
        pooled_prompt_embeds=None,
        negative_prompt_embeds=None,
        negative_pooled_prompt_embeds=None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        max_sequence_length: int = 512,
    ):
        height, width = self.default_size(height, width)
        names = self._begin_call(callback_on_step_end, callback_on_step_end_tensor_inputs, guidance_scale, 0.0,
                                 num_images_per_prompt, output_type)
        self._true_cfg_scale = float(true_cfg_scale)
        state, text_ids = self.conditioning(prompt, prompt_2, negative_prompt, negative_prompt_2, num_images_per_prompt,
                                            prompt_embeds, pooled_prompt_embeds, negative_prompt_embeds,
                                            negative_pooled_prompt_embeds, max_sequence_length)
        generator = self._generator(generator)
        state["latents"] = self.prepare_latents(state["prompt_embeds"].shape[0], height, width, generator, latents)
        timesteps = self.flux_timesteps(num_inference_steps, sigmas, state["latents"].shape[1])
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(0)
        h, w = self.latent_size(height, width)
        state = denoise(self, timesteps, state, self.hooks(text_ids, latent_image_ids(h // 2, w // 2)),
                        self._step_kwargs(generator, None), callback_on_step_end, names)
        return self.decode_packed(state["latents"], height, width, output_type, return_dict)


@register_pipeline
class FluxImg2ImgPipeline(FlowImageToImage, FluxPipeline):
    """``pipe(prompt, image=init_image, strength=0.6, ...)``: the init image is encoded (a sample of the VAE
    encoder's Gaussian, ``(z - shift) * scaling``), moved along the flow to the first kept timestep with
    ``scheduler.scale_noise``, packed and denoised from there, as diffusers' ``FluxImg2ImgPipeline``."""

    required_graphs = {**FluxPipeline.required_graphs, "vae_encoder": ("sample",)}
    optional_graphs = ()

    def __call__(
        self,
        prompt=None,
        prompt_2=None,
        negative_prompt=None,
        negative_prompt_2=None,
        true_cfg_scale: float = 1.0,
        image=None,
        height: int | None = None,
        width: int | None = None,
        strength: float = 0.6,
        num_inference_steps: int = 28,
        sigmas=None,
        guidance_scale: float = 7.0,
        num_images_per_prompt: int = 1,
        generator=None,
        latents=None,
        prompt_embeds=None,
        pooled_prompt_embeds=None,
        negative_prompt_embeds=None,
        negative_pooled_prompt_embeds=None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        max_sequence_length: int = 512,
    ):
        height, width = self.default_size(height, width)
        check_strength(strength)
        names = self._begin_call(callback_on_step_end, callback_on_step_end_tensor_inputs, guidance_scale, 0.0,
                                 num_images_per_prompt, output_type)
        self._true_cfg_scale = float(true_cfg_scale)
        init = self.preprocess_image(image, height, width)
        state, text_ids = self.conditioning(prompt, prompt_2, negative_prompt, negative_prompt_2, num_images_per_prompt,
                                            prompt_embeds, pooled_prompt_embeds, negative_prompt_embeds,
                                            negative_pooled_prompt_embeds, max_sequence_length)
        batch = state["prompt_embeds"].shape[0]
        generator = self._generator(generator)
        check_generator_count(generator, batch)
        h, w = self.latent_size(height, width)
        # diffusers' FluxImg2ImgPipeline always passes sigmas (also to flow-sigma solvers, which then refuse them)
        if sigmas is None:
            if not isinstance(num_inference_steps, (int, np.integer)) or num_inference_steps < 1:
                raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
            sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
        tokens = (height // self.vae_scale_factor // 2) * (width // self.vae_scale_factor // 2)
        timesteps = self.flow_timesteps(num_inference_steps, sigmas, self.dynamic_shift_mu(tokens, FLUX_MAX_SHIFT))
        timesteps = self.strength_timesteps(timesteps, len(timesteps), strength)
        if latents is None:
            clean = spread_batch(self.encode_image_latents(init, generator), batch, "init images")
            latents = pack_latents(self.noised_latents(clean, timesteps[0], generator))
        state["latents"] = self.prepare_latents(batch, height, width, generator, latents)
        state = denoise(self, timesteps, state, self.hooks(text_ids, latent_image_ids(h // 2, w // 2)),
                        self._step_kwargs(generator, None), callback_on_step_end, names)
        return self.decode_packed(state["latents"], height, width, output_type, return_dict)
