"""Stable Diffusion 1.x / 2.x text-to-image on exported graphs, step for step as diffusers'
``StableDiffusionPipeline`` runs it (same prompt encoding, latents, guidance and decoding), so the
same seed gives the same image."""

from __future__ import annotations

from .base import register_pipeline
from .loop import denoise
from .sd_base import StableDiffusionBase


@register_pipeline
class StableDiffusionPipeline(StableDiffusionBase):
    """Text-to-image: ``pipe(prompt, num_inference_steps=..., guidance_scale=..., generator=seed).images``."""

    _scheduler_config_fixes = ("steps_offset", "clip_sample")
    _unet_sample_size_fix = "int"

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
        guidance_interval=None,
    ):
        height, width = self._default_size(height, width)
        names = self._begin_call(callback_on_step_end, callback_on_step_end_tensor_inputs, guidance_scale,
                                 guidance_rescale, num_images_per_prompt, output_type, guidance_interval)
        embeds, negative = self.encode_prompt(prompt, None, num_images_per_prompt, self.do_classifier_free_guidance,
                                              negative_prompt, prompt_embeds, negative_prompt_embeds)
        generator = self._generator(generator)
        timesteps = self._set_timesteps(num_inference_steps, timesteps, sigmas)
        latents = self.prepare_latents(embeds.shape[0], height, width, generator, latents)
        state = denoise(self, timesteps, self.text_state(latents, embeds, negative),
                        self.text_hooks(self.timestep_cond(embeds.shape[0])), self._step_kwargs(generator, eta),
                        callback_on_step_end, names)
        return self._finish(state["latents"], output_type, return_dict)
