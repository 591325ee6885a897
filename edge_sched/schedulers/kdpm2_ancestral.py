"""Ancestral DPM-Solver-2 of k-diffusion (``sample_dpm_2_ancestral``, eta = 1).

diffusers: KDPM2AncestralDiscreteScheduler. Step i splits s_{i+1} into a deterministic part
sigma_down and fresh noise sigma_up (sigma_up^2 = s_{i+1}^2 (s_i^2 - s_{i+1}^2) / s_i^2,
sigma_down^2 = s_{i+1}^2 - sigma_up^2), and takes the DPM-Solver-2 step from s_i to
sigma_down through the log-midpoint m_i = sqrt(s_i * sigma_down):
    d  = (x - x0(x, s_i)) / s_i,          x' = x + d (m_i - s_i)
    d' = (x' - x0(x', m_i)) / m_i,        x_{i+1} = x + d' (sigma_down - s_i) + sigma_up * z
The schedule interleaves [t_0, tm_0, t_1, tm_1, ..., t_{n-1}] (tm: timestep of m_i); the last
entry is a lone predictor step to 0 (the denoised x0). One noise draw per second call.
"""

from __future__ import annotations

import numpy as np

from ..random import randn_tensor
from .kdpm2 import _KDPM2Base, interleave_pairs, log_midpoint
from .prediction import to_d


class KDPM2AncestralDiscreteScheduler(_KDPM2Base):
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        prediction_type: str = "epsilon",
        timestep_spacing: str = "linspace",
        steps_offset: int = 0,
    ):
        self._init_kdpm2(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, prediction_type)

    def set_timesteps(self, num_inference_steps: int, device=None, num_train_timesteps: int | None = None):
        """Plan ``num_inference_steps`` two-call steps; ``num_train_timesteps`` overrides the
        config's range for the spacing."""
        steps, sigmas = self._plan(num_inference_steps, num_train_timesteps)
        # the ancestral split, float32 as torch computes it (the last entries are 0/0, unused)
        s2 = sigmas * sigmas
        next2 = np.append(sigmas[1:], np.float32(0)) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.sqrt(next2 * (s2 - next2) / s2)
            down = np.sqrt(next2 - up * up)
        down[-1] = 0.0
        sigmas_interpol = log_midpoint(sigmas, down)
        sigmas_interpol[-2:] = 0.0
        steps_interpol = self._timesteps_of(sigmas_interpol, steps.dtype)
        pairs = np.stack([steps_interpol[:-2], steps[1:]], axis=-1).reshape(-1)
        self.timesteps = np.concatenate([steps[:1], pairs])
        self._set_interpolated(sigmas, sigmas_interpol)
        self.sigmas_up = interleave_pairs(up)
        self.sigmas_down = interleave_pairs(down)

    def scale_model_input(self, sample: np.ndarray, timestep) -> np.ndarray:
        """Divide by sqrt(sigma^2 + 1), sigma being the midpoint for the second call."""
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        if self.state_in_first_order:
            return sample / self._input_norm[self._step_index]
        return sample / self._interpol_norm[self._step_index - 1]

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None, return_dict: bool = True):
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        if self.state_in_first_order:
            sigma, sigma_mid = self.sigmas[i], self.sigmas_interpol[i]
            x0 = self._x0(model_output, sample, sigma)
            prev_sample = sample + to_d(sample, x0, sigma) * (sigma_mid - sigma)
            self.sample = sample
        else:
            sigma, sigma_mid = self.sigmas[i - 1], self.sigmas_interpol[i - 1]
            x0 = self._x0(model_output, sample, sigma_mid)
            prev_sample = self.sample + to_d(sample, x0, sigma_mid) * (self.sigmas_down[i - 1] - sigma)
            self.sample = None
            noise = randn_tensor(model_output.shape, generator=generator, dtype=model_output.dtype)
            prev_sample = prev_sample + noise * self.sigmas_up[i - 1]
        self._step_index += 1
        return self._output(prev_sample, x0, return_dict)


__all__ = ["KDPM2AncestralDiscreteScheduler"]
