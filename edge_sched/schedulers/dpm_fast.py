"""A1111 "DPM fast" (k-diffusion's ``sample_dpm_fast``): ``num_inference_steps`` model calls (nfe)
in DPM-Solver steps (dpm_solver_steps.py) uniform in t = -log(sigma) from the training sigma_max to
sigma_min: floor(nfe / 3) + 1 steps of orders 3, 3, ..., then 2, 1 (nfe divisible by 3) or nfe mod 3.
With eta > 0 each step ends at sigma_down of the ancestral split and adds sigma_up noise.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..random import randn_tensor
from .dpm_solver_steps import after_stage, ancestral_target, stage_times
from .kdiffusion_base import ModelCall, _KDiffusionSampler, sigma_of, t_of
from .prediction import to_d, x0_at_sigma
from .torch_numerics import linspace_f32

_F32 = np.float32


class SolverStep(NamedTuple):
    order: int
    t: np.float32
    t_next: np.float32  # where the solver step ends (sigma_down's t with eta > 0)
    sigma_up: np.float32


def solver_orders(nfe: int) -> list[int]:
    """The DPM-Solver order of each step of k-diffusion's ``dpm_solver_fast``."""
    m = nfe // 3 + 1
    return [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]


class DPMFastScheduler(_KDiffusionSampler):
    """A1111 "DPM fast": ``num_inference_steps`` model calls in DPM-Solver-3 steps uniform in
    log-sigma between the training sigma_max and sigma_min."""

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
    ):
        self._init_common(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, prediction_type)

    @property
    def init_noise_sigma(self) -> float:
        return float(self._train_sigmas.max())

    def set_timesteps(self, num_inference_steps: int, device=None):
        """Plan ``num_inference_steps`` model calls (k-diffusion's nfe)."""
        nfe = self._check_num_inference_steps(num_inference_steps, allow_more_than_train=True)
        t_start, t_end = t_of(_F32(self._train_sigmas.max())), t_of(_F32(self._train_sigmas.min()))
        orders = solver_orders(nfe)
        ts = linspace_f32(t_start, t_end, len(orders) + 1)
        steps, calls = [], []
        for i, order in enumerate(orders):
            t = ts[i]
            t_target, up = ancestral_target(t, ts[i + 1], t_end, self.config.eta)
            steps.append(SolverStep(order, t, t_target, up))
            calls += [ModelCall(i, k, sigma_of(tk), k == order - 1)
                      for k, tk in enumerate(stage_times(t, t_target, order))]
        self._steps, self._calls = steps, calls
        self.sigmas = np.array([c.sigma for c in calls] + [_F32(0)], dtype=_F32)
        self.timesteps = np.array([self._timestep_of(c.sigma) for c in calls], dtype=np.float32)
        self.num_inference_steps = nfe
        self._step_index = None
        self._call_sigma = calls[0].sigma
        self._x, self._eps = None, []

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None, s_noise: float = 1.0,
             return_dict: bool = True):
        self._require_timesteps()
        if self._step_index is None:
            self._step_index = 0  # calls run in order; the timestep may repeat between steps
        call = self._calls[self._step_index]
        st = self._steps[call.step]
        if call.stage == 0:
            self._x, self._eps = sample, []
        x0 = x0_at_sigma(self.config.prediction_type, model_output, sample, call.sigma)
        self._eps.append(to_d(sample, x0, call.sigma))
        prev = after_stage(st.order, call.stage, self._x, st.t, st.t_next, self._eps)
        if call.completes_step and self.config.eta:
            noise = randn_tensor(sample.shape, generator=generator, dtype=_F32)
            prev = prev + (st.sigma_up * _F32(s_noise)) * noise
        self._step_index += 1
        if self._step_index < len(self._calls):
            self._call_sigma = self._calls[self._step_index].sigma
        return self._output(prev, x0, return_dict)


__all__ = ["DPMFastScheduler"]
