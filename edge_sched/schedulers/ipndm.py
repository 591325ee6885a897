"""Improved pseudo numerical method (iPNDM): fourth-order linear multistep on the v-diffusion
(cosine) parameterisation (Zhang & Chen 2022, "Fast Sampling of Diffusion Models with
Exponential Integrator", Appendix; after Liu et al. 2022, PNDM).

diffusers: IPNDMScheduler. With t_i = 1 - i / n (i = 0..n), sigma_i = sin(pi t_i / 2)^2
(``betas``, or ``trained_betas``) and alpha_i = sqrt(1 - sigma_i^2), the timestep the model
sees is atan2(sigma_i, alpha_i) * 2 / pi. Each step turns the model output into

    e_i = sigma_i x + alpha_i m_i                      (the velocity-like direction)
    e   = e_i, (3 e_i - e_{i-1}) / 2, (23 e_i - 16 e_{i-1} + 5 e_{i-2}) / 12,
          (55 e_i - 59 e_{i-1} + 37 e_{i-2} - 9 e_{i-3}) / 24   (Adams-Bashforth, warming up)
    x0  = (x - sigma_i e) / max(alpha_i, 1e-8),   x_next = alpha_{i+1} x0 + sigma_{i+1} e
"""

from __future__ import annotations

import math

import numpy as np

from .base import SchedulerMixin
from .torch_numerics import linspace_f32

_F32 = np.float32


def adams_bashforth(ets: list) -> np.ndarray:
    """Adams-Bashforth combination of the last (up to four) derivatives, newest last,
    in diffusers' (PNDM / iPNDM) float32 evaluation order."""
    if len(ets) == 1:
        return ets[-1]
    if len(ets) == 2:
        return (3 * ets[-1] - ets[-2]) / 2
    if len(ets) == 3:
        return (23 * ets[-1] - 16 * ets[-2] + 5 * ets[-3]) / 12
    return (1 / 24) * (55 * ets[-1] - 59 * ets[-2] + 37 * ets[-3] - 9 * ets[-4])


class IPNDMScheduler(SchedulerMixin):
    order = 1
    init_noise_sigma = 1.0
    pndm_order = 4

    def __init__(self, num_train_timesteps: int = 1000, trained_betas: np.ndarray | list[float] | None = None):
        self.set_timesteps(num_train_timesteps)

    def set_timesteps(self, num_inference_steps: int | None = None, device=None):
        """Plan ``num_inference_steps`` steps (float32 timesteps in (0, 1])."""
        n = self._check_num_inference_steps(num_inference_steps, allow_more_than_train=True)
        trained = self.config.trained_betas
        if trained is not None:
            # as diffusers: the given values are the sigmas of every step (plus the final one),
            # whatever num_inference_steps says
            betas = np.asarray(trained, dtype=_F32)
            if betas.ndim != 1 or len(betas) < 2:
                raise ValueError(f"trained_betas must be a 1-D list of at least 2 values, got {trained!r}.")
        else:
            steps = np.concatenate([linspace_f32(1, 0, n + 1)[:-1], np.zeros(1, dtype=_F32)])
            angle = steps * _F32(math.pi) / _F32(2)  # float32, as torch
            s = np.sin(angle.astype(np.float64)).astype(_F32)
            betas = s * s
        self.num_inference_steps = n
        self.betas = betas
        self.alphas = np.sqrt(_F32(1) - betas * betas)
        angle = np.arctan2(betas.astype(np.float64), self.alphas.astype(np.float64)).astype(_F32)
        self.timesteps = (angle / _F32(math.pi) * _F32(2))[:-1]
        self.ets = []
        self._step_index = None
        self._begin_index = None

    def scale_model_input(self, sample: np.ndarray, *args, **kwargs) -> np.ndarray:
        """iPNDM feeds the sample to the model unscaled."""
        return sample

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, return_dict: bool = True):
        """One linear multistep step from this step's (alpha, sigma) to the next one's."""
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        alpha, sigma = self.alphas[i], self.betas[i]
        self.ets = self.ets[-3:] + [sample * sigma + model_output * alpha]  # only 4 are ever used
        ets = adams_bashforth(self.ets)
        pred = (sample - sigma * ets) / max(alpha, _F32(1e-8))
        prev_sample = self.alphas[i + 1] * pred + ets * self.betas[i + 1]
        self._step_index += 1
        return self._output(prev_sample, None, return_dict)


__all__ = ["IPNDMScheduler", "adams_bashforth"]
