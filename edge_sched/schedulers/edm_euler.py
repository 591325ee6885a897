"""Euler sampler in the EDM formulation (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models", Algorithm 2), with optional churn noise.

diffusers: EDMEulerScheduler. The schedule is defined in sigma directly (no beta table):
sigmas follow Karras' rho ramp (or an exponential ramp, CosXL) between sigma_max and sigma_min,
and the network is preconditioned as in EDM (sigma_data = 0.5 by default):

    c_in    = 1 / sqrt(sigma^2 + sigma_data^2)                 (model input = c_in * x)
    c_noise = log(sigma) / 4                                   (the timesteps)
    x0      = c_skip x + c_out F,  c_skip = sigma_data^2 / (sigma^2 + sigma_data^2),
              c_out = +-sigma sigma_data / sqrt(sigma^2 + sigma_data^2)   (epsilon / v)
    x_next  = x + (x - x0) / sigma_hat * (sigma_next - sigma_hat)

``_EDMScheduler`` holds the EDM plumbing (sigma ramps, preconditioning, ``add_noise``), also
used by EDMDPMSolverMultistepScheduler.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from ..random import randn_tensor
from .base import SchedulerMixin, expand_to
from .errors import check_choice
from .multistep_plan import FINAL_SIGMAS_TYPES
from .prediction import to_d
from .sigma_discrete import _SigmaDiscreteScheduler
from .sigmas import karras_sigmas_at
from .torch_numerics import f32_exp, f32_log, linspace_f32

_F32 = np.float32
EDM_SIGMA_SCHEDULES = ("karras", "exponential")


class _EDMScheduler(SchedulerMixin):
    """EDM plumbing shared by the EDM schedulers (not registered: the name starts with ``_``)."""

    _compatibles: list[str] = []
    sigmas: np.ndarray

    def _check_edm_config(self) -> None:
        cfg = self.config
        check_choice("sigma_schedule", cfg.sigma_schedule, EDM_SIGMA_SCHEDULES)
        check_choice("final_sigmas_type", cfg.final_sigmas_type, FINAL_SIGMAS_TYPES)

    def _ramp_sigmas(self, ramp: np.ndarray) -> np.ndarray:
        """Sigmas at ramp positions (0 -> sigma_max, 1 -> sigma_min), in the ramp's dtype.
        The exponential schedule only uses the ramp's length, on a float32 grid (as diffusers)."""
        cfg = self.config
        if cfg.sigma_schedule == "karras":
            return karras_sigmas_at(ramp, cfg.sigma_min, cfg.sigma_max, cfg.rho)
        grid = linspace_f32(math.log(cfg.sigma_min), math.log(cfg.sigma_max), len(ramp))
        return f32_exp(grid)[::-1].copy()

    def _set_sigmas(self, sigmas: np.ndarray, final_sigma) -> None:
        """float32 sigmas (+ the final one), timesteps c_noise and the input scales c_in."""
        sigmas = np.asarray(sigmas).astype(_F32)
        self.timesteps = self.precondition_noise(sigmas)
        self.sigmas = np.concatenate([sigmas, np.asarray([final_sigma], dtype=_F32)])
        self._c_in = _F32(1) / np.sqrt(self.sigmas * self.sigmas + _F32(self.config.sigma_data**2))
        self._step_index = None
        self._begin_index = None

    @property
    def init_noise_sigma(self) -> float:
        """sqrt(sigma_max^2 + 1), as diffusers defines it for the EDM schedulers."""
        return (self.config.sigma_max**2 + 1) ** 0.5

    def precondition_inputs(self, sample: np.ndarray, sigma) -> np.ndarray:
        sigma = _F32(sigma)
        return sample * (_F32(1) / np.sqrt(sigma * sigma + _F32(self.config.sigma_data**2)))

    def precondition_noise(self, sigma) -> np.ndarray:
        """c_noise = log(sigma) / 4, the timestep the network sees (float32, at least 1-D)."""
        return (_F32(0.25) * f32_log(np.atleast_1d(np.asarray(sigma, dtype=_F32)))).astype(_F32)

    def precondition_outputs(self, sample: np.ndarray, model_output: np.ndarray, sigma) -> np.ndarray:
        """The denoised x0 = c_skip * sample + c_out * model_output (float32 scalars as torch)."""
        kind = self.config.prediction_type
        if kind not in ("epsilon", "v_prediction"):  # diffusers raises here, at step time
            raise ValueError(f"prediction_type {kind!r} is not supported by {type(self).__name__}; "
                             "expected one of 'epsilon', 'v_prediction'.")
        sigma, sd = _F32(sigma), self.config.sigma_data
        norm = sigma * sigma + _F32(sd**2)
        c_skip = _F32(sd**2) / norm
        c_out = (sigma if kind == "epsilon" else -sigma) * _F32(sd) / np.sqrt(norm)
        return c_skip * sample + c_out * model_output

    def scale_model_input(self, sample: np.ndarray, timestep) -> np.ndarray:
        """Multiply by c_in = 1 / sqrt(sigma^2 + sigma_data^2)."""
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        return sample * self._c_in[self._step_index]

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """x_t = x0 + sigma_t * noise at the given (scheduled) timesteps."""
        idx = self._noising_indices(timesteps)
        sigma = expand_to(self.sigmas.astype(original_samples.dtype)[idx], original_samples.ndim)
        return original_samples + noise * sigma


class EDMEulerScheduler(_EDMScheduler):
    noise_kind = "with s_churn > 0"  # for the `edge-sched schedulers` table
    order = 1

    def __init__(
        self,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        sigma_data: float = 0.5,
        sigma_schedule: Literal["karras", "exponential"] = "karras",
        num_train_timesteps: int = 1000,
        prediction_type: Literal["epsilon", "v_prediction"] = "epsilon",
        rho: float = 7.0,
        final_sigmas_type: Literal["zero", "sigma_min"] = "zero",
    ) -> None:
        self._check_edm_config()
        self.num_inference_steps = None
        # before set_timesteps: one sigma per training step, on a float64 ramp
        self._plan(np.arange(num_train_timesteps + 1, dtype=np.float64) / num_train_timesteps)
        self.num_inference_steps = None

    def _plan(self, ramp: np.ndarray) -> None:
        sigmas = self._ramp_sigmas(ramp).astype(_F32)
        self._set_sigmas(sigmas, sigmas[-1] if self.config.final_sigmas_type == "sigma_min" else 0.0)
        self.num_inference_steps = len(sigmas)

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, sigmas=None):
        """Plan ``num_inference_steps`` steps, or use custom ``sigmas``: as in diffusers these are
        ramp positions in [0, 1] mapped through the configured sigma schedule, not noise levels."""
        if sigmas is None:
            if num_inference_steps is None:
                raise ValueError("Pass `num_inference_steps` or `sigmas` to set_timesteps.")
            self._check_num_inference_steps(num_inference_steps, allow_more_than_train=True)
            ramp = np.linspace(0, 1, num_inference_steps, dtype=np.float64)
        else:
            ramp = np.asarray(sigmas, dtype=np.float64)
            if ramp.ndim != 1 or ramp.size == 0:
                raise ValueError(f"custom sigmas must be a non-empty 1-D list of ramp positions, got {sigmas!r}.")
            if not ((ramp >= 0) & (ramp <= 1)).all():  # NaN too
                raise ValueError(f"custom sigmas are ramp positions in [0, 1] (0: sigma_max, 1: sigma_min), "
                                 f"got {list(sigmas)!r}.")
        self._plan(ramp)

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
        pred_original_sample: np.ndarray | None = None,
    ):
        """One Euler step from this step's sigma (raised by churn) to the next one."""
        self._require_timesteps()
        _SigmaDiscreteScheduler._reject_integer_timestep(timestep)
        if self._step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        sample = np.asarray(sample, dtype=_F32)
        sigma = self.sigmas[i]
        gamma = min(s_churn / (len(self.sigmas) - 1), 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = _F32(sigma * _F32(gamma + 1))
        if gamma > 0:
            noise = randn_tensor(model_output.shape, generator=generator, dtype=model_output.dtype)
            sample = sample + noise * _F32(s_noise) * np.sqrt(sigma_hat * sigma_hat - sigma * sigma)
        if pred_original_sample is None:
            pred_original_sample = self.precondition_outputs(sample, model_output, sigma_hat)
        derivative = to_d(sample, pred_original_sample, sigma_hat)
        prev_sample = (sample + derivative * (self.sigmas[i + 1] - sigma_hat)).astype(model_output.dtype, copy=False)
        self._step_index += 1
        return self._output(prev_sample, pred_original_sample, return_dict)


__all__ = ["EDMEulerScheduler"]
