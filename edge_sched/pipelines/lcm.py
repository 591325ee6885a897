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
from .stable_diffusion import StableDiffusionBase, check_common


def guidance_scale_embedding(w, embedding_dim: int) -> np.ndarray:
    """[len(w), embedding_dim] float32: sin / cos of ``1000 w`` at geometric frequencies (zero-padded when odd)."""
    w = np.asarray(w, dtype=np.float32).reshape(-1) * np.float32(1000.0)
    half = embedding_dim // 2
    if half < 2:
        raise ValueError(f"time_cond_proj_dim must be at least 4 for a guidance embedding, got {embedding_dim}")
    step = np.log(np.float32(10000.0)) / np.float32(half - 1)
    # float32 arguments, functions evaluated in float64 and rounded: torch's float32 exp / sin / cos are
    # (nearly) correctly rounded, numpy's float32 ones are not (1-ulp misses, amplified by w * 1000)
    freqs = np.exp((np.arange(half, dtype=np.float32) * -step).astype(np.float64)).astype(np.float32)
    angles = (w[:, None] * freqs[None, :]).astype(np.float64)
    emb = np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)
    if embedding_dim % 2:
        emb = np.pad(emb, ((0, 0), (0, 1)))
    return emb.astype(np.float32, copy=False)


@register_pipeline
class LatentConsistencyModelPipeline(StableDiffusionBase):
    """``pipe(prompt, num_inference_steps=4, guidance_scale=8.5, generator=seed).images``."""

    required_graphs = {
        **StableDiffusionBase.required_graphs,
        "unet": ("sample", "timestep", "encoder_hidden_states", "timestep_cond"),
    }
    callback_tensor_names = ("latents", "denoised", "prompt_embeds", "w_embedding")

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
        return self.scheduler.timesteps

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
        check_common(num_images_per_prompt, output_type)
        unknown = [k for k in callback_on_step_end_tensor_inputs if k not in self.callback_tensor_names]
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs {unknown} are not available; "
                             f"allowed: {', '.join(self.callback_tensor_names)}")
        proj_dim = self.unet_config.get("time_cond_proj_dim")
        if proj_dim is None:
            # without the config, the graph's timestep_cond input says it
            proj_dim = self.graph("unet").inputs["timestep_cond"].shape[-1]
        if not isinstance(proj_dim, (int, np.integer)):
            raise ValueError(f"{self.folder / 'unet'}: cannot tell the UNet's time_cond_proj_dim (no config.json entry "
                             "and a dynamic timestep_cond input)")
        # LCMs are distilled with CFG on the empty prompt: no negative prompt, no unconditional batch
        embeds, _ = self.encode_prompt(prompt, num_images_per_prompt, False, None, prompt_embeds, None)
        generator = self._generator(generator)
        timesteps = self._lcm_timesteps(num_inference_steps, original_inference_steps, timesteps)
        batch = embeds.shape[0]
        latents = self.prepare_latents(batch, height, width, generator, latents)
        # diffusers' Imagen-style scale: w = guidance_scale - 1 (torch.tensor of a Python float: float32)
        w_embedding = guidance_scale_embedding(np.full(batch, np.float32(guidance_scale - 1)), int(proj_dim))
        step_kwargs = self._step_kwargs(generator, None)

        unet = self.graph("unet")
        state = {"latents": latents, "denoised": None, "prompt_embeds": embeds, "w_embedding": w_embedding}
        with self.progress_bar(timesteps) as bar:
            for i, t in enumerate(timesteps):
                feeds = {"sample": state["latents"], "timestep": self.timestep_feed(unet, t, batch),
                         "encoder_hidden_states": state["prompt_embeds"], "timestep_cond": state["w_embedding"]}
                model_pred = unet(**feeds)["out_sample"].astype(np.float32, copy=False)
                out = self.scheduler.step(model_pred, t, state["latents"], **step_kwargs, return_dict=False)
                if len(out) < 2:
                    raise ValueError(f"{type(self.scheduler).__name__}.step returns no denoised sample; the LCM "
                                     "pipeline decodes it: use LCMScheduler or TCDScheduler")
                state["latents"], state["denoised"] = out[0], out[1]
                self._check_finite(state["latents"], i, t)
                state = self._callback(callback_on_step_end, self, i, t, state, callback_on_step_end_tensor_inputs)
                bar.update()
        self.components.done_with("unet")
        return self._finish(state["denoised"], output_type, return_dict)
