"""Heun's second-order sampler of Karras et al. 2022 (Algorithm 1, no churn).

diffusers: HeunDiscreteScheduler. Each of the n steps takes two model calls, so the
schedule interleaves: sigmas [s_0, s_1, s_1, ..., s_{n-1}, s_{n-1}, 0] and timesteps
[t_0, t_1, t_1, ..., t_{n-1}, t_{n-1}] (2n - 1 calls; the last step is a plain Euler step).
    predictor:  d = (x_i - x0(x_i, s_i)) / s_i,          x' = x_i + d (s_{i+1} - s_i)
    corrector:  d' = (x' - x0(x', s_{i+1})) / s_{i+1},   x_{i+1} = x_i + (d + d') / 2 (s_{i+1} - s_i)
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .base import KARRAS_COMPATIBLES
from .errors import check_choice
from .prediction import PREDICTION_TYPES, to_d, x0_at_sigma
from .sigma_discrete import KDIFFUSION_BETA_SCHEDULES, _SigmaDiscreteScheduler
from .sigmas import configured_sigma_schedule


def _interleave(values: np.ndarray) -> np.ndarray:
    """[v0, v1, v1, v2, v2, ...]: every entry after the first repeated once."""
    return np.concatenate([values[:1], np.repeat(values[1:], 2)])


class HeunDiscreteScheduler(_SigmaDiscreteScheduler):
    _compatibles = KARRAS_COMPATIBLES
    order = 2

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        prediction_type: str = "epsilon",
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        clip_sample: bool = False,
        clip_sample_range: float = 1.0,
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "linspace",
        steps_offset: int = 0,
    ) -> None:
        check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        configured_sigma_schedule(self.config)
        self._init_training_schedule(
            num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas,
            beta_schedules=(*KDIFFUSION_BETA_SCHEDULES, "exp"),
        )
        # like diffusers, a fresh Heun scheduler is already set to the full training schedule
        self.set_timesteps(num_train_timesteps, None, num_train_timesteps)

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device=None,
        num_train_timesteps: int | None = None,
        timesteps: list[int] | None = None,
    ):
        """Plan ``num_inference_steps`` Heun steps, or custom descending ``timesteps``;
        ``num_train_timesteps`` overrides the config's range for the spacing."""
        cfg = self.config
        self._check_custom_schedule(num_inference_steps, timesteps)
        kind = configured_sigma_schedule(cfg)
        if timesteps is not None and kind is not None:
            raise ValueError(f"Cannot set custom `timesteps` with `use_{kind}_sigmas=True`.")
        if timesteps is not None:
            steps = self._check_descending("timesteps", timesteps).astype(np.float32)
            num_inference_steps = len(steps)
        else:
            num_inference_steps = self._check_num_inference_steps(num_inference_steps)
            steps = self._spaced_timesteps(num_inference_steps, num_train_timesteps)
        steps, sigmas = self._plan_sigmas(steps, num_inference_steps)
        self.num_inference_steps = num_inference_steps
        self.timesteps = _interleave(np.asarray(steps, dtype=np.float32))
        self._set_sigmas(np.concatenate([_interleave(sigmas[:-1]), sigmas[-1:]]))
        self._clear_predictor()

    def _clear_predictor(self) -> None:
        self.prev_derivative = None
        self.dt = None
        self.sample = None

    @property
    def state_in_first_order(self) -> bool:
        """True when the next ``step`` is a predictor (first-order) step."""
        return self.dt is None

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, return_dict: bool = True):
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        first = self.state_in_first_order
        # the corrector evaluates the model at the predictor's target sigma
        sigma, sigma_next = (self.sigmas[i], self.sigmas[i + 1]) if first else (self.sigmas[i - 1], self.sigmas[i])
        sigma_in = sigma if first else sigma_next

        cfg = self.config
        x0 = x0_at_sigma(cfg.prediction_type, model_output, sample, sigma_in)
        if cfg.clip_sample:
            x0 = np.clip(x0, -cfg.clip_sample_range, cfg.clip_sample_range)

        if first:
            derivative = to_d(sample, x0, sigma)
            dt = sigma_next - sigma
            self.prev_derivative, self.dt, self.sample = derivative, dt, sample
        else:
            derivative = (self.prev_derivative + to_d(sample, x0, sigma_next)) / np.float32(2)
            dt, sample = self.dt, self.sample
            self._clear_predictor()
        prev_sample = sample + derivative * dt
        self._step_index += 1
        return self._output(prev_sample, x0, return_dict)


__all__ = ["HeunDiscreteScheduler"]
