"""RePaint: inpainting with an unconditional DDPM (Lugmayr et al. 2022).

diffusers: RePaintScheduler. Each step is a DDIM step (eq. 12 of Song et al., eta = ``self.eta``)
for the unknown region, the known image noised to the target level for the known region:
    x0      = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)         (clamped to [-1, 1] if clip_sample)
    unknown = sqrt(abar_{t'}) x0 + sqrt(1 - abar_{t'} - sigma_t^2) eps + sigma_t z    (sigma_t z only if t > 0, eta > 0)
    known   = sqrt(abar_{t'}) x_known + sqrt(1 - abar_{t'}) z
    x_{t'}  = mask known + (1 - mask) unknown
with t' = t - T // n (abar = 1 below 0), sigma_t = eta sqrt((1 - abar_{t'}) / (1 - abar_t) (1 - abar_t / abar_{t'})),
and z drawn at every step. The schedule "resamples": after every ``jump_length`` steps down
it goes ``jump_length`` steps back up (``jump_n_sample - 1`` times per point), and each step up
is ``undo_step``: T // n forward diffusion steps x <- sqrt(1 - beta) x + sqrt(beta) z.
"""

from __future__ import annotations

import numpy as np

from ..random import randn_tensor
from .base import SchedulerMixin
from .betas import alphas_cumprod_of, make_betas
from .errors import check_choice
from .prediction import predicted_x0

REPAINT_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")
_F32 = np.float32


class RePaintScheduler(SchedulerMixin):
    order = 1

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        eta: float = 0.0,
        trained_betas: np.ndarray | None = None,
        clip_sample: bool = True,
    ):
        if trained_betas is None:
            check_choice("beta_schedule", beta_schedule, REPAINT_BETA_SCHEDULES)
        self.betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        self.alphas = (1.0 - self.betas).astype(_F32)
        self.alphas_cumprod = alphas_cumprod_of(self.betas)
        self.final_alpha_cumprod = _F32(1.0)
        self.num_inference_steps = None
        self.timesteps = np.arange(num_train_timesteps - 1, -1, -1, dtype=np.int64)
        self.eta = eta  # pipelines overwrite it per call, as in diffusers

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        """RePaint feeds the sample to the model unscaled."""
        return sample

    def set_timesteps(self, num_inference_steps: int, jump_length: int = 10, jump_n_sample: int = 10, device=None):
        """The resampling schedule: descending steps with ``jump_length``-long jumps back up,
        ``jump_n_sample - 1`` of them at every ``jump_length``-th step (times T // n)."""
        self._check_num_inference_steps(num_inference_steps, allow_more_than_train=True)  # diffusers caps it
        for name, value in (("jump_length", jump_length), ("jump_n_sample", jump_n_sample)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
        n = min(self.config.num_train_timesteps, num_inference_steps)
        self.num_inference_steps = n
        jumps = {j: jump_n_sample - 1 for j in range(0, n - jump_length, jump_length)}
        steps = []
        t = n
        while t >= 1:
            t -= 1
            steps.append(t)
            if jumps.get(t, 0) > 0:
                jumps[t] -= 1
                steps.extend(range(t + 1, t + jump_length + 1))
                t += jump_length
        self.timesteps = np.array(steps, dtype=np.int64) * (self.config.num_train_timesteps // n)

    def _abar_prev(self, t: int):
        prev = t - self.config.num_train_timesteps // self.num_inference_steps
        return self.alphas_cumprod[prev] if prev >= 0 else self.final_alpha_cumprod

    def step(
        self,
        model_output: np.ndarray,
        timestep,
        sample: np.ndarray,
        original_image: np.ndarray,
        mask: np.ndarray,
        generator=None,
        return_dict: bool = True,
    ):
        """One step down: DDIM in the unknown region (mask 0), the noised known image where mask is 1."""
        self._require_timesteps()
        t = int(np.asarray(timestep).item())
        abar_t, abar_prev = self.alphas_cumprod[t], self._abar_prev(t)
        beta_prod_t = _F32(1) - abar_t
        x0 = predicted_x0("epsilon", model_output, sample, np.sqrt(abar_t), np.sqrt(beta_prod_t))
        if self.config.clip_sample:
            x0 = np.clip(x0, -1, 1)
        noise = randn_tensor(model_output.shape, generator=generator, dtype=model_output.dtype)
        variance = (_F32(1) - abar_prev) / beta_prod_t * (_F32(1) - abar_t / abar_prev)
        std = _F32(self.eta) * np.sqrt(variance)
        unknown = np.sqrt(abar_prev) * x0 + np.sqrt(_F32(1) - abar_prev - std * std) * model_output
        if t > 0 and self.eta > 0:
            unknown = unknown + std * noise
        known = np.sqrt(abar_prev) * original_image + np.sqrt(_F32(1) - abar_prev) * noise
        prev_sample = mask * known + (_F32(1) - mask) * unknown
        return self._output(prev_sample, x0, return_dict)

    def undo_step(self, sample: np.ndarray, timestep, generator=None) -> np.ndarray:
        """One step up the schedule (from ``timestep``): T // n forward diffusion steps with fresh noise."""
        self._require_timesteps()
        t = int(np.asarray(timestep).item())
        for i in range(self.config.num_train_timesteps // self.num_inference_steps):
            beta = self.betas[t + i]
            noise = randn_tensor(sample.shape, generator=generator, dtype=sample.dtype)
            sample = np.sqrt(_F32(1) - beta) * sample + np.sqrt(beta) * noise
        return sample

    def add_noise(self, original_samples, noise, timesteps):
        raise NotImplementedError("Use DDPMScheduler.add_noise to train for sampling with RePaint (as in diffusers).")
