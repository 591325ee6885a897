"""What the k-diffusion ports (DPM++ 2S a, DPM fast, DPM adaptive) share.

k-diffusion calls a denoiser D(x, sigma) several times inside one sampler step. Here every model
call is one ``step``: ``timesteps`` lists the (fractional) training timestep of every call's
sigma, ``scale_model_input`` divides by sqrt(sigma^2 + 1) of that call, and ``step`` returns the
point where the model is to be called next (``prev_sample``; the result once the calls run out).
The model output becomes D = x0 through ``prediction.x0_at_sigma``, as in the Euler schedulers.
Times are t = -log(sigma); all scalars are float32, in k-diffusion's order of operations.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .base import KARRAS_COMPATIBLES, SchedulerNotReadyError
from .betas import sigmas_of
from .errors import check_choice
from .prediction import PREDICTION_TYPES
from .sigma_discrete import _SigmaDiscreteScheduler
from .sigmas import configured_sigma_schedule, sigma_to_t
from .torch_numerics import f32_exp, f32_log

_F32 = np.float32


def t_of(sigma):
    """t = -log(sigma), float32."""
    return -f32_log(sigma)


def sigma_of(t):
    """sigma = exp(-t), float32."""
    return f32_exp(-np.asarray(t, dtype=_F32))


def ancestral_step(sigma_from, sigma_to, eta: float = 1.0):
    """(sigma_down, sigma_up) of k-diffusion's get_ancestral_step, float32."""
    sigma_from, sigma_to = _F32(sigma_from), _F32(sigma_to)
    if not eta:
        return sigma_to, _F32(0)
    f2, t2 = sigma_from * sigma_from, sigma_to * sigma_to
    up = min(sigma_to, _F32(eta) * np.sqrt(t2 * (f2 - t2) / f2))
    return np.sqrt(t2 - up * up), up


class ModelCall(NamedTuple):
    """One planned model call: the sampler step it belongs to, its stage in that step, the noise
    level the model sees, and whether its ``step`` completes the sampler step."""

    step: int
    stage: int
    sigma: np.float32
    completes_step: bool


class _KDiffusionSampler(_SigmaDiscreteScheduler):
    """Training tables and per-call bookkeeping (not registered: the name starts with ``_``)."""

    _compatibles = KARRAS_COMPATIBLES

    def _init_common(self, num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, prediction_type):
        check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        configured_sigma_schedule(self.config)
        self._init_training_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        self._train_sigmas = sigmas_of(self.alphas_cumprod)
        self.sigmas = self._training_sigmas()
        self.timesteps = np.arange(num_train_timesteps - 1, -1, -1, dtype=np.float32)
        self.num_inference_steps = None
        self._call_sigma = None

    def _timestep_of(self, sigma) -> np.float32:
        return _F32(sigma_to_t(np.asarray([sigma], dtype=_F32), np.log(self._train_sigmas))[0])

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        """Divide by sqrt(sigma^2 + 1), sigma being this call's noise level."""
        if self._call_sigma is None:
            raise SchedulerNotReadyError(f"{type(self).__name__}: call `set_timesteps` first.")
        sigma = self._call_sigma
        return sample / np.sqrt(sigma * sigma + _F32(1))

    def add_noise(self, original_samples, noise, timesteps):
        raise NotImplementedError(f"{type(self).__name__} samples from pure noise only (no image-to-image).")


__all__ = ["ModelCall", "ancestral_step", "sigma_of", "t_of"]
