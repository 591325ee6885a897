"""Stable Diffusion image-to-image, as diffusers' ``StableDiffusionImg2ImgPipeline`` runs it: the init
image is encoded (VAE encoder, a sample of its Gaussian drawn from the generator), noised to the
timestep ``strength`` of the way into the schedule, and denoised from there."""

from __future__ import annotations

import numpy as np

from ..random import randn_tensor
from .base import register_pipeline
from .common import check_generator_count, check_strength, spread_batch, vae_latents
from .loop import denoise
from .sd_base import StableDiffusionBase


@register_pipeline
class StableDiffusionImg2ImgPipeline(StableDiffusionBase):
    """``pipe(prompt, image=init_image, strength=0.8, ...)``."""

    required_graphs = {**StableDiffusionBase.required_graphs, "vae_encoder": ("sample",)}
    _scheduler_config_fixes = ("steps_offset", "clip_sample")
    _unet_sample_size_fix = "any"

    def image_to_image_arguments(self, image, mask, strength) -> dict:
        if mask is not None:
            raise ValueError("--mask is for inpainting pipelines; this one does image-to-image")
        if image is None:
            raise ValueError("image-to-image needs --init-image")
        return {"image": image} if strength is None else {"image": image, "strength": strength}

    def encode_image(self, image: np.ndarray, batch: int, generator) -> np.ndarray:
        """Init images [n, 3, H, W] in [-1, 1] -> scaled latents for ``batch`` images (diffusers' rules:
        with one generator per image, the init images are repeated to the batch first)."""
        if isinstance(generator, list):
            check_generator_count(generator, batch)
            image = spread_batch(image, batch, "init images")
        self.graph("vae_encoder")  # checked (low-memory mode) before use
        latents = vae_latents(self.vae.latent_parameters, image, generator, self.scaling_factor)
        self.graphs.done_with("vae_encoder")
        return spread_batch(latents, batch, "init images")

    def __call__(
        self,
        prompt=None,
        image=None,
        strength: float = 0.8,
        num_inference_steps: int = 50,
        timesteps=None,
        sigmas=None,
        guidance_scale: float = 7.5,
        negative_prompt=None,
        num_images_per_prompt: int = 1,
        eta: float = 0.0,
        generator=None,
        prompt_embeds=None,
        negative_prompt_embeds=None,
        output_type: str = "pil",
        return_dict: bool = True,
        guidance_rescale: float = 0.0,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        guidance_interval=None,
    ):
        check_strength(strength)
        if image is None:
            raise ValueError("image-to-image needs an init image (image=...)")
        names = self._begin_call(callback_on_step_end, callback_on_step_end_tensor_inputs, guidance_scale,
                                 guidance_rescale, num_images_per_prompt, output_type, guidance_interval)
        from .image_io import image_processor  # needs Pillow

        init = image_processor(self.vae_scale_factor).preprocess(image)
        embeds, negative = self.encode_prompt(prompt, None, num_images_per_prompt, self.do_classifier_free_guidance,
                                              negative_prompt, prompt_embeds, negative_prompt_embeds)
        generator = self._generator(generator)
        self._set_timesteps(num_inference_steps, timesteps, sigmas)
        schedule = self.strength_timesteps(num_inference_steps, strength, timesteps is not None or sigmas is not None)
        batch = embeds.shape[0]
        clean = init if init.shape[1] == 4 else self.encode_image(init, batch, generator)
        noise = randn_tensor(clean.shape, generator=generator, dtype=np.float32)
        latents = self.scheduler.add_noise(clean, noise, np.repeat(schedule[:1], batch))
        state = denoise(self, schedule, self.text_state(latents, embeds, negative),
                        self.text_hooks(self.timestep_cond(batch)), self._step_kwargs(generator, eta),
                        callback_on_step_end, names)
        return self._finish(state["latents"], output_type, return_dict)
