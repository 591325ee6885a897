"""Pseudo numerical methods for diffusion models (Liu et al. 2022, PNDM).

diffusers: PNDMScheduler. Every step applies the DDIM-style transfer from timestep t to t'
with an effective noise estimate e (eq. 11 of the paper):
    x_{t'} = sqrt(abar_{t'} / abar_t) x_t
             - (abar_{t'} - abar_t) e / (abar_t sqrt(1 - abar_{t'}) + sqrt(abar_t (1 - abar_t) abar_{t'}))
(abar_{t'} = final_alpha_cumprod when t' < 0). e combines recent model outputs:
- PRK warm-up (skip_prk_steps=False): the first three full steps are classical Runge-Kutta,
  four model calls each at t, t - d/2, t - d/2, t - d (d = num_train_timesteps //
  num_inference_steps), e = (e1 + 2 e2 + 2 e3 + e4) / 6, each stage transferring from x_t.
- PLMS (linear multistep): e = (55 e_n - 59 e_{n-1} + 37 e_{n-2} - 9 e_{n-3}) / 24 once four
  outputs exist; with skip_prk_steps=True the start uses a Heun-like pair of calls on the
  first step, then the second- and third-order Adams-Bashforth formulas.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .base import KARRAS_COMPATIBLES, SchedulerMixin
from .betas import betas_and_alphas_cumprod
from .errors import check_choice
from .noising import add_noise_at_timesteps
from .spacing import check_table_range, spaced_timesteps

_F32 = np.float32


class PNDMScheduler(SchedulerMixin):
    _compatibles = KARRAS_COMPATIBLES
    order = 1

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        skip_prk_steps: bool = False,
        set_alpha_to_one: bool = False,
        prediction_type: Literal["epsilon", "v_prediction"] = "epsilon",
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "leading",
        steps_offset: int = 0,
    ):
        check_choice("prediction_type", prediction_type, ("epsilon", "v_prediction"))
        self.betas, self.alphas_cumprod = betas_and_alphas_cumprod(self.config)
        self.alphas = (1.0 - self.betas).astype(_F32)
        self.final_alpha_cumprod = _F32(1.0) if set_alpha_to_one else self.alphas_cumprod[0]
        self.pndm_order = 4
        self.num_inference_steps = None
        self._timesteps = np.arange(num_train_timesteps - 1, -1, -1, dtype=np.int64)
        self.prk_timesteps = None
        self.plms_timesteps = None
        self.timesteps = None
        self._reset_state()

    def _reset_state(self) -> None:
        self.counter = 0
        self.ets: list[np.ndarray] = []  # recent model outputs (at most four)
        self.cur_sample = None
        self.cur_model_output = 0
        self._coefficients: dict = {}

    def scale_model_input(self, sample: np.ndarray, *args, **kwargs) -> np.ndarray:
        """PNDM feeds the sample to the model unscaled."""
        return sample

    def set_timesteps(self, num_inference_steps: int, device=None):
        """Plan the PRK warm-up (unless ``skip_prk_steps``) and the PLMS steps."""
        cfg = self.config
        self._check_num_inference_steps(num_inference_steps)
        if not cfg.skip_prk_steps and num_inference_steps < self.pndm_order:
            raise ValueError(
                f"PNDMScheduler with skip_prk_steps=False needs num_inference_steps >= {self.pndm_order} "
                f"(its Runge-Kutta warm-up spans the {self.pndm_order} highest timesteps), got {num_inference_steps}."
            )
        self.num_inference_steps = num_inference_steps
        ascending = spaced_timesteps(
            cfg.timestep_spacing, num_inference_steps, cfg.num_train_timesteps, cfg.steps_offset
        )[::-1].astype(np.int64)
        check_table_range(ascending, cfg.num_train_timesteps, cfg.timestep_spacing, cfg.steps_offset)
        self._timesteps = ascending
        if cfg.skip_prk_steps:
            # the first timestep twice: the Heun-like start of PLMS
            self.prk_timesteps = np.array([], dtype=np.int64)
            self.plms_timesteps = np.concatenate([ascending[:-1], ascending[-2:-1], ascending[-1:]])[::-1].copy()
        else:
            # four stages (t, t - d/2, t - d/2, t - d) for each of the last three intervals
            half = cfg.num_train_timesteps // num_inference_steps // 2
            stages = ascending[-self.pndm_order:].repeat(2) + np.tile([0, half], self.pndm_order)
            self.prk_timesteps = stages[:-1].repeat(2)[1:-1][::-1].copy()
            self.plms_timesteps = ascending[:-3][::-1].copy()
        self.timesteps = np.concatenate([self.prk_timesteps, self.plms_timesteps]).astype(np.int64)
        self._reset_state()
        # plan the transfer coefficients of every step (as the steps will ask for them)
        pairs = [self._transfer_pair(counter, ts) for counter, ts in enumerate(self.timesteps)]
        if pairs:
            self._plan_coefficients(*map(np.array, zip(*pairs)))

    def _is_prk(self, counter: int) -> bool:
        return not self.config.skip_prk_steps and counter < len(self.prk_timesteps)

    def _transfer_pair(self, counter: int, timestep: int) -> tuple[int, int]:
        """(t, t') of the transfer made at step ``counter`` called with ``timestep``."""
        d = self.config.num_train_timesteps // self.num_inference_steps
        if self._is_prk(counter):
            prev = timestep - (0 if counter % 2 else d // 2)
            return int(self.prk_timesteps[counter // 4 * 4]), int(prev)
        if counter == 1:  # second call of the Heun-like start: redo the first transfer
            return int(timestep + d), int(timestep)
        return int(timestep), int(timestep - d)

    def _plan_coefficients(self, t: np.ndarray, prev: np.ndarray) -> None:
        abar_t = self.alphas_cumprod[t]
        abar_prev = np.where(prev >= 0, self.alphas_cumprod[np.maximum(prev, 0)], self.final_alpha_cumprod)
        abar_prev = abar_prev.astype(_F32)
        beta_t = _F32(1) - abar_t
        beta_prev = _F32(1) - abar_prev
        sample_coeff = np.sqrt(abar_prev / abar_t)
        denom = abar_t * np.sqrt(beta_prev) + np.sqrt(abar_t * beta_t * abar_prev)
        diff = abar_prev - abar_t
        for row in zip(t.tolist(), prev.tolist(), sample_coeff, diff, denom, np.sqrt(abar_t), np.sqrt(beta_t)):
            self._coefficients[row[:2]] = row[2:]

    def _get_prev_sample(self, sample: np.ndarray, timestep: int, prev_timestep: int, model_output: np.ndarray):
        key = (int(timestep), int(prev_timestep))
        if key not in self._coefficients:  # a timestep off the plan: compute it the same way
            self._plan_coefficients(np.array([key[0]]), np.array([key[1]]))
        sample_coeff, diff, denom, sqrt_abar, sqrt_one_minus_abar = self._coefficients[key]
        if self.config.prediction_type == "v_prediction":
            model_output = sqrt_abar * model_output + sqrt_one_minus_abar * sample
        return sample_coeff * sample - diff * model_output / denom

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, return_dict: bool = True):
        """One PRK stage during the warm-up, else one PLMS step."""
        self._require_timesteps()
        if self._is_prk(self.counter):
            return self.step_prk(model_output, timestep, sample, return_dict)
        return self.step_plms(model_output, timestep, sample, return_dict)

    def step_prk(self, model_output: np.ndarray, timestep, sample: np.ndarray, return_dict: bool = True):
        """Runge-Kutta stage ``counter % 4`` of the warm-up."""
        self._require_timesteps()
        t, prev = self._transfer_pair(self.counter, int(np.asarray(timestep).item()))
        stage = self.counter % 4
        if stage == 0:
            self.cur_model_output = self.cur_model_output + (1 / 6) * model_output
            self.ets.append(model_output)
            self.cur_sample = sample
        elif stage in (1, 2):
            self.cur_model_output = self.cur_model_output + (1 / 3) * model_output
        else:
            model_output = self.cur_model_output + (1 / 6) * model_output
            self.cur_model_output = 0
        start = self.cur_sample if self.cur_sample is not None else sample
        prev_sample = self._get_prev_sample(start, t, prev, model_output)
        self.counter += 1
        return self._output(prev_sample, None, return_dict)

    def step_plms(self, model_output: np.ndarray, timestep, sample: np.ndarray, return_dict: bool = True):
        """Linear multistep update from the last (up to) four model outputs."""
        self._require_timesteps()
        if not self.config.skip_prk_steps and len(self.ets) < 3:
            raise ValueError(
                "PNDMScheduler.step_plms can only run after 12 Runge-Kutta warm-up steps (step_prk) "
                f"when skip_prk_steps=False; {len(self.ets)} warm-up steps were completed."
            )
        t, prev = self._transfer_pair(self.counter, int(np.asarray(timestep).item()))
        if self.counter != 1:
            self.ets = self.ets[-3:]
            self.ets.append(model_output)
        ets = self.ets
        if len(ets) == 1 and self.counter == 0:
            self.cur_sample = sample
        elif len(ets) == 1 and self.counter == 1:
            model_output = (model_output + ets[-1]) / 2
            sample, self.cur_sample = self.cur_sample, None
        elif len(ets) == 2:
            model_output = (3 * ets[-1] - ets[-2]) / 2
        elif len(ets) == 3:
            model_output = (23 * ets[-1] - 16 * ets[-2] + 5 * ets[-3]) / 12
        else:
            model_output = (1 / 24) * (55 * ets[-1] - 59 * ets[-2] + 37 * ets[-3] - 9 * ets[-4])
        prev_sample = self._get_prev_sample(sample, t, prev, model_output)
        self.counter += 1
        return self._output(prev_sample, None, return_dict)

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
        return add_noise_at_timesteps(self.alphas_cumprod, original_samples, noise, timesteps)
