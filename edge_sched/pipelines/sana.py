"""Sana text-to-image on exported graphs, step for step as diffusers' ``SanaPipeline`` runs it, so the same seed
gives the same image.

Method: prompts are lower-cased and stripped, prefixed by the complex human instruction (CHI: lines of
text joined by newlines; its token count less 2 is added to ``max_sequence_length``), tokenized by Gemma
(padded on the right) and encoded by Gemma2 with the attention mask; the embedding keeps its first token
and its last ``max_sequence_length - 1`` (the prompt after the instruction). Negative prompts (default "")
are encoded without the instruction. With ``use_resolution_binning`` the size is snapped to the nearest
aspect ratio of the model's table and the decoded image resized (bilinear, as torch's interpolate) and
centre-cropped back. The transformer is fed ``timestep`` = t * timestep_scale and the text's attention mask;
classifier-free guidance is ``uncond + scale (cond - uncond)``; latents decode through the DC-AE as
``latents / scaling_factor``.

The instruction text and the aspect-ratio tables are data of diffusers' pipeline: ``edge-sched export``
writes them into the folder (``pipeline_defaults.json``); a folder without it needs
``complex_human_instruction=`` given (or None) and ``use_resolution_binning=False``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from ..jsonfile import read_json
from ..random import randn_tensor
from .base import ImagePipelineOutput, PipelineLoadError, register_pipeline
from .common import check_generator_count
from .fast_tokenizer import load_fast_tokenizer
from .flow_base import TRANSFORMER, FlowPipelineBase, as_prompts, check_prompt_args
from .loop import LoopHooks, denoise

logger = logging.getLogger(__name__)

PIPELINE_DEFAULTS = "pipeline_defaults.json"
_FROM_FOLDER = object()  # complex_human_instruction's default: the one the folder records


def bilinear_resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """[N, C, H, W] -> [N, C, height, width] as torch's ``interpolate(mode="bilinear", align_corners=False)``
    without antialiasing: source coordinate (i + 0.5) * in / out - 0.5, clamped at 0, two-tap weights."""

    def taps(size_in: int, size_out: int):
        scale = np.float32(size_in) / np.float32(size_out)
        src = np.maximum((np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), 0)
        lo = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
        hi = np.minimum(lo + 1, size_in - 1)
        frac = (src - lo).astype(np.float32)
        return lo, hi, np.float32(1) - frac, frac

    y0, y1, wy0, wy1 = taps(images.shape[2], height)
    x0, x1, wx0, wx1 = taps(images.shape[3], width)
    rows = images[:, :, y0] * wy0[:, None] + images[:, :, y1] * wy1[:, None]
    return (rows[..., x0] * wx0 + rows[..., x1] * wx1).astype(np.float32, copy=False)


def resize_and_crop(images: np.ndarray, width: int, height: int) -> np.ndarray:
    """diffusers' ``resize_and_crop_tensor``: scale to cover (height, width), then crop the centre."""
    h, w = images.shape[2:]
    if (h, w) == (height, width):
        return images
    ratio = max(height / h, width / w)
    rh, rw = int(h * ratio), int(w * ratio)
    images = bilinear_resize(images, rh, rw)
    top, left = (rh - height) // 2, (rw - width) // 2
    return np.ascontiguousarray(images[:, :, top:top + height, left:left + width])


def nearest_bin(height: int, width: int, bins: dict) -> tuple[int, int]:
    """The (height, width) of the aspect ratio in ``bins`` closest to height / width (diffusers' rule)."""
    ratio = float(height / width)
    key = min(bins, key=lambda r: abs(float(r) - ratio))
    return int(bins[key][0]), int(bins[key][1])


@register_pipeline
class SanaPipeline(FlowPipelineBase):
    """``pipe(prompt, negative_prompt="", num_inference_steps=20, guidance_scale=4.5, height=1024, width=1024,
    use_resolution_binning=True, complex_human_instruction=<the folder's>, max_sequence_length=300, ...)``."""

    required_graphs = {
        "text_encoder": ("input_ids", "attention_mask"),
        "transformer": ("hidden_states", "timestep", "encoder_hidden_states", "encoder_attention_mask"),
        "vae_decoder": ("latent_sample",),
    }
    optional_graphs = ("vae_encoder",)
    _callback_tensor_inputs = ("latents", "prompt_embeds", "negative_prompt_embeds")
    t5_tokenizer_name = "tokenizer"
    max_sequence_limit = float("inf")

    @classmethod
    def _load_tokenizers(cls, folder: Path) -> dict:
        if not (folder / "tokenizer").is_dir():
            raise PipelineLoadError(f"{folder}: {cls.__name__} needs tokenizer/ (Gemma's tokenizer.json)")
        tokenizer = load_fast_tokenizer(folder, "tokenizer")
        tokenizer.padding_side = "right"  # diffusers sets it before every encoding
        return {"tokenizer": tokenizer}

    def _setup(self, *args, **kwargs):
        super()._setup(*args, **kwargs)
        path = self.folder / PIPELINE_DEFAULTS
        self.pipeline_defaults = read_json(path, error=PipelineLoadError) if path.is_file() else {}
        out, latent = self.transformer_config.get("out_channels"), self.transformer_config.get("in_channels")
        if out is not None and latent is not None and out != latent:
            raise PipelineLoadError(f"{self.folder / 'transformer' / 'config.json'}: out_channels {out} != in_channels "
                                    f"{latent} (a learned-sigma Sana transformer) is not supported")
        scale = float(self.transformer_config.get("timestep_scale", 1.0))
        self.denoiser = dataclasses.replace(TRANSFORMER, timestep=lambda t: np.float32(t) * np.float32(scale))

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae_config.get("encoder_block_out_channels", [0] * 6)) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.transformer_config.get("in_channels", 32))

    def default_size(self, height, width) -> tuple[int, int]:
        return self.check_size(height, width, self.size_multiple)

    size_multiple = 32  # diffusers' rule for Sana, whatever the DC-AE's factor

    def size_rule(self) -> str:
        return "diffusers' rule for Sana"

    # ---- prompts ---------------------------------------------------------------------------------

    def instruction(self, complex_human_instruction) -> list[str] | None:
        if complex_human_instruction is _FROM_FOLDER:
            if "complex_human_instruction" not in self.pipeline_defaults:
                raise ValueError(f"{self.folder}: no {PIPELINE_DEFAULTS} with diffusers' complex_human_instruction "
                                 "(export the folder with edge-sched export), so pass complex_human_instruction= "
                                 "(a list of lines, or None)")
            return self.pipeline_defaults["complex_human_instruction"]
        if complex_human_instruction is None or complex_human_instruction == []:
            return None
        if not isinstance(complex_human_instruction, (list, tuple)) or not all(
                isinstance(line, str) for line in complex_human_instruction):
            raise ValueError("complex_human_instruction must be a list of strings or None, got "
                             f"{type(complex_human_instruction).__name__}")
        return list(complex_human_instruction)

    def _gemma(self, texts: list[str], max_sequence_length: int, instruction: list[str] | None):
        """(embeddings [B, L, D], attention mask [B, L]) of Gemma2 on the lower-cased, stripped texts."""
        tokenizer = self.tokenizers["tokenizer"]
        texts = [t.lower().strip() for t in texts]
        length = max_sequence_length
        if instruction:
            prefix = "\n".join(instruction)
            texts = [prefix + t for t in texts]
            length = len(tokenizer.encode(prefix)) + max_sequence_length - 2
        tokens = tokenizer(texts, padding="max_length", max_length=length, truncation=True)
        graph = self.graph("text_encoder")
        out = self.run_batched(graph, lambda rows, n: {"input_ids": tokens.input_ids[rows],
                                                       "attention_mask": tokens.attention_mask[rows]},
                               len(texts), "input_ids")
        self.graphs.done_with("text_encoder")
        embeds = out.get("last_hidden_state", next(iter(out.values()))).astype(np.float32, copy=False)
        return embeds, tokens.attention_mask

    def encode_prompt(self, prompt, do_classifier_free_guidance: bool = True, negative_prompt="",
                      num_images_per_prompt: int = 1, prompt_embeds=None, negative_prompt_embeds=None,
                      prompt_attention_mask=None, negative_prompt_attention_mask=None, clean_caption: bool = False,
                      max_sequence_length: int = 300, complex_human_instruction=None):
        """(prompt_embeds, prompt_attention_mask, negative_prompt_embeds, negative_prompt_attention_mask) as
        diffusers' encode_prompt returns them (embeddings repeated per image; masks tiled over the batch)."""
        if clean_caption:
            raise ValueError("clean_caption=True needs bs4 and ftfy's caption cleaning, which the runtime does not "
                             "have; clean the prompt first and pass clean_caption=False")
        texts = check_prompt_args(prompt, prompt_embeds)
        instruction = self.instruction(complex_human_instruction)
        if prompt_embeds is None:
            embeds, mask = self._gemma(texts, max_sequence_length, instruction)
            keep = [0, *range(embeds.shape[1] - max_sequence_length + 1, embeds.shape[1])]  # diffusers' select_index
            embeds, mask = embeds[:, keep], mask[:, keep]
        else:
            if prompt_attention_mask is None:
                raise ValueError("prompt_embeds needs prompt_attention_mask too")
            embeds = np.asarray(prompt_embeds, np.float32)
            mask = np.asarray(prompt_attention_mask, np.int64)
        batch = embeds.shape[0]
        n = num_images_per_prompt
        # diffusers repeats the embeddings per prompt but tiles the masks over the batch: kept, for the same images
        embeds, mask = np.repeat(embeds, n, axis=0), np.tile(mask.reshape(batch, -1), (n, 1))
        negative = negative_mask = None
        if do_classifier_free_guidance:
            if negative_prompt_embeds is None:
                uncond = as_prompts("negative_prompt", negative_prompt, batch)
                if len(uncond) != batch:
                    raise ValueError(f"negative_prompt has {len(uncond)} entries, prompt {batch}")
                negative, negative_mask = self._gemma(uncond, max_sequence_length, None)
            else:
                if negative_prompt_attention_mask is None:
                    raise ValueError("negative_prompt_embeds needs negative_prompt_attention_mask too")
                negative = np.asarray(negative_prompt_embeds, np.float32)
                negative_mask = np.asarray(negative_prompt_attention_mask, np.int64)
            negative = np.repeat(negative, n, axis=0)
            negative_mask = np.tile(negative_mask.reshape(batch, -1), (n, 1))
        return embeds, mask, negative, negative_mask

    # ---- static shapes -----------------------------------------------------------------------------

    def reshape(self, batch_size: int = 1, height: int = 1024, width: int = 1024, num_images_per_prompt: int = 1,
                guidance_scale: float = 4.5, max_sequence_length: int = 300, use_resolution_binning: bool = True):
        """Static shapes (OpenVINO) for calls of this size (binned first when ``use_resolution_binning``); the
        text encoder keeps a dynamic length (the instruction makes the prompts longer than the negatives)."""
        if use_resolution_binning:
            height, width = nearest_bin(height, width, self._bins())
        return super().reshape(batch_size, height, width, num_images_per_prompt, guidance_scale > 1,
                               max_sequence_length)

    def static_shape_plan(self, batch: int, height: int, width: int, per_prompt: int, guided: bool,
                          max_sequence_length: int) -> dict:
        images = batch * per_prompt
        rows = images * (2 if guided else 1)
        latent = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        plan = {"transformer": {"hidden_states": (rows, None, *latent), "timestep": (rows,),
                                "encoder_hidden_states": (rows, max_sequence_length, None),
                                "encoder_attention_mask": (rows, max_sequence_length)}}
        return {**plan, **self.vae_shapes(images, height, width)}

    # ---- generation ------------------------------------------------------------------------------

    def _bins(self) -> dict:
        bins = self.pipeline_defaults.get("aspect_ratio_bins")
        if not bins:
            raise ValueError(f"{self.folder}: no aspect-ratio bins for this transformer's sample_size "
                             f"({self.transformer_config.get('sample_size')}) in {PIPELINE_DEFAULTS} (export the folder "
                             "with edge-sched export); pass use_resolution_binning=False")
        return bins

    def prepare_latents(self, batch: int, height: int, width: int, generator, latents=None) -> np.ndarray:
        shape = (batch, self.latent_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        if latents is not None:
            latents = np.asarray(latents, dtype=np.float32)
            if latents.shape != shape:
                raise ValueError(f"latents must have shape {shape}, got {latents.shape}")
            return latents
        check_generator_count(generator, batch)
        return randn_tensor(shape, generator=generator, dtype=np.float32)

    def decode_latents(self, latents: np.ndarray) -> np.ndarray:
        """latents -> images in [-1, 1] through the DC-AE: ``latents / scaling_factor`` (no shift factor)."""
        vae = self.graph("vae_decoder")
        scaled = latents / np.float32(self.scaling_factor)
        images = self.run_batched(vae, lambda rows, n: {"latent_sample": scaled[rows]}, scaled.shape[0],
                                  "latent_sample")["sample"]
        self.graphs.done_with("vae_decoder")
        return images.astype(np.float32, copy=False)

    def __call__(
        self,
        prompt=None,
        negative_prompt="",
        num_inference_steps: int = 20,
        timesteps=None,
        sigmas=None,
        guidance_scale: float = 4.5,
        num_images_per_prompt: int = 1,
        height: int = 1024,
        width: int = 1024,
        eta: float = 0.0,
        generator=None,
        latents=None,
        prompt_embeds=None,
        prompt_attention_mask=None,
        negative_prompt_embeds=None,
        negative_prompt_attention_mask=None,
        output_type: str = "pil",
        return_dict: bool = True,
        clean_caption: bool = False,
        use_resolution_binning: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        max_sequence_length: int = 300,
        complex_human_instruction=_FROM_FOLDER,
    ):
        requested = self.check_size(height, width, 1)
        if use_resolution_binning:
            height, width = nearest_bin(height, width, self._bins())
        height, width = self.default_size(height, width)
        names = self._begin_call(callback_on_step_end, callback_on_step_end_tensor_inputs, guidance_scale, 0.0,
                                 num_images_per_prompt, output_type)
        max_sequence_length = self.check_max_sequence_length(max_sequence_length, "tokenizer", self.max_sequence_limit)
        guided = self.do_classifier_free_guidance
        embeds, mask, negative, negative_mask = self.encode_prompt(
            prompt, guided, negative_prompt, num_images_per_prompt, prompt_embeds, negative_prompt_embeds,
            prompt_attention_mask, negative_prompt_attention_mask, clean_caption, max_sequence_length,
            complex_human_instruction)
        state = {"prompt_embeds": embeds, "prompt_attention_mask": mask, "negative_prompt_embeds": negative}
        if guided:
            state["prompt_embeds"] = np.concatenate([negative, embeds])
            state["prompt_attention_mask"] = np.concatenate([negative_mask, mask])
        generator = self._generator(generator)
        schedule = self.flow_timesteps(num_inference_steps, sigmas, timesteps=timesteps)
        state["latents"] = self.prepare_latents(embeds.shape[0], height, width, generator, latents)

        def feeds(state: dict, doubled: bool) -> dict:
            return {"encoder_hidden_states": state["prompt_embeds"],
                    "encoder_attention_mask": state["prompt_attention_mask"]}

        state = denoise(self, schedule, state, LoopHooks(unet_feeds=feeds, denoiser=self.denoiser),
                        self._step_kwargs(generator, eta), callback_on_step_end, names)
        latents = state["latents"]
        if output_type == "latent":
            return ImagePipelineOutput(latents) if return_dict else (latents,)
        from .image_io import image_processor  # needs Pillow

        decoded = self.decode_latents(latents)
        if use_resolution_binning:
            decoded = resize_and_crop(decoded, requested[1], requested[0])
        images = image_processor(self.vae_scale_factor).postprocess(decoded, output_type)
        return ImagePipelineOutput(images) if return_dict else (images,)
