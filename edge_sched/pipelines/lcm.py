"""Latent Consistency Model text-to-image, as diffusers' ``LatentConsistencyModelPipeline`` runs it.

Method: the guidance scale is not applied by classifier-free guidance (one UNet call per step,
no unconditional batch); it enters the UNet as an embedding of ``w = guidance_scale - 1``
(sinusoidal, ``w * 1000`` times the frequencies ``exp(-i * log(10000) / (half - 1))``, sines then
cosines, float32 as torch computes it) fed to the graph's ``timestep_cond`` input. Each step the
scheduler returns the next latents and its ``denoised`` estimate; the last ``denoised`` is decoded.
The schedule comes from the scheduler's ``original_inference_steps`` distillation timesteps.
"""

from __future__ import annotations

import inspect

import numpy as np

from .base import register_pipeline
from .loop import denoise
from .sd_base import StableDiffusionBase


@register_pipeline
class LatentConsistencyModelPipeline(StableDiffusionBase):
    """``pipe(prompt, num_inference_steps=4, guidance_scale=8.5, generator=seed).images``."""

    required_graphs = {
        **StableDiffusionBase.required_graphs,
        "unet": ("sample", "timestep", "encoder_hidden_states", "timestep_cond"),
    }
    _callback_tensor_inputs = ("latents", "denoised", "prompt_embeds", "w_embedding")

    @property
    def time_cond_proj_dim(self) -> int:
        """From the UNet's config, or (no config entry) its graph's ``timestep_cond`` input."""
        dim = self.unet_config.get("time_cond_proj_dim")
        if dim is None:
            spec = self.graph("unet").inputs["timestep_cond"].shape
            dim = spec[-1] if spec else None
        if not isinstance(dim, (int, np.integer)):
            raise ValueError(f"{self.folder / 'unet'}: cannot tell the UNet's time_cond_proj_dim (no config.json entry "
                             "and a dynamic timestep_cond input)")
        return int(dim)

    @property
    def do_classifier_free_guidance(self) -> bool:
        return False  # the guidance scale is embedded (timestep_cond); one UNet call per step

    def _lcm_timesteps(self, num_inference_steps, original_inference_steps, timesteps) -> np.ndarray:
        """diffusers' ``retrieve_timesteps`` with ``original_inference_steps`` passed to the scheduler."""
        params = inspect.signature(self.scheduler.set_timesteps).parameters
        name = type(self.scheduler).__name__
        kwargs = {}
        if "original_inference_steps" in params:
            kwargs["original_inference_steps"] = original_inference_steps
        elif original_inference_steps is not None:
            raise ValueError(f"original_inference_steps={original_inference_steps} needs a scheduler that takes it "
                             f"(LCMScheduler, TCDScheduler); {name} does not")
        if timesteps is not None:
            if "timesteps" not in params:
                raise ValueError(f"{name} does not accept custom timesteps; use a scheduler that does")
            self.scheduler.set_timesteps(timesteps=timesteps, **kwargs)
        else:
            self.scheduler.set_timesteps(num_inference_steps, **kwargs)
        return self._record_timesteps(self.scheduler.timesteps)

    def __call__(
        self,
        prompt=None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 4,
        original_inference_steps: int | None = None,
        timesteps=None,
        guidance_scale: float = 8.5,
        num_images_per_prompt: int = 1,
        generator=None,
        latents=None,
        prompt_embeds=None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
    ):
        height, width = self._default_size(height, width)
        names = self._begin_call(callback_on_step_end, callback_on_step_end_tensor_inputs, guidance_scale,
                                 num_images_per_prompt=num_images_per_prompt, output_type=output_type)
        self.time_cond_proj_dim  # a UNet without a known embedding width is an error before any work
        # LCMs are distilled with CFG on the empty prompt: no negative prompt, no unconditional batch
        embeds, _ = self.encode_prompt(prompt, None, num_images_per_prompt, False, None, prompt_embeds, None)
        generator = self._generator(generator)
        timesteps = self._lcm_timesteps(num_inference_steps, original_inference_steps, timesteps)
        batch = embeds.shape[0]
        latents = self.prepare_latents(batch, height, width, generator, latents)
        state = {"latents": latents, "denoised": None, "prompt_embeds": embeds,
                 "w_embedding": self.timestep_cond(batch)}
        hooks = self.text_hooks(feeds_from_state={"encoder_hidden_states": "prompt_embeds",
                                                  "timestep_cond": "w_embedding"}, keep_denoised=True)
        state = denoise(self, timesteps, state, hooks, self._step_kwargs(generator, None), callback_on_step_end, names)
        return self._finish(state["denoised"], output_type, return_dict)
