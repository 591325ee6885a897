"""Multistep DEIS, "log-rho" variant (Zhang & Chen 2022, "Fast Sampling of Diffusion Models
with Exponential Integrator", arXiv:2204.13902).

diffusers: DEISMultistepScheduler. DEIS integrates the noise prediction eps in
rho = sigma_t / alpha_t, fitting a polynomial in log(rho) through the last k eps values and
integrating it exactly (Lagrange basis). With a = alpha_t, rho at steps s0 (now), s1, s2
and t (next), and m_j the eps of step j (always recomputed through x0, so thresholding applies):

    order 1:  x_t = (a_t / a_s0) x - sigma_t (e^h - 1) m0          (= DPM-Solver-1, h in log-SNR)
    order 2:  x_t = a_t (x / a_s0 + c1 m0 + c2 m1),
              c_j = F(rho_t; b_j, c) - F(rho_s0; b_j, c),  F(t; b, c) = t (log t - log c - 1) / (log b - log c)
    order 3:  x_t = a_t (x / a_s0 + c1 m0 + c2 m1 + c3 m2), with the cubic-in-log Lagrange integral.

Orders warm up and drop back for short schedules (< 15 steps) like DPM-Solver. The schedule
is planned by multistep_plan.py (final sigma: the schedule's own last sigma, never 0); every
coefficient is computed in set_timesteps. As in diffusers, the logs of rho are numpy float32
logs and the rest is float32 arithmetic.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .dpmsolver_multistep import dpm_coefficients
from .errors import check_choice
from .multistep_plan import PlanRules, _MultistepSolver, config_defaults

_F32 = np.float32
# DEIS plans like DPM-Solver, but rounds Karras timesteps for every beta schedule and ends on
# the schedule's own last sigma; the flow grid is DPM-Solver's
DEIS_RULES = PlanRules(keep_cosine_fractional=False, final_from_ramp=True, flow_grid="dpm", karras_flow=False)
# options of the shared planning that DEIS does not expose, at the values DEIS behaves with
_PLAN_DEFAULTS = {"final_sigmas_type": "sigma_min", "rescale_betas_zero_snr": False}


def _lagrange_2(t, b, c):
    """Integral (in rho) of the linear-in-log(rho) Lagrange basis through b (value 1) and c."""
    return t * (-np.log(c) + np.log(t) - _F32(1)) / (np.log(b) - np.log(c))


def _lagrange_3(t, b, c, d):
    """The same for the quadratic-in-log(rho) basis through b (value 1), c and d."""
    lc, ld, lt = np.log(c), np.log(d), np.log(t)
    numerator = t * (lc * (ld - lt + _F32(1)) - ld * lt + ld + lt**2 - _F32(2) * lt + _F32(2))
    return numerator / ((np.log(b) - lc) * (np.log(b) - ld))


def deis_coefficients(alpha: np.ndarray, sigma: np.ndarray):
    """Per-step float32 weights (c1, c2) of order 2 and (c1, c2, c3) of order 3 (NaN where a
    step has too little history), from (alpha_t, sigma_t) of the n + 1 planned sigmas."""
    n = len(alpha) - 1
    rho = (sigma / alpha).astype(_F32)
    c2 = np.full((n, 2), np.nan, dtype=_F32)
    c3 = np.full((n, 3), np.nan, dtype=_F32)
    with np.errstate(all="ignore"):
        for i in range(1, n):
            t, s0, s1 = rho[i + 1], rho[i], rho[i - 1]
            c2[i] = (_lagrange_2(t, s0, s1) - _lagrange_2(s0, s0, s1),
                     _lagrange_2(t, s1, s0) - _lagrange_2(s0, s1, s0))
            if i >= 2:
                s2 = rho[i - 2]
                c3[i] = (_lagrange_3(t, s0, s1, s2) - _lagrange_3(s0, s0, s1, s2),
                         _lagrange_3(t, s1, s2, s0) - _lagrange_3(s0, s1, s2, s0),
                         _lagrange_3(t, s2, s0, s1) - _lagrange_3(s0, s2, s0, s1))
    return c2, c3


class DEISMultistepScheduler(_MultistepSolver):
    _rules = DEIS_RULES
    _legacy_values = {
        "algorithm_type": {"dpmsolver": "deis", "dpmsolver++": "deis"},
        "solver_type": {"midpoint": "logrho", "heun": "logrho", "bh1": "logrho", "bh2": "logrho"},
    }

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        solver_order: int = 2,
        prediction_type: Literal["epsilon", "sample", "v_prediction", "flow_prediction"] = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
        algorithm_type: Literal["deis"] = "deis",
        solver_type: Literal["logrho"] = "logrho",
        lower_order_final: bool = True,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        use_flow_sigmas: bool = False,
        flow_shift: float = 1.0,
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "linspace",
        steps_offset: int = 0,
        use_dynamic_shifting: bool = False,
        time_shift_type: Literal["exponential"] = "exponential",
    ) -> None:
        check_choice("timestep_spacing", timestep_spacing, ("linspace", "leading", "trailing"))
        with config_defaults(self, _PLAN_DEFAULTS):
            self._init_tables()

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, mu: float | None = None):
        """Plan ``num_inference_steps`` steps; ``mu`` (with ``use_dynamic_shifting``) sets
        ``flow_shift = exp(mu)``."""
        cfg = self.config
        if mu is not None:
            if not (cfg.use_dynamic_shifting and cfg.time_shift_type == "exponential"):
                raise ValueError("`mu` needs use_dynamic_shifting=True and time_shift_type='exponential'.")
            # diffusers sets config.flow_shift as an attribute: planning reads it, the saved config does not
            self._shadow_config_attribute("flow_shift", float(np.exp(mu)))
        self._check_num_inference_steps(num_inference_steps)
        with config_defaults(self, _PLAN_DEFAULTS):
            self._plan(num_inference_steps)
        first, _, _ = dpm_coefficients("dpmsolver", "midpoint", self._alpha, self._sigma, self._lambda)
        self._first = first[1]
        self._c2, self._c3 = deis_coefficients(self._alpha, self._sigma)

    def convert_model_output(self, model_output: np.ndarray, *args, sample: np.ndarray | None = None, **kwargs):
        """eps of the model output, recomputed from its (thresholded) x0 as diffusers does."""
        if sample is None:
            if len(args) < 2:
                raise ValueError("convert_model_output: missing `sample`.")
            sample = args[1]
        i = self._step_index
        x0 = self._convert(model_output, sample, to_x0=True)
        return (sample - self._alpha[i] * x0) / self._sigma[i]

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, return_dict: bool = True):
        """Advance ``sample`` from this step's sigma to the next one."""
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        cfg, i, n = self.config, self._step_index, len(self.timesteps)
        short = cfg.lower_order_final and n < 15
        m = self.convert_model_output(model_output, sample=sample)
        self.model_outputs[:-1] = self.model_outputs[1:]
        self.model_outputs[-1] = m
        x = np.asarray(sample, dtype=_F32)
        if cfg.solver_order == 1 or self.lower_order_nums < 1 or (i == n - 1 and short):
            cs, k0 = self._first[i]
            prev_sample = cs * x + k0 * m
        else:
            a_t, a_s = self._alpha[i + 1], self._alpha[i]
            third = not (cfg.solver_order == 2 or self.lower_order_nums < 2 or (i == n - 2 and short))
            coefs = self._c3[i] if third else self._c2[i]
            inner = x / a_s
            for c, out in zip(coefs, self.model_outputs[::-1]):
                inner = inner + c * out
            prev_sample = a_t * inner
        prev_sample = prev_sample.astype(model_output.dtype, copy=False)
        if self.lower_order_nums < cfg.solver_order:
            self.lower_order_nums += 1
        self._step_index += 1
        return self._output(prev_sample, None, return_dict)


__all__ = ["DEISMultistepScheduler"]
