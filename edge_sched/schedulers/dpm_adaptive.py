"""A1111 "DPM adaptive" (k-diffusion's ``sample_dpm_adaptive``): embedded DPM-Solver pairs
(dpm_solver_steps.py) with a PID step-size controller, from the training sigma_max to sigma_min.

An attempt from t = s to min(t_end, s + h) takes ``solver_order`` model calls and yields a low-order
and a high-order result: DPM-Solver-2 (r1 = 1/3) and -3, or -1 and -2. It is accepted when the
scaled error ||(x_low - x_high) / max(atol, rtol max(|x_low|, |x_prev|))|| / sqrt(N) lets the
controller's factor reach ``accept_safety``; h is scaled by that factor either way. So the calls are
not known in advance: ``timesteps`` is an iterable that yields the next call's timestep after each
``step``. A rejected attempt is retried from the same x, whose eps is already known.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..random import randn_tensor
from .base import SchedulerNotReadyError
from .dpm_solver_steps import (R1_ORDER_3, after_stage, ancestral_target, dpm_solver_1_step, dpm_solver_2_step,
                               dpm_solver_3_step, stage_times)
from .errors import check_choice
from .kdiffusion_base import _KDiffusionSampler, sigma_of, t_of
from .prediction import to_d, x0_at_sigma

_F32 = np.float32


class Attempt(NamedTuple):
    """One attempted step from t_from: the solver runs to t_target (sigma_down's t with eta > 0),
    and an accepted attempt moves the solver to t_to, adding sigma_up noise."""

    t_from: np.float32
    t_to: np.float32
    t_target: np.float32
    sigma_up: np.float32
    stage_times: list


class _AdaptiveTimesteps:
    """``scheduler.timesteps`` of DPM adaptive: yields the next call's timestep until done."""

    def __init__(self, scheduler):
        self._scheduler = scheduler

    def __iter__(self):
        s = self._scheduler
        while not s.done:
            yield s._timestep_of(s._call_sigma)

    def __repr__(self):
        return "<DPM adaptive timesteps: decided step by step>"


class DPMAdaptiveScheduler(_KDiffusionSampler):
    """A1111 "DPM adaptive". The number of model calls depends on the model;
    ``num_inference_steps`` is ignored (as A1111 does)."""

    noise_kind = "with eta > 0"  # for the `edge-sched schedulers` table

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        prediction_type: str = "epsilon",
        eta: float = 0.0,
        solver_order: int = 3,
        rtol: float = 0.05,
        atol: float = 0.0078,
        h_init: float = 0.05,
        pcoeff: float = 0.0,
        icoeff: float = 1.0,
        dcoeff: float = 0.0,
        accept_safety: float = 0.81,
    ):
        check_choice("solver_order", solver_order, (2, 3))
        self._init_common(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, prediction_type)
        self.done = True

    @property
    def init_noise_sigma(self) -> float:
        return float(self._train_sigmas.max())

    def set_timesteps(self, num_inference_steps: int | None = None, device=None):
        """Reset the solver to sigma_max; the calls are decided as it goes (see ``timesteps``)."""
        cfg = self.config
        self._t_end = t_of(_F32(self._train_sigmas.min()))
        self._s = t_of(_F32(self._train_sigmas.max()))
        self._h = abs(cfg.h_init)
        # PID controller state (k-diffusion's PIDStepSizeController)
        order = 1.5 if cfg.eta else cfg.solver_order
        self._b = ((cfg.pcoeff + cfg.icoeff + cfg.dcoeff) / order, -(cfg.pcoeff + 2 * cfg.dcoeff) / order,
                   cfg.dcoeff / order)
        self._errs: list[float] = []
        self._x_prev = None
        self._eps0 = None  # eps at (x, s): kept across rejected attempts (same x, same s)
        self.info = {"steps": 0, "nfe": 0, "n_accept": 0, "n_reject": 0}
        self.num_inference_steps = num_inference_steps or 0
        self.done = not self._s < self._t_end - 1e-5
        self._begin_attempt()
        self.timesteps = _AdaptiveTimesteps(self)
        self._step_index = 0

    def _require_timesteps(self) -> None:
        if self.num_inference_steps is None:
            raise SchedulerNotReadyError(f"{type(self).__name__}: call `set_timesteps()` before `step`.")
        if self.done:
            raise ValueError("DPM adaptive has reached sigma_min; there is no further step.")

    def _begin_attempt(self) -> None:
        """Plan the next attempt from s, to t = min(t_end, s + h); its first call is skipped when
        the eps at (x, s) is known (a retry)."""
        cfg = self.config
        s = self._s
        t = min(self._t_end, _F32(s + self._h))
        t_target, up = ancestral_target(s, t, self._t_end, cfg.eta)
        self._attempt = Attempt(s, t, t_target, up, stage_times(s, t_target, cfg.solver_order))
        self._stage = 1 if self._eps0 is not None else 0
        self._eps = [self._eps0] if self._eps0 is not None else []
        self._call_sigma = sigma_of(self._attempt.stage_times[self._stage])

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None, s_noise: float = 1.0,
             return_dict: bool = True):
        self._require_timesteps()
        order, a = self.config.solver_order, self._attempt
        sigma = self._call_sigma
        x0 = x0_at_sigma(self.config.prediction_type, model_output, sample, sigma)
        eps = to_d(sample, x0, sigma)
        if self._stage == 0:
            self._x, self._eps0, self._eps = sample, eps, [eps]
            if self._x_prev is None:
                self._x_prev = sample
        else:
            self._eps.append(eps)
        if self._stage < order - 1:  # another call of this attempt
            prev = after_stage(order, self._stage, self._x, a.t_from, a.t_target, self._eps)
            self._stage += 1
            self._call_sigma = sigma_of(a.stage_times[self._stage])
        else:
            prev = self._finish_attempt(generator, s_noise)
        self._step_index += 1
        return self._output(prev, x0, return_dict)

    def _finish_attempt(self, generator, s_noise):
        cfg, a = self.config, self._attempt
        x, eps = self._x, self._eps
        if cfg.solver_order == 2:
            x_low = dpm_solver_1_step(x, a.t_from, a.t_target, eps[0])
            x_high = dpm_solver_2_step(x, a.t_from, a.t_target, eps[0], eps[1])
        else:
            x_low = dpm_solver_2_step(x, a.t_from, a.t_target, eps[0], eps[1], r1=R1_ORDER_3)
            x_high = dpm_solver_3_step(x, a.t_from, a.t_target, eps[0], eps[1], eps[2])
        delta = np.maximum(_F32(cfg.atol), _F32(cfg.rtol) * np.maximum(np.abs(x_low), np.abs(self._x_prev)))
        error = np.linalg.norm(((x_low - x_high) / delta).astype(np.float64).ravel()) / math.sqrt(x.size)
        accept = self._propose_step(float(_F32(error)))
        self.info["nfe"] += cfg.solver_order  # k-diffusion's count (it re-evaluates x after a rejection)
        self.info["steps"] += 1
        if accept:
            self._x_prev = x_low
            if cfg.eta:
                noise = randn_tensor(x.shape, generator=generator, dtype=_F32)
                x_high = x_high + (a.sigma_up * _F32(s_noise)) * noise
            self._s = a.t_to
            self._eps0 = None
            self.info["n_accept"] += 1
        else:
            self.info["n_reject"] += 1
        self.done = not self._s < self._t_end - 1e-5
        if self.done:
            return x_high
        self._begin_attempt()
        if not accept:  # retry from the same x with a smaller step: its eps is known, go to stage 1
            a = self._attempt
            return after_stage(cfg.solver_order, 0, x, a.t_from, a.t_target, self._eps)
        return x_high

    def _propose_step(self, error: float) -> bool:
        """k-diffusion's PIDStepSizeController.propose_step: scale h, say whether to accept."""
        inv_error = 1 / (error + 1e-8)
        if not self._errs:
            self._errs = [inv_error, inv_error, inv_error]
        self._errs[0] = inv_error
        b1, b2, b3 = self._b
        factor = self._errs[0] ** b1 * self._errs[1] ** b2 * self._errs[2] ** b3
        factor = 1 + math.atan(factor - 1)
        accept = factor >= self.config.accept_safety
        if accept:
            self._errs[2] = self._errs[1]
            self._errs[1] = self._errs[0]
        self._h *= factor
        return accept


__all__ = ["DPMAdaptiveScheduler"]
