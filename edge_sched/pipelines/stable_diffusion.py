"""Stable Diffusion 1.x / 2.x text-to-image on exported graphs, step for step as diffusers'
``StableDiffusionPipeline`` runs it (same prompt encoding, latents, guidance and decoding), so the
same seed gives the same image."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from ..random import randn_tensor
from .base import DiffusionPipeline, ImagePipelineOutput, register_pipeline
from .guidance import classifier_free_guidance


logger = logging.getLogger(__name__)


class StableDiffusionBase(DiffusionPipeline):
    """Prompt encoding, latent shapes, guided UNet calls and VAE decoding shared by the SD pipelines."""

    required_graphs = {
        "text_encoder": ("input_ids",),
        "unet": ("sample", "timestep", "encoder_hidden_states"),
        "vae_decoder": ("latent_sample",),
    }
    optional_graphs = ("vae_encoder",)

    @classmethod
    def _load_tokenizers(cls, folder: Path) -> dict:
        return {"tokenizer": load_tokenizer(folder, "tokenizer")}

    @property
    def tokenizer(self):
        return self.tokenizers["tokenizer"]

    @property
    def unet_config(self) -> dict:
        return self.components.configs.get("unet", {})

    @property
    def vae_config(self) -> dict:
        return self.components.configs.get("vae_decoder", {})

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae_config.get("block_out_channels", [0, 0, 0, 0])) - 1)

    @property
    def scaling_factor(self) -> float:
        return float(self.vae_config.get("scaling_factor", 0.18215))

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
        self.components.set_static_shapes(self.static_shape_plan(batch_size, height, width, num_images_per_prompt,
                                                                 guidance_scale > 1))
        return self

    def static_shape_plan(self, batch: int, height: int, width: int, per_prompt: int, guided: bool) -> dict:
        """{component: {input: shape}} for one call; None keeps a graph's own static dim."""
        length = self.tokenizer.model_max_length
        images = batch * per_prompt
        unet_batch = images * (2 if guided and self.unet_config.get("time_cond_proj_dim") is None else 1)
        latent = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        unet = {"sample": (unet_batch, None, *latent), "timestep": (unet_batch,),
                "encoder_hidden_states": (unet_batch, length, None)}
        unet.update({n: (unet_batch, None) for n in self.required_graphs["unet"] if n not in unet})
        plan = {n: {"input_ids": (batch, length)} for n in self.required_graphs if n.startswith("text_encoder")}
        plan.update(unet=unet, vae_decoder={"latent_sample": (images, None, *latent)})
        if "vae_encoder" in self.components:
            plan["vae_encoder"] = {"sample": (images, None, height, width)}
        return plan

    # ---- prompts ---------------------------------------------------------------------------------

    @staticmethod
    def _prompt_list(prompt, prompt_embeds) -> list[str] | None:
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

    def _encode_text(self, texts: list[str], max_length: int | None = None) -> np.ndarray:
        ids = self.tokenizer(texts, padding="max_length", max_length=max_length or self.tokenizer.model_max_length,
                             truncation=True).input_ids
        full = self.tokenizer(texts, padding="longest", truncation=False).input_ids
        if full.shape[1] > ids.shape[1]:
            logger.warning("the prompt was longer than the text encoder's %d tokens and was truncated", ids.shape[1])
        encoder = self.graph("text_encoder")
        out = self.run_batched(encoder, lambda rows, n: {"input_ids": ids[rows]}, ids.shape[0], "input_ids")
        hidden = out.get("last_hidden_state", next(iter(out.values())))
        self.components.done_with("text_encoder")
        return hidden.astype(np.float32, copy=False)

    def encode_prompt(self, prompt, num_images_per_prompt: int, do_cfg: bool, negative_prompt=None,
                      prompt_embeds=None, negative_prompt_embeds=None) -> tuple[np.ndarray, np.ndarray | None]:
        """(prompt_embeds, negative_prompt_embeds), each repeated ``num_images_per_prompt`` times per prompt."""
        texts = self._prompt_list(prompt, prompt_embeds)
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

    def predict_noise(self, latents: np.ndarray, t, embeds: np.ndarray, negative: np.ndarray | None,
                      guidance_scale: float, guidance_rescale: float = 0.0, extra: dict | None = None) -> np.ndarray:
        """One guided UNet evaluation: [uncond, cond] in one batch (split into the graph's static batch
        when it has one, e.g. two batch-1 calls on an NPU graph)."""
        unet = self.graph("unet")
        extra = extra or {}
        if negative is None:
            return self._unet(unet, self.scheduler.scale_model_input(latents, t), t, embeds, extra)
        inp = self.scheduler.scale_model_input(np.concatenate([latents, latents]), t)
        both = self._unet(unet, inp, t, np.concatenate([negative, embeds]),
                          {k: np.concatenate([v, v]) for k, v in extra.items()})
        uncond, cond = np.split(both, 2)
        return classifier_free_guidance(uncond, cond, guidance_scale, guidance_rescale)

    def _unet(self, unet, sample, t, embeds, extra) -> np.ndarray:
        def feeds(rows: slice, n: int) -> dict:
            return {"sample": sample[rows], "timestep": self.timestep_feed(unet, t, n),
                    "encoder_hidden_states": embeds[rows], **{k: v[rows] for k, v in extra.items()}}

        return self.run_batched(unet, feeds, sample.shape[0], "sample")["out_sample"].astype(np.float32, copy=False)

    def decode_latents(self, latents: np.ndarray) -> np.ndarray:
        """latents -> images in [-1, 1] (NCHW)."""
        vae = self.graph("vae_decoder")
        scaled = latents / np.float32(self.scaling_factor)
        images = self.run_batched(vae, lambda rows, n: {"latent_sample": scaled[rows]}, scaled.shape[0],
                                  "latent_sample")["sample"]
        self.components.done_with("vae_decoder")
        return images.astype(np.float32, copy=False)

    def _finish(self, latents, output_type, return_dict):
        if output_type == "latent":
            images = latents
        else:
            from .image_io import image_processor  # needs Pillow

            images = image_processor(self.vae_scale_factor).postprocess(self.decode_latents(latents), output_type)
        return ImagePipelineOutput(images) if return_dict else (images, None)

    def denoise(self, latents, timesteps, embeds, negative, guidance_scale, guidance_rescale, step_kwargs,
                callback_on_step_end=None, callback_tensor_inputs=("latents",), extra=None) -> np.ndarray:
        """The denoising loop: guided UNet, scheduler step, NaN check, callback, progress."""
        state = {"latents": latents, "prompt_embeds": embeds, "negative_prompt_embeds": negative}
        with self.progress_bar(timesteps) as bar:
            for i, t in enumerate(timesteps):
                noise = self.predict_noise(state["latents"], t, state["prompt_embeds"], state["negative_prompt_embeds"],
                                           guidance_scale, guidance_rescale, extra)
                state["latents"] = self.scheduler.step(noise, t, state["latents"], **step_kwargs, return_dict=False)[0]
                self._check_finite(state["latents"], i, t)
                state = self._callback(callback_on_step_end, self, i, t, state, callback_tensor_inputs)
                bar.update()
        self.components.done_with("unet")
        return state["latents"]


@register_pipeline
class StableDiffusionPipeline(StableDiffusionBase):
    """Text-to-image: ``pipe(prompt, num_inference_steps=..., guidance_scale=..., generator=seed).images``."""

    def __call__(
        self,
        prompt=None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 50,
        timesteps=None,
        sigmas=None,
        guidance_scale: float = 7.5,
        negative_prompt=None,
        num_images_per_prompt: int = 1,
        eta: float = 0.0,
        generator=None,
        latents=None,
        prompt_embeds=None,
        negative_prompt_embeds=None,
        output_type: str = "pil",
        return_dict: bool = True,
        guidance_rescale: float = 0.0,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
    ):
        height, width = self._default_size(height, width)
        check_common(num_images_per_prompt, output_type)
        do_cfg = guidance_scale > 1 and self.unet_config.get("time_cond_proj_dim") is None
        embeds, negative = self.encode_prompt(prompt, num_images_per_prompt, do_cfg, negative_prompt,
                                              prompt_embeds, negative_prompt_embeds)
        generator = self._generator(generator)
        timesteps = self._set_timesteps(num_inference_steps, timesteps, sigmas)
        latents = self.prepare_latents(embeds.shape[0], height, width, generator, latents)
        latents = self.denoise(latents, timesteps, embeds, negative, guidance_scale, guidance_rescale,
                               self._step_kwargs(generator, eta), callback_on_step_end,
                               callback_on_step_end_tensor_inputs)
        return self._finish(latents, output_type, return_dict)


OUTPUT_TYPES = ("pil", "np", "latent")


def load_tokenizer(folder: Path, name: str):
    """The CLIP tokenizer in ``folder/name``, in the flavour model_index.json names (slow unless ...Fast)."""
    from .loading import read_model_index
    from .tokenizer import CLIPTokenizer  # needs the `tokenizers` package

    entry = read_model_index(folder).get(name) or [None, "CLIPTokenizer"]
    flavor = "fast" if str(entry[-1]).endswith("Fast") else "slow"
    return CLIPTokenizer.from_folder(folder / name, flavor=flavor)


def check_common(num_images_per_prompt, output_type) -> None:
    if not isinstance(num_images_per_prompt, (int, np.integer)) or num_images_per_prompt < 1:
        raise ValueError(f"num_images_per_prompt must be a positive integer, got {num_images_per_prompt!r}")
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
