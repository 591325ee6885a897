"""Stable Diffusion inpainting, as diffusers' ``StableDiffusionInpaintPipeline`` runs it.

Method: the init image is preprocessed as for image-to-image, the mask by the mask processor
(grayscale, binarized at 0.5; white = repaint); the masked image is ``image * (mask < 0.5)``.
With a 9-channel inpainting UNet the model input is [scaled latents, mask at latent size (nearest),
VAE latents of the masked image] on the channel axis. With a plain 4-channel UNet the init image's
latents are kept outside the mask: after every step the latents outside the mask are replaced by
the init latents re-noised to the next timestep (the same noise as the start). ``strength`` < 1
starts from the init latents noised ``strength`` of the way in. Random draws in diffusers' order:
init-image VAE sample (4-channel UNet or strength < 1), start noise, masked-image VAE sample.
``padding_mask_crop`` inpaints a crop around the mask and pastes it back over the original.
"""

from __future__ import annotations

import numpy as np

from ..random import randn_tensor
from .base import register_pipeline
from .common import check_generator_count, check_strength, spread_batch, vae_latents
from .loop import denoise
from .sd_base import StableDiffusionBase


@register_pipeline
class StableDiffusionInpaintPipeline(StableDiffusionBase):
    """``pipe(prompt, image=init_image, mask_image=mask, strength=1.0, ...)``; 9- or 4-channel UNets."""

    required_graphs = {**StableDiffusionBase.required_graphs, "vae_encoder": ("sample",)}
    _callback_tensor_inputs = ("latents", "prompt_embeds", "negative_prompt_embeds", "mask", "masked_image_latents")
    _scheduler_config_fixes = ("steps_offset", "skip_prk_steps")
    _unet_sample_size_fix = "any"

    def image_to_image_arguments(self, image, mask, strength) -> dict:
        if image is None or mask is None:
            raise ValueError("inpainting needs both --init-image and --mask")
        args = {"image": image, "mask_image": mask}
        return args if strength is None else {**args, "strength": strength}

    @property
    def unet_channels(self) -> int:
        return int(self.unet_config.get("in_channels", self.graph("unet").inputs["sample"].shape[1]))

    def _encode(self, image: np.ndarray, generator) -> np.ndarray:
        self.graph("vae_encoder")  # checked (low-memory mode) before use
        return vae_latents(self.vae.latent_parameters, image, generator, self.scaling_factor)

    def __call__(
        self,
        prompt=None,
        image=None,
        mask_image=None,
        masked_image_latents=None,
        height: int | None = None,
        width: int | None = None,
        padding_mask_crop: int | None = None,
        strength: float = 1.0,
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
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        guidance_interval=None,
    ):
        from PIL import Image

        from .image_io import image_processor, mask_processor, resize_nearest

        height, width = self._default_size(height, width)
        check_strength(strength)
        if image is None or mask_image is None:
            raise ValueError("inpainting needs an init image and a mask (image=..., mask_image=...)")
        names = self._begin_call(callback_on_step_end, callback_on_step_end_tensor_inputs, guidance_scale,
                                 num_images_per_prompt=num_images_per_prompt, output_type=output_type,
                                 guidance_interval=guidance_interval)
        if padding_mask_crop is not None:
            if not isinstance(image, Image.Image) or not isinstance(mask_image, Image.Image):
                raise ValueError("padding_mask_crop needs the image and the mask as PIL images")
            if output_type != "pil":
                raise ValueError(f"padding_mask_crop needs output_type='pil', got {output_type!r}")
        channels = self.unet_channels
        if channels not in (4, 9):
            raise ValueError(f"{self.folder / 'unet'}: an inpainting pipeline needs a UNet with 9 input channels "
                             f"(inpainting UNet) or 4 (plain UNet, latent masking), this one has {channels}")

        do_cfg = self.do_classifier_free_guidance
        embeds, negative = self.encode_prompt(prompt, None, num_images_per_prompt, do_cfg, negative_prompt,
                                              prompt_embeds, negative_prompt_embeds)
        batch = embeds.shape[0]
        generator = self._generator(generator)
        check_generator_count(generator, batch)
        self._set_timesteps(num_inference_steps, timesteps, sigmas)
        schedule = self.strength_timesteps(num_inference_steps, strength, timesteps is not None or sigmas is not None)

        if padding_mask_crop is not None:
            crops_coords = image_processor(self.vae_scale_factor).get_crop_region(mask_image, width, height,
                                                                                  pad=padding_mask_crop)
            resize_mode = "fill"
        else:
            crops_coords, resize_mode = None, "default"
        init = image_processor(self.vae_scale_factor).preprocess(image, height=height, width=width,
                                                                 crops_coords=crops_coords, resize_mode=resize_mode)
        mask_condition = mask_processor(self.vae_scale_factor).preprocess(
            mask_image, height=height, width=width, resize_mode=resize_mode, crops_coords=crops_coords)
        if mask_condition.shape[1] != 1:
            raise ValueError(f"the mask must be one channel (grayscale), got {mask_condition.shape[1]} channels")
        if mask_condition.shape[2:] != init.shape[2:]:
            raise ValueError(f"mask size {mask_condition.shape[3]}x{mask_condition.shape[2]} does not match the "
                             f"image size {init.shape[3]}x{init.shape[2]} (WxH)")

        # 1. start latents (the init image's latents first: they use the generator before the noise)
        is_strength_max = strength == 1.0
        image_latents = None
        if channels == 4 or (latents is None and not is_strength_max):
            image_latents = init if init.shape[1] == 4 else self._encode(init, generator)
            image_latents = spread_batch(image_latents, batch, "init images", strict=False)
        shape = (batch, self.latent_channels if channels == 4 else 4,
                 height // self.vae_scale_factor, width // self.vae_scale_factor)
        if latents is None:
            noise = randn_tensor(shape, generator=generator, dtype=np.float32)
            if is_strength_max:
                latents = noise * np.float32(self.scheduler.init_noise_sigma)
            else:
                latents = self.scheduler.add_noise(image_latents, noise, np.repeat(schedule[:1], batch))
        else:
            noise = np.asarray(latents, dtype=np.float32)
            if noise.shape != shape:
                raise ValueError(f"latents must have shape {shape}, got {noise.shape}")
            latents = noise * np.float32(self.scheduler.init_noise_sigma)

        # 2. mask at latent size, masked-image latents
        if masked_image_latents is None:
            masked_image = init * (mask_condition < 0.5)
        else:
            masked_image = np.asarray(masked_image_latents, dtype=np.float32)
        mask = resize_nearest(mask_condition, height // self.vae_scale_factor, width // self.vae_scale_factor)
        masked_latents = masked_image if masked_image.shape[1] == 4 else self._encode(masked_image, generator)
        self.graphs.done_with("vae_encoder")
        mask = spread_batch(mask, batch, "masks")
        masked_latents = spread_batch(masked_latents, batch, "masked images")
        if do_cfg:
            mask, masked_latents = np.concatenate([mask, mask]), np.concatenate([masked_latents, masked_latents])
        if channels == 9 and 4 + mask.shape[1] + masked_latents.shape[1] != 9:
            raise ValueError(f"the UNet takes 9 channels; latents (4) + mask ({mask.shape[1]}) + masked image latents "
                             f"({masked_latents.shape[1]}) make {4 + mask.shape[1] + masked_latents.shape[1]}")

        def nine_channels(state: dict, model_input: np.ndarray) -> np.ndarray:
            return np.concatenate([model_input, state["mask"], state["masked_image_latents"]], axis=1)

        def keep_outside_mask(state: dict, stepped: np.ndarray, i: int) -> np.ndarray:
            # the init image outside the mask, noised to where the next step starts
            init_mask = np.split(state["mask"], 2)[0] if self.do_classifier_free_guidance else state["mask"]
            proper = image_latents
            if i < len(schedule) - 1:
                proper = self.scheduler.add_noise(image_latents, noise, np.asarray([schedule[i + 1]]))
            return (1 - init_mask) * proper + init_mask * stepped

        hooks = self.text_hooks(self.timestep_cond(batch), model_input=nine_channels if channels == 9 else None,
                                blend=keep_outside_mask if channels == 4 else None)
        state = {**self.text_state(latents, embeds, negative), "mask": mask, "masked_image_latents": masked_latents}
        state = denoise(self, schedule, state, hooks, self._step_kwargs(generator, eta), callback_on_step_end, names)
        output = self._finish(state["latents"], output_type, return_dict)
        if padding_mask_crop is not None:
            images = [image_processor(self.vae_scale_factor).apply_overlay(mask_image, image, im, crops_coords)
                      for im in output[0]]
            return type(output)(images) if return_dict else (images, None)
        return output
