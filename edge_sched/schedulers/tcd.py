"""Trajectory Consistency Distillation sampler (Zheng et al. 2024, "Trajectory Consistency
Distillation", arXiv:2402.19159): strategic stochastic sampling.

diffusers: TCDScheduler. Same training tables and distillation timesteps as LCM (see lcm.py),
but each step jumps to an intermediate timestep s = floor((1 - eta) * t_prev) instead of 0:

    x0, eps   = f(model_output, x_t, abar_t)                 (epsilon / sample / v)
    x_s       = sqrt(abar_s) x0 + sqrt(1 - abar_s) eps        (pred_noised_sample)
    x_prev    = sqrt(abar_prev / abar_s) x_s + sqrt(1 - abar_prev / abar_s) z,   z ~ N(0, I)

with t_prev = 0 after the last step, and no noise on the last step or when eta = 0 (then the
step is DDIM-like, deterministic). diffusers applies no clipping or thresholding here, even
though the config carries those options.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..random import randn_tensor
from .base import SchedulerOutput
from .lcm import LCMScheduler
from .prediction import predicted_x0_and_eps
from .errors import check_strength

_F32 = np.float32


@dataclass
class TCDSchedulerOutput(SchedulerOutput):
    """``prev_sample`` and ``pred_noised_sample`` (x_s); ``out[1]`` and ``return_dict=False``
    give ``pred_noised_sample`` as diffusers does."""

    pred_noised_sample: np.ndarray | None = None


class TCDScheduler(LCMScheduler):
    """Config (the ``__init__`` signature), training tables, timesteps, ``add_noise`` and
    ``get_velocity`` are LCMScheduler's; the update rule is TCD's."""

    noise_kind = "with eta > 0 (default 0.3)"  # for the `edge-sched schedulers` table
    _compatibles: list[str] = []

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device=None,
        original_inference_steps: int | None = None,
        timesteps: list[int] | None = None,
        strength: float = 1.0,
    ):
        """As LCMScheduler; an explicit ``original_inference_steps`` makes diffusers' TCD pick
        from every training timestep below ``num_train_timesteps * strength`` instead."""
        if original_inference_steps is None or timesteps is not None:
            # custom timesteps: the explicit count only changes diffusers' warnings
            return super().set_timesteps(num_inference_steps, device, None, timesteps, strength)
        self._check_custom_schedule(num_inference_steps, timesteps)
        check_strength(strength)
        n = self._check_num_inference_steps(num_inference_steps)
        origin = np.arange(0, int(self.config.num_train_timesteps * strength), dtype=np.int64)
        if len(origin) // n < 1:
            raise ValueError(
                f"num_train_timesteps x strength ({self.config.num_train_timesteps} x {strength}) is smaller than "
                f"num_inference_steps ({n})."
            )
        if n > original_inference_steps:
            raise ValueError(
                f"num_inference_steps ({n}) cannot be larger than original_inference_steps "
                f"({original_inference_steps})."
            )
        self.num_inference_steps = n
        origin = origin[::-1]
        picks = np.floor(np.linspace(0, len(origin), num=n, endpoint=False)).astype(np.int64)
        self.timesteps = np.ascontiguousarray(origin[picks], dtype=np.int64)
        self._step_index = None
        self._begin_index = None

    def step(
        self,
        model_output: np.ndarray,
        timestep,
        sample: np.ndarray,
        eta: float = 0.3,
        generator=None,
        return_dict: bool = True,
    ):
        """One TCD step; ``eta`` in [0, 1] sets how far back (toward 0) the intermediate x_s lies."""
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        if not 0 <= eta <= 1:
            raise ValueError(f"eta must be in [0, 1], got {eta!r}.")
        t = int(np.asarray(timestep).item())
        nxt = self._step_index + 1
        t_prev = int(self.timesteps[nxt]) if nxt < len(self.timesteps) else 0
        # torch: float32(1 - eta) * float32(t_prev), floored
        t_s = int(np.floor(_F32(1 - eta) * _F32(t_prev)))
        abar_prev, abar_s = self.alphas_cumprod[t_prev], self.alphas_cumprod[t_s]

        x0, eps = predicted_x0_and_eps(self.config.prediction_type, model_output, sample,
                                       self._sqrt_abar[t], self._sqrt_one_minus_abar[t])
        noised = self._sqrt_abar[t_s] * x0 + self._sqrt_one_minus_abar[t_s] * eps
        if eta > 0 and self._step_index != self.num_inference_steps - 1:
            noise = randn_tensor(model_output.shape, generator=generator, dtype=noised.dtype)
            ratio = abar_prev / abar_s
            prev_sample = np.sqrt(ratio) * noised + np.sqrt(_F32(1) - ratio) * noise
        else:
            prev_sample = noised
        self._step_index += 1
        if not return_dict:
            return (prev_sample, noised)
        return TCDSchedulerOutput(prev_sample=prev_sample, pred_noised_sample=noised)


__all__ = ["TCDScheduler", "TCDSchedulerOutput"]
