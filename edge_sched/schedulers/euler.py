"""Euler sampler of Karras et al. 2022 (Algorithm 2), with optional churn noise.

diffusers: EulerDiscreteScheduler. One model call per step:
    x0 = f(model_output, sample, sigma_hat)
    x_next = sample + (sample - x0) / sigma_hat * (sigma_next - sigma_hat)
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..random import randn_tensor
from .betas import sigmas_of
from .base import KARRAS_COMPATIBLES
from .errors import check_choice
from .noising import velocity_at_timesteps
from .prediction import PREDICTION_TYPES, to_d, x0_at_sigma
from .sigma_discrete import _SigmaDiscreteScheduler
from .sigmas import configured_sigma_schedule, sigma_to_t
from .torch_numerics import linspace_f32



class EulerDiscreteScheduler(_SigmaDiscreteScheduler):
    noise_kind = "with s_churn > 0"  # for the `edge-sched schedulers` table
    _compatibles = KARRAS_COMPATIBLES
    order = 1

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        prediction_type: str = "epsilon",
        interpolation_type: str = "linear",
        use_karras_sigmas: bool | None = False,
        use_exponential_sigmas: bool | None = False,
        use_beta_sigmas: bool | None = False,
        sigma_min: float | None = None,
        sigma_max: float | None = None,
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "linspace",
        timestep_type: Literal["discrete", "continuous"] = "discrete",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
        final_sigmas_type: Literal["zero", "sigma_min"] = "zero",
    ):
        check_choice("prediction_type", prediction_type, (*PREDICTION_TYPES, "original_sample"))
        check_choice("interpolation_type", interpolation_type, ("linear", "log_linear"))
        configured_sigma_schedule(self.config)
        self._init_training_schedule(
            num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, rescale_betas_zero_snr
        )
        self._set_schedule(np.arange(num_train_timesteps - 1, -1, -1, dtype=np.float32), self._training_sigmas())
        self.num_inference_steps = None

    def _set_schedule(self, timesteps: np.ndarray, sigmas: np.ndarray) -> None:
        cfg = self.config
        if cfg.timestep_type == "continuous" and cfg.prediction_type == "v_prediction":
            timesteps = (0.25 * np.log(sigmas[:-1].astype(np.float32))).astype(np.float32)
        self.timesteps = timesteps.astype(np.float32)
        self._set_sigmas(sigmas)

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, timesteps=None, sigmas=None):
        """Plan the schedule: ``num_inference_steps``, or custom descending ``timesteps`` or ``sigmas``
        (sigmas include the final one)."""
        cfg = self.config
        self._check_custom_schedule(num_inference_steps, timesteps, sigmas)
        if timesteps is not None and configured_sigma_schedule(cfg):
            raise ValueError(f"Cannot set custom `timesteps` with `use_{configured_sigma_schedule(cfg)}_sigmas=True`.")
        if timesteps is not None and cfg.timestep_type == "continuous" and cfg.prediction_type == "v_prediction":
            raise ValueError("Cannot set custom `timesteps` with timestep_type='continuous' and v_prediction.")
        if num_inference_steps is not None:
            self._check_num_inference_steps(num_inference_steps)
        check_choice("final_sigmas_type", cfg.final_sigmas_type, ("zero", "sigma_min"))
        train_sigmas = sigmas_of(self.alphas_cumprod)

        if sigmas is not None:
            sigmas = self._check_descending("sigmas", sigmas, strict=False).astype(np.float32)
            if len(sigmas) < 2:
                raise ValueError("custom `sigmas` need at least two values (the last is the final sigma).")
            num_inference_steps = len(sigmas) - 1
            steps = sigma_to_t(sigmas[:-1], np.log(train_sigmas))
        else:
            if timesteps is not None:
                steps = self._check_descending("timesteps", timesteps).astype(np.float32)
                num_inference_steps = len(steps)
            else:
                steps = self._spaced_timesteps(num_inference_steps)
            base = None
            if cfg.interpolation_type == "log_linear":
                # diffusers' log_linear ignores the timesteps: n + 1 log-spaced training sigmas
                ramp = linspace_f32(np.log(train_sigmas[-1]), np.log(train_sigmas[0]), num_inference_steps + 1)
                base = np.exp(ramp).astype(np.float32)
            last = train_sigmas[0] if cfg.final_sigmas_type == "sigma_min" else 0.0
            steps, sigmas = self._plan_sigmas(steps, num_inference_steps, base, last)
        self.num_inference_steps = num_inference_steps
        self._set_schedule(np.asarray(steps, dtype=np.float32), sigmas)

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
        self._require_timesteps()
        self._reject_integer_timestep(timestep)
        if self._step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        sample = np.asarray(sample, dtype=np.float32)
        sigma = self.sigmas[i]
        gamma = min(s_churn / (len(self.sigmas) - 1), 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = np.float32(sigma * (gamma + 1))
        if gamma > 0:
            noise = randn_tensor(model_output.shape, generator=generator, dtype=model_output.dtype)
            sample = sample + noise * s_noise * (sigma_hat**2 - sigma**2) ** 0.5

        kind = self.config.prediction_type
        kind = "sample" if kind == "original_sample" else kind
        # as in diffusers, the v-prediction x0 is taken at the sigma before churn
        x0 = x0_at_sigma(kind, model_output, sample, sigma if kind == "v_prediction" else sigma_hat)
        derivative = to_d(sample, x0, sigma_hat)
        prev_sample = (sample + derivative * (self.sigmas[i + 1] - sigma_hat)).astype(model_output.dtype, copy=False)
        self._step_index += 1
        return self._output(prev_sample, x0, return_dict)

    def get_velocity(self, sample: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """v = sqrt(abar) * noise - sqrt(1 - abar) * sample, abar indexed by the step index
        of each timestep (diffusers' convention for this scheduler)."""
        timesteps = np.atleast_1d(np.asarray(timesteps))
        idx = [self.index_for_timestep(t) for t in timesteps]
        return velocity_at_timesteps(self.alphas_cumprod, sample, noise, idx)
