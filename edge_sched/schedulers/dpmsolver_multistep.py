"""Multistep DPM-Solver (Lu et al. 2022, arXiv:2206.00927) and DPM-Solver++ (arXiv:2211.01095),
ODE and SDE variants.

diffusers: DPMSolverMultistepScheduler. Step i goes from sigma_i to sigma_{i+1}; with
lambda = log(alpha_t / sigma_t) (see multistep_plan.py), h = lambda_{i+1} - lambda_i,
r0 = (lambda_i - lambda_{i-1}) / h, r1 = (lambda_{i-1} - lambda_{i-2}) / h and m_j the model
output at step j converted to x0 ("++" variants) or eps:

    D0 = m_i,  D1 = (m_i - m_{i-1}) / r0                                  (order 2)
    D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1),  D2 = (D1_0 - D1_1) / (r0 + r1)
         with D1_0 = (m_i - m_{i-1}) / r0, D1_1 = (m_{i-1} - m_{i-2}) / r1      (order 3)

    dpmsolver++:  x' = (s'/s) x - a' (e^-h - 1) D0 + order-2/3 terms in D1, D2
    dpmsolver:    x' = (a'/a) x - s' (e^h - 1) D0 + ...
    sde-dpmsolver++: x' = (s'/s) e^-h x + a' (1 - e^-2h) D0 + ... + s' sqrt(1 - e^-2h) z
    sde-dpmsolver:   x' = (a'/a) x - 2 s' (e^h - 1) D0 + ... + s' sqrt(e^2h - 1) z

(a, s = alpha_t, sigma_t at sigma_i; primes at sigma_{i+1}; z ~ N(0, I) drawn every step of
the SDE variants). The second-order D1 term is -(1/2) a' (e^-h - 1) D1 ("midpoint") or
a' ((e^-h - 1)/h + 1) D1 ("heun") for dpmsolver++ (similarly for the others). Orders warm
up (1, 2, 3...) and drop back to 1 (and 2) at the end for short schedules.

Every coefficient depends only on the schedule: set_timesteps plans them (float32, computed
in the same order as diffusers' torch scalars) and ``step`` applies them to the outputs.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..random import randn_tensor
from .multistep_plan import DPM_RULES, _MultistepSolver
from .torch_numerics import f32_exp
from .errors import NotSupportedError

_F32 = np.float32
# DEIS's and UniPC's option names, which diffusers' DPM-Solvers (multistep, singlestep, inverse, EDM) record
# as their own
DPM_LEGACY_VALUES = {
    "algorithm_type": {"deis": "dpmsolver++"},
    "solver_type": {"logrho": "midpoint", "bh1": "midpoint", "bh2": "midpoint"},
}


def _shifted(values: np.ndarray, k: int) -> np.ndarray:
    """values[i - k] at position i (NaN where i < k)."""
    out = np.full_like(values, np.nan)
    out[k:] = values[: len(values) - k]
    return out


def check_final_sigmas_type(algorithm_type: str, final_sigmas_type: str) -> None:
    """A final sigma of 0 only with the data-prediction ("++") algorithms: the others divide by it.
    Like diffusers, this reads the name as given, so a sibling's "deis" (recorded as "dpmsolver++")
    is refused with a final sigma of 0 as well."""
    if algorithm_type not in ("dpmsolver++", "sde-dpmsolver++") and final_sigmas_type == "zero":
        why = ("diffusers checks the name before reading it as 'dpmsolver++'" if algorithm_type == "deis"
               else "its update divides by the final sigma")
        raise ValueError(f"final_sigmas_type 'zero' is not supported with algorithm_type {algorithm_type!r} "
                         f"({why}); use final_sigmas_type='sigma_min'.")


def dpm_coefficients(algorithm_type: str, solver_type: str, alpha, sigma, lam):
    """Per-step float32 coefficients of every order, from (alpha_t, sigma_t, lambda) of n + 1 sigmas.

    Returns ``(coefs, noise, ratios)``: ``coefs[k]`` is an (n, k + 1) array of the signed
    weights of (x, D0, D1, D2) for order k (None where the algorithm has no such order),
    ``noise`` the weight of z (None for ODE variants), ``ratios`` the (n, 4) array of
    (1/r0, 1/r1, r0/(r0 + r1), 1/(r0 + r1)) that build D1, D2.
    """
    a_t, s_t, a_s, s_s = alpha[1:], sigma[1:], alpha[:-1], sigma[:-1]
    one, half, two = _F32(1), _F32(0.5), _F32(2)
    with np.errstate(all="ignore"):
        h = lam[1:] - lam[:-1]
        lam_prev = _shifted(lam[:-1], 1)
        r0 = (lam[:-1] - lam_prev) / h
        r1 = (lam_prev - _shifted(lam[:-1], 2)) / h
        ratios = np.stack([one / r0, one / r1, r0 / (r0 + r1), one / (r0 + r1)], axis=1)
        noise = None
        if algorithm_type == "dpmsolver++":
            em1 = f32_exp(-h) - one
            cs, k0 = s_t / s_s, -(a_t * em1)
            k1 = -(half * (a_t * em1)) if solver_type == "midpoint" else a_t * (em1 / h + one)
            k1_3, k2 = a_t * (em1 / h + one), -(a_t * ((em1 + h) / (h * h) - half))
        elif algorithm_type == "dpmsolver":
            ep1 = f32_exp(h) - one
            cs, k0 = a_t / a_s, -(s_t * ep1)
            k1 = -(half * (s_t * ep1)) if solver_type == "midpoint" else -(s_t * (ep1 / h - one))
            k1_3, k2 = -(s_t * (ep1 / h - one)), -(s_t * ((ep1 - h) / (h * h) - half))
        elif algorithm_type == "sde-dpmsolver++":
            om = one - f32_exp(-two * h)
            cs, k0 = s_t / s_s * f32_exp(-h), a_t * om
            k1 = half * (a_t * om) if solver_type == "midpoint" else a_t * (om / (-two * h) + one)
            k1_3 = a_t * (om / (-two * h) + one)
            k2 = a_t * ((om - two * h) / ((two * h) * (two * h)) - half)
            noise = s_t * np.sqrt(om)
        else:  # sde-dpmsolver
            ep1 = f32_exp(h) - one
            cs, k0 = a_t / a_s, -(two * (s_t * ep1))
            k1 = -(s_t * ep1) if solver_type == "midpoint" else -(two * (s_t * (ep1 / h - one)))
            k1_3 = k2 = None
            noise = s_t * np.sqrt(f32_exp(two * h) - one)
    coefs = {1: np.stack([cs, k0], axis=1), 2: np.stack([cs, k0, k1], axis=1)}
    coefs[3] = None if k2 is None else np.stack([cs, k0, k1_3, k2], axis=1)
    return coefs, noise, ratios


class DPMSolverMultistepScheduler(_MultistepSolver):
    noise_kind = "with sde-* algorithm types"  # for the `edge-sched schedulers` table
    _rules = DPM_RULES
    _legacy_values = DPM_LEGACY_VALUES

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        solver_order: int = 2,
        prediction_type: Literal["epsilon", "sample", "v_prediction", "flow_prediction"] = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
        algorithm_type: Literal["dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++"] = "dpmsolver++",
        solver_type: Literal["midpoint", "heun"] = "midpoint",
        lower_order_final: bool = True,
        euler_at_final: bool = False,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        use_lu_lambdas: bool = False,
        use_flow_sigmas: bool = False,
        flow_shift: float = 1.0,
        final_sigmas_type: Literal["zero", "sigma_min"] = "zero",
        lambda_min_clipped: float = -float("inf"),
        variance_type: str | None = None,  # diffusers reads only "learned" / "learned_range"; others (a DDPM config's) mean None
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "linspace",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
        use_dynamic_shifting: bool = False,
        time_shift_type: Literal["exponential"] = "exponential",
    ):
        check_final_sigmas_type(algorithm_type, final_sigmas_type)
        self._init_tables()

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
            for flag in ("use_karras_sigmas", "use_lu_lambdas", "use_exponential_sigmas", "use_beta_sigmas",
                         "use_flow_sigmas"):
                if cfg[flag]:
                    raise ValueError(f"Cannot set custom `timesteps` with `{flag}=True`.")
            timesteps = self._check_descending("timesteps", timesteps)
        else:
            self._check_num_inference_steps(num_inference_steps)
        self._plan(num_inference_steps, timesteps=timesteps)
        self._coefs, self._noise_coef, self._ratios = dpm_coefficients(
            cfg.algorithm_type, cfg.solver_type, self._alpha, self._sigma, self._lambda
        )

    def convert_model_output(self, model_output: np.ndarray, *args, sample: np.ndarray | None = None, **kwargs):
        """x0 (dpmsolver++, sde-dpmsolver++) or eps (dpmsolver, sde-dpmsolver) of the model output."""
        if sample is None:
            if len(args) < 2:
                raise ValueError("convert_model_output: missing `sample`.")
            sample = args[1]
        return self._convert(model_output, sample, self.config.algorithm_type.endswith("++"), threshold_eps=True)

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None,
             variance_noise: np.ndarray | None = None, return_dict: bool = True):
        """Advance ``sample`` from this step's sigma to the next one."""
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        cfg, i, n = self.config, self._step_index, len(self.timesteps)
        short = cfg.lower_order_final and n < 15
        lower_final = i == n - 1 and (cfg.euler_at_final or short or cfg.final_sigmas_type == "zero")
        lower_second = i == n - 2 and short

        m = self.convert_model_output(model_output, sample=sample)
        self.model_outputs[:-1] = self.model_outputs[1:]
        self.model_outputs[-1] = m
        x = np.asarray(sample, dtype=_F32)
        noise = None
        if self._noise_coef is not None:
            noise = randn_tensor(m.shape, generator=generator, dtype=_F32) if variance_noise is None \
                else np.asarray(variance_noise, dtype=_F32)

        if cfg.solver_order == 1 or self.lower_order_nums < 1 or lower_final:
            order = 1
        elif cfg.solver_order == 2 or self.lower_order_nums < 2 or lower_second:
            order = 2
        else:
            order = 3
        prev_sample = self._update(order, i, x, noise).astype(model_output.dtype, copy=False)
        if self.lower_order_nums < cfg.solver_order:
            self.lower_order_nums += 1
        self._step_index += 1
        return self._output(prev_sample, None, return_dict)

    def _update(self, order: int, i: int, x: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
        """sum_k c_k * (x, D0, D1, D2)_k (+ c_z * z), left to right as diffusers sums it."""
        coefs = self._coefs[order]
        if coefs is None:
            raise NotSupportedError(
                f"algorithm_type {self.config.algorithm_type!r} has no third-order update (diffusers fails "
                "here too); use solver_order <= 2."
            )
        c = coefs[i]
        m = self.model_outputs
        out = c[0] * x
        out += c[1] * m[-1]
        if order == 2:
            out += c[2] * (self._ratios[i, 0] * (m[-1] - m[-2]))
        elif order == 3:
            inv_r0, inv_r1, mix, inv_sum = self._ratios[i]
            d1_0 = inv_r0 * (m[-1] - m[-2])
            diff = d1_0 - inv_r1 * (m[-2] - m[-3])
            out += c[2] * (d1_0 + mix * diff)
            out += c[3] * (inv_sum * diff)
        if noise is not None:
            out += self._noise_coef[i] * noise
        return out
