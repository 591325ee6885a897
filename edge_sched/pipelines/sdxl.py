"""Stable Diffusion XL text-to-image, as diffusers' ``StableDiffusionXLPipeline`` runs it.

Method: each prompt goes through two CLIP tokenizers / text encoders (``prompt`` -> text_encoder,
``prompt_2`` (default: ``prompt``) -> text_encoder_2); the prompt embedding is the penultimate
hidden state of each (``hidden_states.{N-1}`` of the graph's ``hidden_states.0..N`` outputs, or
``N-1-clip_skip``), concatenated on the feature axis; the pooled embedding is text_encoder_2's
projected ``text_embeds``. The UNet's added conditioning takes that pooled embedding
(``text_embeds``) and six "time ids" (original size, crop corner, target size, in pixels). With
classifier-free guidance the negative embeddings are zeros when no negative prompt is given and the
model index says ``force_zeros_for_empty_prompt``; otherwise the negative prompts are encoded the
same way. The loop, guidance rescale and VAE decoding are those of Stable Diffusion (at float32
the VAE's ``force_upcast`` changes nothing). The invisible watermark diffusers may apply is not.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .base import ImagePipelineOutput, PipelineLoadError, register_pipeline
from .common import check_generator_count, load_tokenizer, prompt_list
from .loop import denoise
from .sd_base import StableDiffusionBase

logger = logging.getLogger(__name__)


def _as_list(name: str, value, batch: int | None = None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value] * (batch or 1)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"{name} must be a string or a non-empty list of strings, got {type(value).__name__}")


def _pair(name: str, value) -> tuple[int, int]:
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) for v in value)):
        raise ValueError(f"{name} must be a pair of integers (height, width) / (top, left), got {value!r}")
    return int(value[0]), int(value[1])


@register_pipeline
class StableDiffusionXLPipeline(StableDiffusionBase):
    """``pipe(prompt, prompt_2=None, negative_prompt=None, guidance_scale=5.0, original_size=..., ...)``."""

    required_graphs = {
        "text_encoder_2": ("input_ids",),
        "unet": ("sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"),
        "vae_decoder": ("latent_sample",),
    }
    optional_graphs = ("text_encoder", "vae_encoder")
    _callback_tensor_inputs = ("latents", "prompt_embeds", "add_text_embeds", "add_time_ids")
    _component_names = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "scheduler",
                        "image_encoder", "feature_extractor")

    @classmethod
    def _load_tokenizers(cls, folder: Path) -> dict:
        names = [n for n in ("tokenizer", "tokenizer_2") if (folder / n).is_dir()]
        if "tokenizer_2" not in names:
            raise PipelineLoadError(f"{folder}: StableDiffusionXLPipeline needs tokenizer_2/ (found: {names or 'none'})")
        return {n: load_tokenizer(folder, n) for n in names}

    @property
    def force_zeros_for_empty_prompt(self) -> bool:
        default = self.model_index.get("force_zeros_for_empty_prompt", True)
        return bool(self._pipeline_config.get("force_zeros_for_empty_prompt", default))

    # ---- prompts ---------------------------------------------------------------------------------

    def _encoders(self) -> list[tuple[str, str]]:
        """(tokenizer, text encoder) pairs in diffusers' order; SDXL refiners have only the second."""
        pairs = [("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")]
        return [p for p in pairs if p[0] in self.tokenizers and p[1] in self.graphs]

    def _run_encoder(self, tokenizer_name: str, encoder_name: str, texts: list[str], clip_skip, max_length=None):
        """(penultimate hidden states or the clip_skip one, pooled embedding or None) of one text encoder."""
        tokenizer = self.tokenizers[tokenizer_name]
        ids = tokenizer(texts, padding="max_length", max_length=max_length or tokenizer.model_max_length,
                        truncation=True).input_ids
        if max_length is None and tokenizer(texts, padding="longest", truncation=False).input_ids.shape[1] > ids.shape[1]:
            logger.warning("the prompt was longer than %s's %d tokens and was truncated", tokenizer_name, ids.shape[1])
        graph = self.graph(encoder_name)
        hidden = sorted((int(n.split(".")[1]), n) for n in graph.outputs
                        if n.startswith("hidden_states.") and n.split(".")[1].isdigit())
        if len(hidden) < 2:
            raise PipelineLoadError(f"{graph.path}: SDXL needs the text encoder's hidden states (outputs hidden_states.0 "
                                    f"... hidden_states.N); this graph gives {', '.join(graph.outputs)}")
        skip = 0 if clip_skip is None else int(clip_skip)
        if not 0 <= skip <= len(hidden) - 2:
            raise ValueError(f"clip_skip must be in [0, {len(hidden) - 2}] for this text encoder, got {clip_skip!r}")
        out = graph(input_ids=ids)
        self.graphs.done_with(encoder_name)
        # diffusers takes the pooled embedding from the first encoder whose first output is 2-d (the projection)
        first = out[next(iter(graph.outputs))]
        pooled = first.astype(np.float32) if first.ndim == 2 else None
        return out[hidden[-2 - skip][1]].astype(np.float32, copy=False), pooled

    def _encode_pair(self, texts: list[str], texts_2: list[str], clip_skip, max_length=None):
        embeds, pooled = [], None
        # with only text_encoder_2 (refiners) diffusers feeds it ``prompt``: zip stops at the shorter list
        for (tok, enc), batch in zip(self._encoders(), [texts, texts_2]):
            hidden, p = self._run_encoder(tok, enc, batch, clip_skip, max_length)
            embeds.append(hidden)
            pooled = p if pooled is None else pooled
        if pooled is None:
            raise PipelineLoadError(f"{self.folder / 'text_encoder_2'}: its first output must be the pooled, projected "
                                    "text embedding (text_embeds, 2-d)")
        return np.concatenate(embeds, axis=-1), pooled

    def encode_prompt(self, prompt, prompt_2=None, device=None, num_images_per_prompt: int = 1,
                      do_classifier_free_guidance: bool = True, negative_prompt=None, negative_prompt_2=None,
                      prompt_embeds=None, negative_prompt_embeds=None, pooled_prompt_embeds=None,
                      negative_pooled_prompt_embeds=None, lora_scale=None, clip_skip=None):
        """diffusers' SDXL ``encode_prompt`` (same arguments, in order; ``device`` is not used): numpy
        (prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds)."""
        if lora_scale is not None:
            raise ValueError(f"lora_scale={lora_scale!r}: LoRA weights are fused at export here")
        return self.encode_prompt_xl(prompt, prompt_2, num_images_per_prompt, do_classifier_free_guidance,
                                     negative_prompt, negative_prompt_2, prompt_embeds, negative_prompt_embeds,
                                     pooled_prompt_embeds, negative_pooled_prompt_embeds, clip_skip)

    def encode_prompt_xl(self, prompt, prompt_2, num_images_per_prompt: int, do_cfg: bool, negative_prompt=None,
                         negative_prompt_2=None, prompt_embeds=None, negative_prompt_embeds=None,
                         pooled_prompt_embeds=None, negative_pooled_prompt_embeds=None, clip_skip=None):
        """(prompt_embeds, negative_prompt_embeds, pooled, negative_pooled), each repeated per image."""
        texts = prompt_list(prompt, prompt_embeds)
        if prompt_embeds is None:
            texts_2 = _as_list("prompt_2", prompt_2) or texts
            if len(texts_2) != len(texts):
                raise ValueError(f"prompt_2 has {len(texts_2)} entries, prompt {len(texts)}")
            prompt_embeds, pooled_prompt_embeds = self._encode_pair(texts, texts_2, clip_skip)
        elif prompt_2 is not None:
            raise ValueError("give either prompt_2 or prompt_embeds, not both")
        elif pooled_prompt_embeds is None:
            raise ValueError("prompt_embeds needs pooled_prompt_embeds too (text_encoder_2's text_embeds)")
        prompt_embeds = np.asarray(prompt_embeds, dtype=np.float32)
        pooled_prompt_embeds = np.asarray(pooled_prompt_embeds, dtype=np.float32)
        batch = prompt_embeds.shape[0]
        negative = negative_pooled = None
        if do_cfg:
            if negative_prompt_embeds is not None:
                if negative_prompt is not None or negative_prompt_2 is not None:
                    raise ValueError("give either negative_prompt(_2) or negative_prompt_embeds, not both")
                if negative_pooled_prompt_embeds is None:
                    raise ValueError("negative_prompt_embeds needs negative_pooled_prompt_embeds too")
                negative = np.asarray(negative_prompt_embeds, dtype=np.float32)
                negative_pooled = np.asarray(negative_pooled_prompt_embeds, dtype=np.float32)
                if negative.shape != prompt_embeds.shape:
                    raise ValueError(f"negative_prompt_embeds has shape {negative.shape}, prompt_embeds {prompt_embeds.shape}")
            elif negative_prompt is None and self.force_zeros_for_empty_prompt:
                negative = np.zeros_like(prompt_embeds)
                negative_pooled = np.zeros_like(pooled_prompt_embeds)
            else:
                uncond = _as_list("negative_prompt", negative_prompt or "", batch)
                uncond_2 = _as_list("negative_prompt_2", negative_prompt_2 or negative_prompt or "", batch)
                if len(uncond) != batch or len(uncond_2) != batch:
                    raise ValueError(f"negative_prompt(_2) must be a string or a list of {batch} strings (one per prompt)")
                # the negative prompt always takes the penultimate layer (clip_skip is for the prompt only)
                negative, negative_pooled = self._encode_pair(uncond, uncond_2, None, max_length=prompt_embeds.shape[1])
            negative = np.repeat(negative, num_images_per_prompt, axis=0)
            negative_pooled = np.repeat(negative_pooled, num_images_per_prompt, axis=0)
        return (np.repeat(prompt_embeds, num_images_per_prompt, axis=0), negative,
                np.repeat(pooled_prompt_embeds, num_images_per_prompt, axis=0), negative_pooled)

    # ---- added conditioning ----------------------------------------------------------------------

    def add_time_ids(self, original_size, crops_coords_top_left, target_size, pooled_dim: int) -> np.ndarray:
        """[1, 6] float32: original (h, w), crop (top, left), target (h, w); checked against the UNet's width."""
        ids = [*_pair("original_size", original_size), *_pair("crops_coords_top_left", crops_coords_top_left),
               *_pair("target_size", target_size)]
        cfg = self.unet_config
        time_dim, expected = cfg.get("addition_time_embed_dim"), cfg.get("projection_class_embeddings_input_dim")
        if time_dim is not None and expected is not None and time_dim * len(ids) + pooled_dim != expected:
            raise ValueError(
                f"{self.folder / 'unet' / 'config.json'}: the UNet expects an added embedding of {expected} values, "
                f"the pipeline makes {time_dim} x {len(ids)} time ids + {pooled_dim} pooled text values = "
                f"{time_dim * len(ids) + pooled_dim}; check addition_time_embed_dim and text_encoder_2's projection_dim"
            )
        return np.asarray([ids], dtype=np.float32)

    def decode_latents_xl(self, latents: np.ndarray) -> np.ndarray:
        """As ``decode_latents``, un-normalising with the VAE's ``latents_mean`` / ``latents_std`` when it has them."""
        mean, std = self.vae_config.get("latents_mean"), self.vae_config.get("latents_std")
        if mean is None or std is None:
            return self.decode_latents(latents)
        shape = (1, len(mean), 1, 1)
        mean, std = np.asarray(mean, np.float32).reshape(shape), np.asarray(std, np.float32).reshape(shape)
        sf = np.float32(self.scaling_factor)
        # decode_latents divides by the scaling factor; multiplying it back first costs at most an ulp
        return self.decode_latents((latents * std / sf + mean) * sf)

    # ---- generation ------------------------------------------------------------------------------

    def __call__(
        self,
        prompt=None,
        prompt_2=None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 50,
        timesteps=None,
        sigmas=None,
        denoising_end: float | None = None,
        guidance_scale: float = 5.0,
        negative_prompt=None,
        negative_prompt_2=None,
        num_images_per_prompt: int = 1,
        eta: float = 0.0,
        generator=None,
        latents=None,
        prompt_embeds=None,
        negative_prompt_embeds=None,
        pooled_prompt_embeds=None,
        negative_pooled_prompt_embeds=None,
        output_type: str = "pil",
        return_dict: bool = True,
        guidance_rescale: float = 0.0,
        original_size=None,
        crops_coords_top_left=(0, 0),
        target_size=None,
        negative_original_size=None,
        negative_crops_coords_top_left=(0, 0),
        negative_target_size=None,
        clip_skip: int | None = None,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        guidance_interval=None,
    ):
        height, width = self._default_size(height, width)
        names = self._begin_call(callback_on_step_end, callback_on_step_end_tensor_inputs, guidance_scale,
                                 guidance_rescale, num_images_per_prompt, output_type, guidance_interval)
        if denoising_end is not None and not isinstance(denoising_end, (int, float)):
            raise ValueError(f"denoising_end must be a float in (0, 1), got {denoising_end!r}")
        original_size = original_size or (height, width)
        target_size = target_size or (height, width)
        do_cfg = self.do_classifier_free_guidance

        embeds, negative, pooled, negative_pooled = self.encode_prompt_xl(
            prompt, prompt_2, num_images_per_prompt, do_cfg, negative_prompt, negative_prompt_2, prompt_embeds,
            negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds, clip_skip)
        batch = embeds.shape[0]
        generator = self._generator(generator)
        check_generator_count(generator, batch)
        timesteps = self._set_timesteps(num_inference_steps, timesteps, sigmas)
        latents = self.prepare_latents(batch, height, width, generator, latents)
        step_kwargs = self._step_kwargs(generator, eta)

        time_ids = self.add_time_ids(original_size, crops_coords_top_left, target_size, pooled.shape[-1])
        if negative_original_size is not None and negative_target_size is not None:
            negative_time_ids = self.add_time_ids(negative_original_size, negative_crops_coords_top_left,
                                                  negative_target_size, pooled.shape[-1])
        else:
            negative_time_ids = time_ids
        state = {"latents": latents, "prompt_embeds": embeds, "add_text_embeds": pooled}
        if do_cfg:
            state["prompt_embeds"] = np.concatenate([negative, embeds])
            state["add_text_embeds"] = np.concatenate([negative_pooled, pooled])
            time_ids = np.concatenate([negative_time_ids, time_ids])
        # diffusers tiles the ([negative,] positive) rows once per image: with several images and distinct
        # negative time ids the rows alternate, and the batch halves get both; kept, for the same images
        state["add_time_ids"] = np.tile(time_ids, (batch, 1))

        if isinstance(denoising_end, float) and 0 < denoising_end < 1:
            train = self.scheduler.config.num_train_timesteps
            cutoff = int(round(train - denoising_end * train))
            timesteps = self._record_timesteps(timesteps[:int(np.sum(np.asarray(timesteps) >= cutoff))])
        self.scheduler.set_begin_index(0)

        hooks = self.text_hooks(self.timestep_cond(batch), {
            "encoder_hidden_states": "prompt_embeds", "text_embeds": "add_text_embeds", "time_ids": "add_time_ids"})
        state = denoise(self, timesteps, state, hooks, step_kwargs, callback_on_step_end, names)
        latents = state["latents"]
        if output_type == "latent":
            images = latents
        else:
            from .image_io import image_processor  # needs Pillow

            images = image_processor(self.vae_scale_factor).postprocess(self.decode_latents_xl(latents), output_type)
        return ImagePipelineOutput(images) if return_dict else (images,)
