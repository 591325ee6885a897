"""Variance-exploding SDE sampling by predictor-corrector (Song et al. 2021, "Score-Based
Generative Modeling through SDEs", Algorithms 2-3 of the NCSN++ setup).

diffusers: ScoreSdeVeScheduler. Continuous times t from 1 to ``sampling_eps`` (float32 linspace);
``sigmas[i]`` = sigma_min (sigma_max / sigma_min)^t_i (the model's noise-level input) and the
discrete ladder ``discrete_sigmas`` = exp(linspace(log sigma_min, log sigma_max, n)).
    step_pred (reverse diffusion): k = int(t (n - 1)), g^2 = sigma_k^2 - sigma_{k-1}^2 (sigma_{-1} = 0),
        mean = x + g^2 score,  x' = mean + g z
    step_correct (Langevin): eps = 2 (snr |z| / |score|)^2 (norms per item, averaged over the batch),
        mean = x + eps score,  x' = mean + sqrt(2 eps) z
z ~ N(0, I) is drawn at every call. float32 throughout, as in torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..random import randn_tensor
from .base import SchedulerMixin, SchedulerOutput, expand_to
from .torch_numerics import f32_exp, linspace_f32, row_norms_f32

_F32 = np.float32


@dataclass
class SdeVeOutput(SchedulerOutput):
    """``prev_sample`` and ``prev_sample_mean`` (the sample without the last noise: the final output)."""

    prev_sample_mean: np.ndarray | None = None


class ScoreSdeVeScheduler(SchedulerMixin):
    order = 1

    def __init__(
        self,
        num_train_timesteps: int = 2000,
        snr: float = 0.15,
        sigma_min: float = 0.01,
        sigma_max: float = 1348.0,
        sampling_eps: float = 1e-5,
        correct_steps: int = 1,
    ):
        self.init_noise_sigma = sigma_max
        self.timesteps = None
        self.set_sigmas(num_train_timesteps, sigma_min, sigma_max, sampling_eps)

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        """Score SDE feeds the sample to the model unscaled (the model takes sigma separately)."""
        return sample

    def set_timesteps(self, num_inference_steps: int, sampling_eps: float | None = None, device=None):
        """Continuous times from 1 down to ``sampling_eps`` (float32). Call ``set_sigmas`` after it."""
        self._check_num_inference_steps(num_inference_steps, allow_more_than_train=True)
        eps = self.config.sampling_eps if sampling_eps is None else sampling_eps
        self.timesteps = linspace_f32(1.0, eps, num_inference_steps)

    def set_sigmas(self, num_inference_steps: int, sigma_min: float | None = None, sigma_max: float | None = None,
                   sampling_eps: float | None = None):
        """Noise levels of the current timesteps (setting timesteps first if there are none) and
        the ``num_inference_steps`` discrete sigmas the predictor steps along."""
        cfg = self.config
        sigma_min = cfg.sigma_min if sigma_min is None else sigma_min
        sigma_max = cfg.sigma_max if sigma_max is None else sigma_max
        sampling_eps = cfg.sampling_eps if sampling_eps is None else sampling_eps
        if self.timesteps is None:
            self.set_timesteps(num_inference_steps, sampling_eps)
        # torch: float32(sigma_min) * float32(ratio) ** t, per float32 time t
        power = (np.float64(_F32(sigma_max / sigma_min)) ** self.timesteps.astype(np.float64)).astype(_F32)
        self.sigmas = (_F32(sigma_min) * power).astype(_F32)
        self.discrete_sigmas = f32_exp(linspace_f32(math.log(sigma_min), math.log(sigma_max), num_inference_steps))

    def get_adjacent_sigma(self, timesteps: np.ndarray, t) -> np.ndarray:
        """discrete_sigmas[k - 1] per item (0 where k = 0)."""
        return np.where(timesteps == 0, _F32(0), self.discrete_sigmas[timesteps - 1]).astype(_F32)

    def _require_timesteps(self) -> None:
        if self.timesteps is None:
            super()._require_timesteps()

    def step_pred(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None,
                  return_dict: bool = True):
        """Reverse-diffusion predictor at time ``timestep`` (a scheduled time; the model output is the score)."""
        self._require_timesteps()
        t = np.asarray(timestep, dtype=_F32) * np.ones(sample.shape[0], dtype=_F32)
        k = (t * _F32(len(self.timesteps) - 1)).astype(np.int64)  # truncation, as torch's .long()
        if k.min() < 0 or k.max() >= len(self.discrete_sigmas):
            raise ValueError(f"timestep {timestep!r} lies outside [0, 1] (this scheduler's continuous times).")
        sigma = self.discrete_sigmas[k]
        adjacent = self.get_adjacent_sigma(k, t)
        diffusion = expand_to(np.sqrt(sigma**2 - adjacent**2), sample.ndim)
        drift = -(diffusion**2 * model_output)
        noise = randn_tensor(sample.shape, generator=generator, dtype=sample.dtype)
        prev_sample_mean = sample - drift
        prev_sample = prev_sample_mean + diffusion * noise
        if not return_dict:
            return prev_sample, prev_sample_mean
        return SdeVeOutput(prev_sample=prev_sample, prev_sample_mean=prev_sample_mean)

    def step_correct(self, model_output: np.ndarray, sample: np.ndarray, generator=None, return_dict: bool = True):
        """One Langevin corrector step with the step size set by the signal-to-noise ratio ``snr``."""
        self._require_timesteps()
        noise = randn_tensor(sample.shape, generator=generator)
        batch = sample.shape[0]
        grad_norm = _norm_mean(model_output.reshape(batch, -1))
        noise_norm = _norm_mean(noise.reshape(batch, -1))
        step_size = (_F32(self.config.snr) * noise_norm / grad_norm) ** 2 * _F32(2)
        step_size = expand_to(np.full(batch, step_size, dtype=_F32), sample.ndim)
        prev_sample_mean = sample + step_size * model_output
        prev_sample = prev_sample_mean + np.sqrt(step_size * _F32(2)) * noise
        return self._output(prev_sample, None, return_dict)

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray | None, timesteps) -> np.ndarray:
        """x + discrete_sigmas[k] noise for integer indices k (fresh unseeded noise if ``noise`` is None)."""
        sigmas = expand_to(self.discrete_sigmas[np.asarray(timesteps).astype(np.int64)], original_samples.ndim)
        if noise is None:
            noise = randn_tensor(original_samples.shape, dtype=original_samples.dtype)
        return noise * sigmas + original_samples


def _norm_mean(rows: np.ndarray) -> np.float32:
    """Mean over items of each item's L2 norm, float32, summed as torch sums."""
    norms = row_norms_f32(rows)
    return np.cumsum(norms, dtype=_F32)[-1] / _F32(len(norms))
