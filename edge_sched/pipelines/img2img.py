"""Stable Diffusion image-to-image, as diffusers' ``StableDiffusionImg2ImgPipeline`` runs it: the init
image is encoded (VAE encoder, a sample of its Gaussian drawn from the generator), noised to the
timestep ``strength`` of the way into the schedule, and denoised from there."""

from __future__ import annotations

import numpy as np

from ..random import randn_tensor
from .base import register_pipeline
from .stable_diffusion import StableDiffusionBase, check_common


def sample_latent_distribution(parameters: np.ndarray, generator) -> np.ndarray:
    """A draw from the VAE encoder's diagonal Gaussian: mean + exp(logvar / 2) * noise, logvar clamped to
    [-30, 20] (the ``latent_parameters`` output holds [mean, logvar] stacked on the channel axis)."""
    mean, logvar = np.split(parameters.astype(np.float32, copy=False), 2, axis=1)
    std = np.exp(np.float32(0.5) * np.clip(logvar, -30.0, 20.0))
    return mean + std * randn_tensor(mean.shape, generator=generator, dtype=np.float32)


@register_pipeline
class StableDiffusionImg2ImgPipeline(StableDiffusionBase):
    """``pipe(prompt, image=init_image, strength=0.8, ...)``."""

    required_graphs = {**StableDiffusionBase.required_graphs, "vae_encoder": ("sample",)}

    def image_to_image_arguments(self, image, mask, strength) -> dict:
        if mask is not None:
            raise ValueError("--mask is for inpainting pipelines; this one does image-to-image")
        if image is None:
            raise ValueError("image-to-image needs --init-image")
        return {"image": image} if strength is None else {"image": image, "strength": strength}

    def encode_image(self, image: np.ndarray, batch: int, generator) -> np.ndarray:
        """Init images [n, 3, H, W] in [-1, 1] -> scaled latents for ``batch`` images (diffusers' rules)."""
        encoder = self.graph("vae_encoder")
        if isinstance(generator, list):
            if len(generator) != batch:
                raise ValueError(f"got {len(generator)} generators for {batch} images: pass one per image")
            if image.shape[0] < batch:
                if batch % image.shape[0]:
                    raise ValueError(f"cannot spread {image.shape[0]} init images over {batch} images")
                image = np.concatenate([image] * (batch // image.shape[0]))
            latents = np.concatenate([
                sample_latent_distribution(encoder(sample=image[i:i + 1])["latent_parameters"], generator[i])
                for i in range(batch)
            ])
        else:
            latents = sample_latent_distribution(encoder(sample=image)["latent_parameters"], generator)
        self.components.done_with("vae_encoder")
        latents = np.float32(self.scaling_factor) * latents
        if batch > latents.shape[0]:
            if batch % latents.shape[0]:
                raise ValueError(f"cannot spread {latents.shape[0]} init images over {batch} images")
            latents = np.concatenate([latents] * (batch // latents.shape[0]))
        return latents

    def _strength_timesteps(self, num_inference_steps: int, strength: float, custom: bool) -> np.ndarray:
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
        return self.scheduler.timesteps[start * order:]

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
    ):
        if not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
            raise ValueError(f"strength must be in [0, 1], got {strength!r}")
        if image is None:
            raise ValueError("image-to-image needs an init image (image=...)")
        check_common(num_images_per_prompt, output_type)
        from .image_io import image_processor  # needs Pillow

        init = image_processor(self.vae_scale_factor).preprocess(image)
        do_cfg = guidance_scale > 1 and self.unet_config.get("time_cond_proj_dim") is None
        embeds, negative = self.encode_prompt(prompt, num_images_per_prompt, do_cfg, negative_prompt,
                                              prompt_embeds, negative_prompt_embeds)
        generator = self._generator(generator)
        self._set_timesteps(num_inference_steps, timesteps, sigmas)
        schedule = self._strength_timesteps(num_inference_steps, strength, timesteps is not None or sigmas is not None)
        batch = embeds.shape[0]
        clean = init if init.shape[1] == 4 else self.encode_image(init, batch, generator)
        noise = randn_tensor(clean.shape, generator=generator, dtype=np.float32)
        latents = self.scheduler.add_noise(clean, noise, np.repeat(schedule[:1], batch))
        latents = self.denoise(latents, schedule, embeds, negative, guidance_scale, guidance_rescale,
                               self._step_kwargs(generator, eta), callback_on_step_end,
                               callback_on_step_end_tensor_inputs)
        return self._finish(latents, output_type, return_dict)
