"""Linear multistep (LMS) sampler of k-diffusion (Crowson), on the probability-flow ODE
dx/dsigma = d(x, sigma) = (x - x0(x, sigma)) / sigma.

diffusers: LMSDiscreteScheduler. One model call per step; the last m = min(i + 1, order)
derivatives d_i, d_{i-1}, ... are combined with Adams-Bashforth weights in sigma:
    x_{i+1} = x_i + sum_j c_ij d_{i-j},   c_ij = integral_{sigma_i}^{sigma_{i+1}} L_j(s) ds
where L_j is the Lagrange basis polynomial on the nodes sigma_i, ..., sigma_{i-m+1}.
diffusers integrates L_j numerically (scipy.integrate.quad); L_j has degree m - 1, so an
m-point Gauss-Legendre rule integrates it exactly, which is what we do, once per schedule.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from .base import KARRAS_COMPATIBLES
from .errors import check_choice
from .prediction import PREDICTION_TYPES, to_d, x0_at_sigma
from .sigma_discrete import _SigmaDiscreteScheduler
from .sigmas import configured_sigma_schedule


def lms_coefficients(sigmas: np.ndarray, order: int) -> np.ndarray:
    """float64 table ``c[i, j]`` for the steps i = 0 .. len(sigmas) - 2 (zeros past the
    effective order min(i + 1, order))."""
    s = np.asarray(sigmas, dtype=np.float64)
    n = len(s) - 1
    table = np.zeros((n, order))
    nodes_01, weights = np.polynomial.legendre.leggauss(order)  # exact up to degree 2*order - 1
    for m in range(1, order + 1):
        # rows with effective order m: just i = m - 1 while warming up, every later row for m = order
        rows = np.arange(m - 1, n) if m == order else np.arange(m - 1, min(m, n))
        if rows.size == 0:
            continue
        a, b = s[rows, None], s[rows + 1, None]
        x = (b - a) / 2 * nodes_01 + (a + b) / 2  # quadrature points on [sigma_i, sigma_{i+1}]
        nodes = s[rows[:, None] - np.arange(m)]  # sigma_i, sigma_{i-1}, ..., sigma_{i-m+1}
        # two equal nodes (a 'leading' schedule whose first timestep is clamped to the last training one, as the
        # 1000-step schedule a fresh scheduler holds with steps_offset=1) leave that row undefined: NaN here
        # (diffusers' quad gives inf or NaN there); step() warns if it ever uses such a row
        with np.errstate(divide="ignore", invalid="ignore"):
            for j in range(m):
                basis = np.ones_like(x)
                for k in range(m):
                    if k != j:
                        basis = basis * (x - nodes[:, k : k + 1]) / (nodes[:, j : j + 1] - nodes[:, k : k + 1])
                table[rows, j] = (b[:, 0] - a[:, 0]) / 2 * (basis @ weights)
    return table


class LMSDiscreteScheduler(_SigmaDiscreteScheduler):
    _compatibles = KARRAS_COMPATIBLES
    order = 1

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon",
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "linspace",
        steps_offset: int = 0,
    ):
        check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        configured_sigma_schedule(self.config)
        self._init_training_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        # like diffusers, a fresh LMS scheduler is already set to the full training schedule
        self.set_timesteps(num_train_timesteps)

    def set_timesteps(self, num_inference_steps: int, device=None):
        """Plan ``num_inference_steps`` steps with the configured spacing and sigma ramp."""
        num_inference_steps = self._check_num_inference_steps(num_inference_steps)
        steps, sigmas = self._plan_sigmas(self._spaced_timesteps(num_inference_steps), num_inference_steps)
        self.num_inference_steps = num_inference_steps
        self.timesteps = np.asarray(steps, dtype=np.float32)
        self._set_sigmas(sigmas)
        self._coefficients = {4: lms_coefficients(self.sigmas, 4)}  # per order; 4 is step's default
        self._undefined: dict[int, set] = {}
        self.derivatives = []

    def get_lms_coefficient(self, order: int, t: int, current_order: int) -> float:
        """Weight of the derivative ``current_order`` steps back in step ``t`` of an ``order``-step
        method (diffusers' method; for t < order - 1 this is the order t + 1 weight)."""
        return float(self._coefficient_table(order)[t, current_order])

    def _coefficient_table(self, order: int) -> np.ndarray:
        if order not in self._coefficients:
            self._coefficients[order] = lms_coefficients(self.sigmas, order)
        return self._coefficients[order]

    def _undefined_rows(self, order: int) -> set:
        """The steps whose ``order`` weights are undefined (two equal sigmas among their nodes)."""
        if order not in self._undefined:
            table = self._coefficient_table(order)
            self._undefined[order] = set(np.flatnonzero(~np.isfinite(table).all(axis=1)).tolist())
        return self._undefined[order]

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, order: int = 4, return_dict: bool = True):
        self._require_timesteps()
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
            raise ValueError(f"order must be a positive int, got {order!r}.")
        if self._step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        sigma = self.sigmas[i]

        x0 = x0_at_sigma(self.config.prediction_type, model_output, sample, sigma)
        self.derivatives.append(to_d(sample, x0, sigma))
        if len(self.derivatives) > order:
            self.derivatives.pop(0)

        # diffusers ties the effective order to the step index, not to how many derivatives
        # it holds (they differ when a pipeline starts mid-schedule); zip stops at the shorter
        coeffs = self._coefficient_table(order)[i, : min(i + 1, order)].astype(np.float32)
        if i in self._undefined_rows(order):
            warnings.warn(f"LMS step {i}: the schedule repeats a sigma among {self.sigmas[max(i - order + 1, 0):i + 2]}"
                          ", so its multistep weights are undefined and the sample is no longer finite (in diffusers too); "
                          "use another timestep_spacing or steps_offset", RuntimeWarning, stacklevel=2)
        update = None
        for c, d in zip(coeffs, reversed(self.derivatives)):
            update = c * d if update is None else update + c * d
        prev_sample = sample + update
        self._step_index += 1
        return self._output(prev_sample, x0, return_dict)


__all__ = ["LMSDiscreteScheduler", "lms_coefficients"]
