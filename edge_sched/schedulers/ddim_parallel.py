"""DDIM for parallel sampling (ParaDiGMS, Shih et al. 2023).

diffusers: DDIMParallelScheduler. ``step`` and everything else is DDIMScheduler's (same config,
same eq. 12). Added: ``batch_step_no_noise``, the deterministic (eta = 0) step of many
(sample, timestep) pairs at once, each from its timestep t to t - num_train_timesteps //
num_inference_steps. Unlike ``step``, a target below timestep 0 always means abar = 1 there
(a clean x0), whatever ``set_alpha_to_one`` says, as in diffusers.
"""

from __future__ import annotations

import numpy as np

from .base import expand_to
from .ddim import DDIMScheduler

_F32 = np.float32


class DDIMParallelScheduler(DDIMScheduler):
    noise_kind = "with eta > 0"  # for the `edge-sched schedulers` table

    def set_timesteps(self, num_inference_steps: int, device=None):
        super().set_timesteps(num_inference_steps, device)
        # batched step: abar_{t'} = 1 for t' < 0 (DDIM's planned tables use final_alpha_cumprod there)
        n_train = self.config.num_train_timesteps
        below_zero = np.arange(n_train) - n_train // num_inference_steps < 0
        self._batch_sqrt_abar_prev = np.where(below_zero, _F32(1), self._sqrt_abar_prev).astype(_F32)
        self._batch_one_minus_abar_prev = np.where(below_zero, _F32(0), self._one_minus_abar_prev).astype(_F32)

    def batch_step_no_noise(
        self,
        model_output: np.ndarray,
        timesteps: np.ndarray,
        sample: np.ndarray,
        eta: float = 0.0,
        use_clipped_model_output: bool = False,
    ) -> np.ndarray:
        """Deterministic DDIM step of a batch whose item i sits at ``timesteps[i]``; returns the
        previous samples (no noise: parallel samplers draw it ahead of time)."""
        self._require_timesteps()
        if eta != 0.0:
            raise ValueError(f"batch_step_no_noise is deterministic: eta must be 0.0, got {eta!r}.")
        t = np.asarray(timesteps).astype(np.int64).reshape(-1)
        if t.shape[0] != model_output.shape[0]:
            raise ValueError(
                f"batch_step_no_noise needs one timestep per batch item: got {t.shape[0]} timesteps for a "
                f"model output of shape {model_output.shape}."
            )
        n_train = self.config.num_train_timesteps
        if t.size and (t.min() < 0 or t.max() >= n_train):
            raise ValueError(f"timesteps must lie in [0, {n_train}), got {t.tolist()}.")
        nd = model_output.ndim
        prev_sample, _ = self._update(
            model_output, sample, expand_to(self._sqrt_abar[t], nd), expand_to(self._sqrt_one_minus_abar[t], nd),
            expand_to(self._batch_sqrt_abar_prev[t], nd), expand_to(self._batch_one_minus_abar_prev[t], nd),
            _F32(0), use_clipped_model_output,
        )
        return prev_sample
