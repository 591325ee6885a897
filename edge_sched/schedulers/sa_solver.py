"""SA-Solver: stochastic Adams predictor-corrector (Xue et al. 2023, "SA-Solver: Stochastic
Adams Solver for Fast Sampling of Diffusion Models", arXiv:2309.05019).

diffusers: SASolverScheduler. In log-SNR time lambda, with tau(t) the stochasticity of a step
(default 1 for 200 <= t <= 800, else 0) and c = 1 + tau^2, a step from s to t integrates the
data prediction (``algorithm_type="data_prediction"``):

    x_t = e^{-tau^2 h} (sigma_t / sigma_s) x_s + c sigma_t e^{-tau^2 lambda_t} sum_i b_i D_i
          + sigma_t sqrt(1 - e^{-2 tau^2 h}) z

where the D_i are past (and, in the corrector, the new) x0 predictions and
b_i = sum_j L_ij * int_{lambda_s}^{lambda_t} e^{c lambda} lambda^(k-1-j) dlambda, L being the
monomial coefficients of the Lagrange basis through the D_i's lambdas (the noise-prediction
variant uses e^{-lambda} and alpha_t instead). Each step first corrects the previous
prediction with the new model output (Adams-Moulton, reusing the previous noise z), then
predicts the next sample (Adams-Bashforth) with fresh noise z; orders warm up and shrink at
the end with ``lower_order_final``; order 2 adds diffusers' UniPC-like modification.

The integrals use absolute lambdas, so they cancel heavily: every scalar is computed as
diffusers' float32 torch scalars are, in the same order (exp / log as float64 rounded once).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..random import randn_tensor
from .deis_multistep import DEIS_RULES
from .errors import check_choice
from .multistep_plan import _MultistepSolver, config_defaults
from .noising import add_noise_at_timesteps
from .prediction import PREDICTION_TYPES
from .torch_numerics import f32_exp

_F32 = np.float32
ALGORITHM_TYPES = ("data_prediction", "noise_prediction")


def default_tau(t) -> int:
    """diffusers' default stochasticity: 1 inside timesteps [200, 800], else 0 (ODE)."""
    return 1 if 200 <= t <= 800 else 0


def _lagrange(lams: list) -> list:
    """Rows i: monomial coefficients (highest power first) of the Lagrange basis polynomial that
    is 1 at lams[i] and 0 at the others, in diffusers' float32 evaluation order."""
    if len(lams) == 1:
        return [[1]]
    rows = []
    for i, li in enumerate(lams):
        o = [x for j, x in enumerate(lams) if j != i]
        d = li - o[0]
        for x in o[1:]:
            d = d * (li - x)
        s = -o[0]
        for x in o[1:]:
            s = s - x
        row = [_F32(1) / d, s / d]
        if len(o) == 2:
            row.append(o[0] * o[1] / d)
        elif len(o) == 3:
            row.append((o[0] * o[1] + o[0] * o[2] + o[1] * o[2]) / d)
            row.append(-o[0] * o[1] * o[2] / d)
        rows.append(row)
    return rows


def _poly_positive(k: int, x):
    """k! times the Taylor polynomial with alternating signs: x^k - k x^(k-1) + ... (k <= 3)."""
    return (_F32(1), x - 1, x * x - 2 * x + 2, x * x * x - 3 * (x * x) + 6 * x - 6)[k]


def _poly_negative(k: int, x):
    return (_F32(1), x + 1, x * x + 2 * x + 2, x * x * x + 3 * (x * x) + 6 * x + 6)[k]


def _exp_integral(k: int, start, end, tau, positive: bool):
    """int_start^end e^{(1 + tau^2) lambda} lambda^k (data prediction) or
    int e^{-lambda} lambda^k (noise prediction), closed form."""
    if positive:
        c = 1 + tau**2
        e, s = c * end, c * start
        decay = f32_exp(-(e - s))
        if k == 0:
            return f32_exp(e) * (1 - decay) / c
        return f32_exp(e) * (_poly_positive(k, e) - _poly_positive(k, s) * decay) / c ** (k + 1)
    if k == 0:
        return f32_exp(-end) * (f32_exp(end - start) - 1)
    return f32_exp(-end) * (_poly_negative(k, start) * f32_exp(end - start) - _poly_negative(k, end))


def _coefficients(order: int, start, end, lams: list, tau, positive: bool) -> list:
    """The b_i: the Lagrange basis integrated against the exponential weight."""
    lagrange = _lagrange(lams)
    out = []
    for i in range(order):
        b = 0
        for j in range(order):
            b = b + lagrange[i][j] * _exp_integral(order - 1 - j, start, end, tau, positive)
        out.append(b)
    return out


class SASolverScheduler(_MultistepSolver):
    noise_kind = "where tau_func > 0 (default: 200 <= t <= 800)"  # for the `edge-sched schedulers` table
    _rules = DEIS_RULES  # Karras timesteps always rounded; a ramp ends on its own last sigma

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        predictor_order: int = 2,
        corrector_order: int = 2,
        prediction_type: str = "epsilon",
        tau_func: Callable | None = None,
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
        algorithm_type: str = "data_prediction",
        lower_order_final: bool = True,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        use_flow_sigmas: bool = False,
        flow_shift: float = 1.0,
        lambda_min_clipped: float = -float("inf"),
        variance_type: str | None = None,
        timestep_spacing: str = "linspace",
        steps_offset: int = 0,
    ):
        check_choice("algorithm_type", algorithm_type, ALGORITHM_TYPES)
        flow = ("flow_prediction",) if algorithm_type == "data_prediction" else ()
        check_choice("prediction_type", prediction_type, (*PREDICTION_TYPES, *flow))
        for name, order, top in (("predictor_order", predictor_order, 4), ("corrector_order", corrector_order, 4)):
            if not 1 <= order <= top:
                raise ValueError(f"{name} must be between 1 and {top}, got {order}.")
        if algorithm_type == "noise_prediction" and thresholding:
            # diffusers indexes its tables with a missing timestep there and fails at the first step
            raise NotImplementedError("thresholding is not supported with algorithm_type='noise_prediction'.")
        with self._defaults():
            self._init_tables()
        self.tau_func = default_tau if tau_func is None else tau_func
        self.predict_x0 = algorithm_type == "data_prediction"
        self._reset_history()

    def _defaults(self):
        """The shared planning's options SA-Solver does not have, at the values it behaves with."""
        cfg = self.config
        return config_defaults(self, {
            "final_sigmas_type": "sigma_min", "rescale_betas_zero_snr": False,
            "solver_order": max(cfg.predictor_order, cfg.corrector_order - 1),
        })

    def _reset_history(self) -> None:
        size = max(self.config.predictor_order, self.config.corrector_order - 1)
        self.model_outputs = [None] * size
        self.timestep_list = [None] * size
        self.lower_order_nums = 0
        self.last_sample = None
        self.last_noise = None

    def set_timesteps(self, num_inference_steps: int | None = None, device=None):
        """Plan ``num_inference_steps`` steps (timesteps, sigmas and their alpha_t, sigma_t, lambda)."""
        self._check_num_inference_steps(num_inference_steps)
        with self._defaults():
            self._plan(num_inference_steps)
        self._reset_history()

    def convert_model_output(self, model_output: np.ndarray, *args, sample: np.ndarray | None = None, **kwargs):
        """x0 (data_prediction, thresholded if configured) or eps (noise_prediction)."""
        if sample is None:
            if len(args) < 2:
                raise ValueError("convert_model_output: missing `sample`.")
            sample = args[1]
        return self._convert(model_output, sample, self.predict_x0)

    def _lambdas(self, last: int, order: int) -> list:
        return [self._lambda[last - k] for k in range(order)]

    def _order2_extra(self, h, lam_t, tau, denominator, corrector: bool):
        """diffusers' order-2 modification of the first two data-prediction coefficients."""
        c = 1 + tau**2
        tail = h * c - 1 + f32_exp(c * (-h))
        inner = h / 2 - tail / (c**2 * h) if corrector else h * h / 2 - tail / c**2
        extra = 1.0 * f32_exp(c * lam_t) * inner
        return extra if corrector else extra / denominator

    def _update(self, i_s: int, i_t: int, x, outputs: list, noise, order: int, tau, corrector: bool):
        """One Adams step from sigma index i_s to i_t with ``outputs`` (newest last)."""
        a_t, s_t, lam_t = self._alpha[i_t], self._sigma[i_t], self._lambda[i_t]
        a_s, s_s, lam_s = self._alpha[i_s], self._sigma[i_s], self._lambda[i_s]
        h = lam_t - lam_s
        # the predictor interpolates at this step and the previous ones, the corrector adds the new point
        lams = self._lambdas(i_t if corrector else i_s, order)
        b = _coefficients(order, lam_s, lam_t, lams, tau, self.predict_x0)
        if self.predict_x0 and order == 2:
            denominator = None if corrector else lam_s - self._lambda[i_s - 1]
            extra = self._order2_extra(h, lam_t, tau, denominator, corrector)
            b[0] = b[0] + extra
            b[1] = b[1] - extra
        if self.predict_x0:
            weight = (1 + tau**2) * s_t * f32_exp(-(tau**2) * lam_t)
            gradient = sum_terms([weight * b[k] for k in range(order)], outputs)
            noise_part = (s_t * np.sqrt(_F32(1) - f32_exp(-2 * tau**2 * h))) * noise
            return f32_exp(-(tau**2) * h) * (s_t / s_s) * x + gradient + noise_part
        gradient = sum_terms([-(1 + tau**2) * a_t * b[k] for k in range(order)], outputs)
        with np.errstate(invalid="ignore"):
            noise_part = (tau * s_t * np.sqrt(f32_exp(2 * h) - _F32(1))) * noise
        return (a_t / a_s) * x + gradient + noise_part

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None, return_dict: bool = True):
        """Correct the previous step with this model output, then predict the next sample."""
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        cfg, i, n = self.config, self._step_index, len(self.timesteps)
        m = self.convert_model_output(model_output, sample=sample)
        if i > 0 and self.last_sample is not None:
            tau = self.tau_func(self.timestep_list[-1])
            sample = self._update(i - 1, i, self.last_sample, self.model_outputs + [m], self.last_noise,
                                  self.this_corrector_order, tau, corrector=True).astype(self.last_sample.dtype)
        self.model_outputs[:-1] = self.model_outputs[1:]
        self.timestep_list[:-1] = self.timestep_list[1:]
        self.model_outputs[-1] = m
        self.timestep_list[-1] = timestep
        noise = randn_tensor(model_output.shape, generator=generator, dtype=model_output.dtype)

        predictor, corrector = cfg.predictor_order, cfg.corrector_order
        if cfg.lower_order_final:
            predictor, corrector = min(predictor, n - i), min(corrector, n - i + 1)
        self.this_predictor_order = min(predictor, self.lower_order_nums + 1)  # warm-up
        self.this_corrector_order = min(corrector, self.lower_order_nums + 2)
        self.last_sample, self.last_noise = sample, noise
        tau = self.tau_func(timestep)
        x = np.asarray(sample, dtype=_F32)
        prev_sample = self._update(i, i + 1, x, self.model_outputs, noise, self.this_predictor_order, tau,
                                   corrector=False).astype(x.dtype)
        if self.lower_order_nums < max(cfg.predictor_order, cfg.corrector_order - 1):
            self.lower_order_nums += 1
        self._step_index += 1
        return self._output(prev_sample, None, return_dict)

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * noise at training timesteps (as diffusers)."""
        return add_noise_at_timesteps(self.alphas_cumprod, original_samples, noise, timesteps)


def sum_terms(weights: list, outputs: list):
    """sum_k weights[k] * outputs[-(k + 1)], accumulated left to right (newest output first)."""
    total = weights[0] * outputs[-1]
    for k in range(1, len(weights)):
        total = total + weights[k] * outputs[-(k + 1)]
    return total


__all__ = ["SASolverScheduler"]
