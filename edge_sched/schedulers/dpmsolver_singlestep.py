"""Singlestep DPM-Solver (Lu et al. 2022, arXiv:2206.00927) and DPM-Solver++ (arXiv:2211.01095),
orders 1-3, ODE and SDE (sde-dpmsolver++) variants.

diffusers: DPMSolverSinglestepScheduler. The schedule is cut into groups of k steps (k = the
order, from ``get_order_list``); a group starts from the sample x_s at its first sigma and each of
its steps jumps from there to the next sigma using the model outputs gathered in the group so far
(lambda = log(alpha_t / sigma_t), see multistep_plan.py; t = next sigma, s0 = this step's,
s1, s2 the ones before; m0, m1, m2 the converted outputs, newest first):

    order 1: h = l_t - l_s0                          D0 = m0
    order 2: h = l_t - l_s1, r0 = (l_s0 - l_s1)/h,   D0 = m1, D1 = (m0 - m1) / r0
    order 3: h = l_t - l_s2, r0, r1 = (l_s0 - l_s2)/h, (l_s1 - l_s2)/h,   D0 = m2,
             D1_0 = (m1 - m2)/r1, D1_1 = (m0 - m2)/r0,
             D1 = (r0 D1_0 - r1 D1_1)/(r0 - r1),   D2 = 2 (D1_1 - D1_0)/(r0 - r1)

    dpmsolver++:      x_t = (s_t/s_s) x_s - a_t (e^-h - 1) D0 + (terms in D1, D2)
    dpmsolver:        x_t = (a_t/a_s) x_s - s_t (e^h - 1) D0 + ...
    sde-dpmsolver++:  x_t = (s_t/s_s) e^-h x_s + a_t (1 - e^-2h) D0 + ... + s_t sqrt(1 - e^-2h) z

(a, s = alpha_t, sigma_t; x_s, s_s at the group's first sigma). The D1/D2 weights depend on
``solver_type`` ("midpoint" uses D1 or D1_1 alone, "heun" D1 and D2). set_timesteps plans every
weight of every order as float32 arrays in diffusers' order of operations; ``step`` combines them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..random import randn_tensor
from .dpmsolver_multistep import DPM_LEGACY_VALUES, check_final_sigmas_type
from .multistep_plan import PlanRules, _MultistepSolver, config_defaults
from .torch_numerics import f32_exp
from .errors import NotSupportedError

_F32 = np.float32
# unlike the multistep solver, Karras timesteps are rounded for every beta schedule
SINGLESTEP_RULES = PlanRules(keep_cosine_fractional=False, final_from_ramp=False, flow_grid="dpm", karras_flow=False)
# options the shared planning reads that this scheduler does not expose, at diffusers' behaviour
_FIXED = {"timestep_spacing": "linspace", "steps_offset": 0, "rescale_betas_zero_snr": False}


def _back(values: np.ndarray, k: int) -> np.ndarray:
    """values[i - k] at position i (NaN where i < k)."""
    out = np.full_like(values, np.nan)
    out[k:] = values[: len(values) - k]
    return out


def singlestep_order_list(steps: int, order: int, lower_order_final: bool, final_zero: bool) -> list[int]:
    """The order of each step: groups 1, 2, ..., order; with ``lower_order_final`` the last group
    is shortened to fit; a final step to sigma 0 is first order."""
    if order > 3:
        raise ValueError(f"solver_order {order} is not supported; expected 1, 2 or 3.")
    if lower_order_final and order > 1:
        groups, rest = divmod(steps, order)
        group = list(range(1, order + 1))
        if rest == 0:
            orders = group * (groups - 1) + group[:-1] + [1]
        else:
            orders = group * groups + group[:rest]
    else:
        orders = list(range(1, order + 1)) * (steps // order)
    if not orders:  # diffusers fails here with an IndexError
        raise ValueError(f"{steps} step(s) hold no group of solver_order={order} without lower_order_final: "
                         f"use at least {order} steps, a lower solver_order or lower_order_final=True.")
    if final_zero:
        orders[-1] = 1
    return orders


def singlestep_coefficients(algorithm_type: str, solver_type: str, alpha, sigma, lam) -> dict:
    """Per-step float32 weights of each order from (alpha_t, sigma_t, lambda) of n + 1 sigmas.

    Returns {order: dict of (n,) arrays}: "x" (weight of the group's start sample), "d0", "d1",
    "d2" (weights of D0, D1 or D1_1, D2), "z" (noise, SDE only), and the ratios building the D's:
    "inv_r0" (order 2); "inv_r0", "inv_r1", "r0", "r1", "r_diff" (order 3). NaN where an order
    reaches before the first sigma.
    """
    one, half, two = _F32(1), _F32(0.5), _F32(2)
    a_t, s_t, l_t = alpha[1:], sigma[1:], lam[1:]
    out = {}
    with np.errstate(all="ignore"):
        for order in (1, 2, 3):
            back = order - 1  # the group's start sigma is this many steps back
            a_s, s_s, l_s = (_back(v[:-1], back) for v in (alpha, sigma, lam))
            h = l_t - l_s
            c = {}
            if algorithm_type == "dpmsolver++":
                em1 = f32_exp(-h) - one
                c["x"], c["d0"] = s_t / s_s, -(a_t * em1)
                mid, heun, d2 = half * (a_t * em1), a_t * (em1 / h + one), a_t * ((em1 + h) / (h * h) - half)
                signs = (-1, 1, -1)
            elif algorithm_type == "dpmsolver":
                ep1 = f32_exp(h) - one
                c["x"], c["d0"] = a_t / a_s, -(s_t * ep1)
                mid, heun, d2 = half * (s_t * ep1), s_t * (ep1 / h - one), s_t * ((ep1 - h) / (h * h) - half)
                signs = (-1, -1, -1)
            else:  # sde-dpmsolver++
                om = one - f32_exp(-two * h)
                c["x"], c["d0"] = s_t / s_s * f32_exp(-h), a_t * om
                mh = -two * h
                mid, heun, d2 = half * (a_t * om), a_t * (om / mh + one), a_t * ((om + mh) / (mh * mh) - half)
                signs = (1, 1, 1)
                c["z"] = s_t * np.sqrt(om)
            if order == 2:
                r0 = (lam[:-1] - l_s) / h
                c["inv_r0"] = one / r0
                c["d1"] = signs[0] * mid if solver_type == "midpoint" else signs[1] * heun
            elif order == 3:
                r0 = (lam[:-1] - l_s) / h
                r1 = (_back(lam[:-1], 1) - l_s) / h
                c.update(inv_r0=one / r0, inv_r1=one / r1, r0=r0, r1=r1, r_diff=r0 - r1)
                c["d1"] = signs[1] * heun  # weight of D1_1 (midpoint) or D1 (heun)
                if solver_type == "heun":
                    c["d2"] = signs[2] * d2
            out[order] = {k: np.asarray(v, dtype=_F32) for k, v in c.items()}
    return out


class DPMSolverSinglestepScheduler(_MultistepSolver):
    noise_kind = "with sde-dpmsolver++"  # for the `edge-sched schedulers` table
    _rules = SINGLESTEP_RULES
    _legacy_values = DPM_LEGACY_VALUES

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
        algorithm_type: Literal["dpmsolver", "dpmsolver++", "sde-dpmsolver++"] = "dpmsolver++",
        solver_type: Literal["midpoint", "heun"] = "midpoint",
        lower_order_final: bool = False,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        use_flow_sigmas: bool = False,
        flow_shift: float = 1.0,
        final_sigmas_type: Literal["zero", "sigma_min"] = "zero",
        lambda_min_clipped: float = -float("inf"),
        variance_type: str | None = None,  # diffusers reads only "learned" / "learned_range"; others (a DDPM config's) mean None
        use_dynamic_shifting: bool = False,
        time_shift_type: Literal["exponential"] = "exponential",
    ) -> None:
        check_final_sigmas_type(algorithm_type, final_sigmas_type)
        with config_defaults(self, _FIXED):
            self._init_tables()
        self.sample = None
        self.order_list = singlestep_order_list(num_train_timesteps, solver_order, lower_order_final,
                                                final_sigmas_type == "zero")

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, mu: float | None = None,
                      timesteps: list[int] | None = None):
        """Plan ``num_inference_steps`` steps, or custom descending integer ``timesteps``;
        ``mu`` (with ``use_dynamic_shifting``) sets ``flow_shift = exp(mu)``."""
        cfg = self.config
        if mu is not None:
            if not (cfg.use_dynamic_shifting and cfg.time_shift_type == "exponential"):
                raise ValueError("`mu` needs use_dynamic_shifting=True and time_shift_type='exponential'.")
            # diffusers sets config.flow_shift as an attribute: planning reads it, the saved config does not
            self._shadow_config_attribute("flow_shift", float(np.exp(mu)))
        self._check_custom_schedule(num_inference_steps, timesteps)
        if timesteps is not None:
            for flag in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"):
                if cfg[flag]:
                    raise ValueError(f"Cannot set custom `timesteps` with `{flag}=True`.")
            timesteps = self._check_descending("timesteps", timesteps)
        else:
            self._check_num_inference_steps(num_inference_steps)
        with config_defaults(self, _FIXED):
            self._plan(num_inference_steps, timesteps=timesteps)
        n = self.num_inference_steps
        # like diffusers, an uneven group split or a final sigma of 0 turns lower_order_final on for good
        if not cfg.lower_order_final and (n % cfg.solver_order != 0 or cfg.final_sigmas_type == "zero"):
            self.register_to_config(lower_order_final=True)
        self.order_list = singlestep_order_list(n, cfg.solver_order, self.config.lower_order_final,
                                                cfg.final_sigmas_type == "zero")
        self._coefs = singlestep_coefficients(cfg.algorithm_type, cfg.solver_type, self._alpha, self._sigma,
                                              self._lambda)
        self.sample = None

    def convert_model_output(self, model_output: np.ndarray, *args, sample: np.ndarray | None = None, **kwargs):
        """x0 (dpmsolver++, sde-dpmsolver++) or eps (dpmsolver) of the model output."""
        if sample is None:
            if len(args) < 2:
                raise ValueError("convert_model_output: missing `sample`.")
            sample = args[1]
        to_x0 = self.config.algorithm_type.endswith("++")
        if not to_x0 and self.config.thresholding:
            # diffusers indexes its training tables with a missing timestep here and fails
            raise NotSupportedError("thresholding is not supported with algorithm_type 'dpmsolver'.")
        return self._convert(model_output, sample, to_x0)

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None, return_dict: bool = True):
        """Advance to the next sigma from the sample at the start of the current group."""
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        cfg, i = self.config, self._step_index
        m = self.convert_model_output(model_output, sample=sample)
        self.model_outputs[:-1] = self.model_outputs[1:]
        self.model_outputs[-1] = m
        noise = None
        if cfg.algorithm_type == "sde-dpmsolver++":
            noise = randn_tensor(m.shape, generator=generator, dtype=m.dtype)

        order = self.order_list[i]
        while self.model_outputs[-order] is None:  # image-to-image may start mid-group
            order -= 1
        if order == 1:
            self.sample = sample
        prev_sample = self._update(order, i, self.sample, noise)
        self._step_index += 1
        return self._output(prev_sample, None, return_dict)

    def _update(self, order: int, i: int, x: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
        c = {k: v[i] for k, v in self._coefs[order].items()}
        m = self.model_outputs
        out = c["x"] * x
        if order == 1:
            out = out + c["d0"] * m[-1]
        elif order == 2:
            out = out + c["d0"] * m[-2]
            out = out + c["d1"] * (c["inv_r0"] * (m[-1] - m[-2]))
        else:
            out = out + c["d0"] * m[-3]
            d1_1 = c["inv_r0"] * (m[-1] - m[-3])
            if "d2" not in c:  # midpoint
                out = out + c["d1"] * d1_1
            else:
                d1_0 = c["inv_r1"] * (m[-2] - m[-3])
                d1 = (c["r0"] * d1_0 - c["r1"] * d1_1) / c["r_diff"]
                d2 = _F32(2) * (d1_1 - d1_0) / c["r_diff"]
                out = out + c["d1"] * d1
                out = out + c["d2"] * d2
        if noise is not None:
            out = out + c["z"] * noise
        return out


__all__ = ["DPMSolverSinglestepScheduler", "singlestep_order_list"]
