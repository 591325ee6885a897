"""A1111 "DPM++ 2S a": ancestral sampling with DPM-Solver++(2S) steps (k-diffusion's
``sample_dpmpp_2s_ancestral``), on the discrete sigma schedule of the Euler schedulers.

Step sigma_i -> sigma_{i+1} with eta: sigma_up = min(s', eta sqrt(s'^2 (s^2 - s'^2) / s^2)),
sigma_down = sqrt(s'^2 - sigma_up^2), t = -log(s), h = -log(sigma_down) - t, midpoint t_m = t + h / 2:

    x_m = (sigma(t_m) / sigma(t)) x - expm1(-h/2) D(x, s)                        (first call)
    x'  = (sigma_down / sigma(t)) x - expm1(-h) D(x_m, sigma(t_m)) + sigma_up z  (second call; z if s' > 0)

and one Euler call x' = x + d (sigma_down - s), d = (x - D(x, s)) / s, where sigma_down = 0 (the last step).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..random import randn_tensor
from .kdiffusion_base import ModelCall, _KDiffusionSampler, ancestral_step, sigma_of, t_of
from .prediction import to_d, x0_at_sigma
from .torch_numerics import f32_expm1

_F32 = np.float32


class Midpoint(NamedTuple):
    """The DPM-Solver++(2S) coefficients of one step: x_m = x_weight * x + x0_weight * D(x, s),
    x' = next_x_weight * x + next_x0_weight * D(x_m, sigma)."""

    sigma: np.float32
    x_weight: np.float32
    x0_weight: np.float32
    next_x_weight: np.float32
    next_x0_weight: np.float32


class AncestralStep(NamedTuple):
    sigma: np.float32
    sigma_down: np.float32
    sigma_up: np.float32
    adds_noise: bool  # sigma_{i+1} > 0
    midpoint: Midpoint | None  # None: a lone Euler call (sigma_down = 0)


def plan_step(sigma, sigma_next, eta: float) -> AncestralStep:
    down, up = ancestral_step(sigma, sigma_next, eta)
    if down == 0:
        return AncestralStep(sigma, down, up, bool(sigma_next > 0), None)
    t, t_next = t_of(sigma), t_of(down)
    h = t_next - t
    sigma_t, sigma_mid = sigma_of(t), sigma_of(t + _F32(0.5) * h)
    midpoint = Midpoint(sigma_mid, sigma_mid / sigma_t, -f32_expm1(-h * _F32(0.5)), sigma_of(t_next) / sigma_t,
                        -f32_expm1(-h))
    return AncestralStep(sigma, down, up, bool(sigma_next > 0), midpoint)


class DPMPP2SAncestralScheduler(_KDiffusionSampler):
    """A1111 "DPM++ 2S a" (``use_karras_sigmas`` for "DPM++ 2S a Karras"): two model calls a step
    but the last."""

    noise_kind = "with eta > 0 (default 1)"  # for the `edge-sched schedulers` table
    order = 2

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        prediction_type: str = "epsilon",
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        timestep_spacing: str = "linspace",
        steps_offset: int = 0,
        eta: float = 1.0,
    ):
        self._init_common(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, prediction_type)

    def set_timesteps(self, num_inference_steps: int, device=None):
        """Plan ``num_inference_steps`` steps (two model calls each but the last)."""
        n = self._check_num_inference_steps(num_inference_steps)
        steps, sigmas = self._plan_sigmas(self._spaced_timesteps(n), n)
        self._set_sigmas(sigmas)
        self.num_inference_steps = n
        self._steps = [plan_step(sigmas[i], sigmas[i + 1], self.config.eta) for i in range(n)]
        calls, timesteps = [], []
        for i, st in enumerate(self._steps):
            if st.midpoint is None:
                calls.append(ModelCall(i, 0, st.sigma, True))
                timesteps.append(steps[i])
            else:
                calls += [ModelCall(i, 0, st.sigma, False), ModelCall(i, 1, st.midpoint.sigma, True)]
                timesteps += [steps[i], self._timestep_of(st.midpoint.sigma)]
        self._calls = calls
        self.timesteps = np.asarray(timesteps, dtype=np.float32)
        self._call_sigma = calls[0].sigma
        self._x = None

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None, s_noise: float = 1.0,
             return_dict: bool = True):
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        call = self._calls[self._step_index]
        st, mid = self._steps[call.step], self._steps[call.step].midpoint
        x0 = x0_at_sigma(self.config.prediction_type, model_output, sample, call.sigma)
        if mid is None:  # Euler
            prev = sample + to_d(sample, x0, st.sigma) * (st.sigma_down - st.sigma)
        elif call.stage == 0:
            self._x = sample
            prev = mid.x_weight * sample + mid.x0_weight * x0
        else:
            prev = mid.next_x_weight * self._x + mid.next_x0_weight * x0
            self._x = None
        if call.completes_step and st.adds_noise:
            noise = randn_tensor(sample.shape, generator=generator, dtype=_F32)
            prev = prev + noise * _F32(s_noise) * st.sigma_up
        self._step_index += 1
        if self._step_index < len(self._calls):
            self._call_sigma = self._calls[self._step_index].sigma
        return self._output(prev, x0, return_dict)


__all__ = ["DPMPP2SAncestralScheduler"]
