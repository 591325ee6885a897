"""Heun's second-order sampler for flow-matching models (Karras et al. 2022, Algorithm 1, on
the rectified-flow ODE of Esser et al. 2024; see flow_match_euler.py for the model).

diffusers: FlowMatchHeunDiscreteScheduler. Two model calls per interval (sigma -> sigma_next):

    d  = v(x, sigma)                             (first call: an Euler step to x')
    x' = x + (sigma_next - sigma_hat) d
    d' = v(x', sigma_next)                       (second call)
    x_next = x + (sigma_next - sigma_hat) (d + d') / 2

so ``timesteps`` lists every interior sigma twice, and the step alternates between the two
halves. With ``s_churn`` the first half raises sigma to sigma_hat with fresh noise. The
schedule is a uniform grid in t between the training schedule's shifted sigma_max and
sigma_min, shifted again (as diffusers does), then sigma * T as the timesteps.
"""

from __future__ import annotations

import numpy as np

from ..random import randn_tensor
from .base import SchedulerMixin
from .flow_match_euler import FlowMatchEulerDiscreteScheduler, _is_integer_timestep

_F32 = np.float32
_shift = FlowMatchEulerDiscreteScheduler._static_shift  # shift * s / (1 + (shift - 1) * s)


class FlowMatchHeunDiscreteScheduler(SchedulerMixin):
    noise_kind = "with s_churn > 0"  # for the `edge-sched schedulers` table
    _compatibles: list[str] = []
    order = 2

    def __init__(self, num_train_timesteps: int = 1000, shift: float = 1.0):
        n = num_train_timesteps
        sigmas = _shift(shift, np.linspace(1, n, n, dtype=_F32)[::-1] / _F32(n))
        self.timesteps = sigmas * _F32(n)
        self.sigmas = sigmas
        self.sigma_min = float(sigmas[-1])
        self.sigma_max = float(sigmas[0])
        self.num_inference_steps = None
        self._reset()

    def _reset(self) -> None:
        self.prev_derivative = None
        self.dt = None
        self.sample = None
        self._step_index = None
        self._begin_index = None

    @property
    def state_in_first_order(self) -> bool:
        return self.dt is None

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        """Flow-matching models take the sample unscaled (diffusers' class has no such method)."""
        return sample

    def scale_noise(self, sample: np.ndarray, timestep, noise: np.ndarray) -> np.ndarray:
        """Forward process x = sigma * noise + (1 - sigma) * sample at the current step's sigma
        (the step index is set from ``timestep`` if not yet known, as in diffusers)."""
        if self._step_index is None:
            self._init_step_index(timestep)
        sigma = self.sigmas[self._step_index].astype(sample.dtype)
        return sigma * noise + (1.0 - sigma) * sample

    def set_timesteps(self, num_inference_steps: int | None = None, device=None) -> None:
        """Plan ``num_inference_steps`` intervals (2 n - 1 model calls)."""
        n = self._check_num_inference_steps(num_inference_steps, allow_more_than_train=True)
        self.num_inference_steps = n
        n_train = self.config.num_train_timesteps
        t = np.linspace(self.sigma_max * n_train, self.sigma_min * n_train, n)
        sigmas = _shift(self.config.shift, t / n_train).astype(_F32)
        timesteps = sigmas * _F32(n_train)
        self.timesteps = np.concatenate([timesteps[:1], np.repeat(timesteps[1:], 2)])
        sigmas = np.concatenate([sigmas, np.zeros(1, dtype=_F32)])
        self.sigmas = np.concatenate([sigmas[:1], np.repeat(sigmas[1:-1], 2), sigmas[-1:]])
        self._reset()

    def step(
        self,
        model_output: np.ndarray,
        timestep,
        sample: np.ndarray,
        s_churn: float = 0.0,
        s_tmin: float = 0.0,
        s_tmax: float = float("inf"),
        s_noise: float = 1.0,
        generator=None,
        return_dict: bool = True,
    ):
        """First half (Euler predictor) or second half (trapezoidal corrector) of a Heun step."""
        self._require_timesteps()
        if _is_integer_timestep(timestep):
            raise ValueError(
                "Pass one of `scheduler.timesteps` as `timestep`, not an integer index (e.g. from enumerate)."
            )
        if self._step_index is None:
            self._init_step_index(timestep)
        i, first = self._step_index, self.state_in_first_order
        sample = np.asarray(sample, dtype=_F32)
        sigma, sigma_next = (self.sigmas[i], self.sigmas[i + 1]) if first else (self.sigmas[i - 1], self.sigmas[i])
        gamma = min(s_churn / (len(self.sigmas) - 1), 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = _F32(sigma * _F32(gamma + 1))
        if gamma > 0:
            noise = randn_tensor(model_output.shape, generator=generator, dtype=model_output.dtype)
            sample = sample + noise * _F32(s_noise) * np.sqrt(sigma_hat * sigma_hat - sigma * sigma)

        if first:
            denoised = sample - model_output * sigma
            derivative = (sample - denoised) / sigma_hat
            dt = sigma_next - sigma_hat
            self.prev_derivative, self.dt, self.sample = derivative, dt, sample
        else:
            denoised = sample - model_output * sigma_next
            derivative = _F32(0.5) * (self.prev_derivative + (sample - denoised) / sigma_next)
            dt, sample = self.dt, self.sample
            self.prev_derivative = self.dt = self.sample = None
        prev_sample = (sample + derivative * dt).astype(model_output.dtype, copy=False)
        self._step_index += 1
        return self._output(prev_sample, None, return_dict)


__all__ = ["FlowMatchHeunDiscreteScheduler"]
