"""UniPC: unified predictor-corrector multistep sampler (Zhao et al. 2023, arXiv:2302.04867),
B(h) variants.

diffusers: UniPCMultistepScheduler. With lambda = log(alpha_t / sigma_t) (multistep_plan.py),
step i (sigma_i -> sigma_{i+1}) of order p, m_j the model output at step j converted to x0
(``predict_x0``) or eps, and in the x0 case (eps: swap alpha/sigma, h -> -h):

    h = lambda_{i+1} - lambda_i,  hh = -h,  r_k = (lambda_{i-k} - lambda_i) / h
    D1_k = (m_{i-k} - m_i) / r_k                                  (k = 1 .. p-1)
    B(h) = hh ("bh1") or e^hh - 1 ("bh2");  phi_1 = e^hh - 1
    b_k = k! phi_{k+1}(hh) / B(h)   (phi_{k+1} by the recursion phi_{k+1} = phi_k / hh - 1/k!)
    UniP:  x_{i+1} = (s'/s) x_i - a' phi_1 m_i - a' B(h) sum_k rho_k D1_k
           rho = 1/2 (p = 2), else solve(R[:p-1, :p-1], b[:p-1]) with R_jk = r_k^j
    UniC (next step, once m_{i+1} is known, unless ``disable_corrector`` lists step i):
           x_{i+1} <- (s'/s) x_i - a' phi_1 m_i - a' B(h) (sum_k rho_k D1_k + rho_p (m_{i+1} - m_i))
           rho = 1/2 (p = 1), else solve(R, b) with r_p = 1

(a, s = alpha_t, sigma_t at sigma_i; primes at sigma_{i+1}.) The corrector reuses the
predictor's (s'/s) x_i - a' phi_1 m_i and D1_k, which are the same numbers. All
coefficients and rho vectors depend only on the schedule and are planned in set_timesteps.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .base import SchedulerMixin
from .multistep_plan import UNIPC_RULES, _MultistepSolver
from .torch_numerics import f32_expm1

_F32 = np.float32


def _powers(r: np.ndarray, p: int) -> np.ndarray:
    """r**p as torch.pow computes it for small integer p (repeated products)."""
    if p == 0:
        return np.ones_like(r)
    if p <= 3:
        out = r
        for _ in range(p - 1):
            out = out * r
        return out
    return np.power(r, _F32(p))


def _solve_rows(R: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise float32 ``solve(R[i], b[i])`` of (n, k, k) systems -> (solutions, singular mask).

    Rows whose R is not finite (steps an order never reaches, degenerate intervals) give NaN;
    a singular R is flagged (torch.linalg.solve raises there) whatever b is.
    """
    n, k = b.shape
    skip = ~np.isfinite(R).all(axis=(1, 2))
    R = np.where(skip[:, None, None], np.eye(k, dtype=_F32), R)
    bad_b = ~np.isfinite(b).all(axis=1)
    b = np.where(bad_b[:, None], _F32(0), b)
    singular = np.zeros(n, dtype=bool)
    try:
        x = np.linalg.solve(R, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        x = np.zeros_like(b)
        for row in range(n):
            try:
                x[row] = np.linalg.solve(R[row], b[row])
            except np.linalg.LinAlgError:
                singular[row] = True
    x[skip | bad_b | singular] = np.nan
    return x.astype(_F32), singular


def unipc_coefficients(solver_type: str, predict_x0: bool, max_order: int, alpha, sigma, lam):
    """Per-interval float32 constants, from (alpha_t, sigma_t, lambda) of n + 1 sigmas.

    Returns a dict: ``cs``, ``c0``, ``cres`` (n,) weights of x_i, m_i and the B(h) residual;
    ``rk`` (n, max_order - 1) the ratios r_k; ``rho_p[p]``, ``rho_c[p]`` the predictor and
    corrector weights of order p with their ``singular_p`` / ``singular_c`` masks.
    """
    a_t, s_t, a_s, s_s = alpha[1:], sigma[1:], alpha[:-1], sigma[:-1]
    one = _F32(1)
    n = len(a_t)
    with np.errstate(all="ignore"):
        h = lam[1:] - lam[:-1]
        hh = -h if predict_x0 else h
        h_phi_1 = f32_expm1(hh)
        B_h = hh if solver_type == "bh1" else f32_expm1(hh)
        if predict_x0:
            cs, c0, cres = s_t / s_s, a_t * h_phi_1, a_t * B_h
        else:
            cs, c0, cres = a_t / a_s, s_t * h_phi_1, s_t * B_h
        rk = np.full((n, max(max_order - 1, 0)), np.nan, dtype=_F32)
        for k in range(1, max_order):
            rk[k:, k - 1] = (lam[: n - k] - lam[k:n]) / h[k:]
        b = np.empty((n, max_order), dtype=_F32)
        h_phi_k, factorial = h_phi_1 / hh - one, 1
        for k in range(max_order):
            b[:, k] = h_phi_k * _F32(factorial) / B_h
            factorial *= k + 2
            h_phi_k = h_phi_k / hh - _F32(1 / factorial)
        rho_p, rho_c, singular_p, singular_c = {}, {}, {}, {}
        for p in range(1, max_order + 1):
            if p <= 2:
                rho_p[p], singular_p[p] = np.full((n, max(p - 1, 0)), 0.5, dtype=_F32), np.zeros(n, bool)
            else:
                R = np.stack([_powers(rk[:, : p - 1], j) for j in range(p - 1)], axis=1)
                rho_p[p], singular_p[p] = _solve_rows(R, b[:, : p - 1])
            if p == 1:
                rho_c[p], singular_c[p] = np.full((n, 1), 0.5, dtype=_F32), np.zeros(n, bool)
            else:
                rks = np.concatenate([rk[:, : p - 1], np.ones((n, 1), _F32)], axis=1)
                R = np.stack([_powers(rks, j) for j in range(p)], axis=1)
                rho_c[p], singular_c[p] = _solve_rows(R, b[:, :p])
        # diffusers' first-order update subtracts B(h) * 0, NaN when B(h) is infinite (final sigma 0)
        cres_times_zero = cres * _F32(0)
    return dict(cs=cs, c0=c0, cres=cres, cres_times_zero=cres_times_zero, rk=rk, rho_p=rho_p, rho_c=rho_c,
                singular_p=singular_p, singular_c=singular_c)


class UniPCMultistepScheduler(_MultistepSolver):
    _rules = UNIPC_RULES
    _legacy_values = {"solver_type": {"midpoint": "bh2", "heun": "bh2", "logrho": "bh2"}}

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
        predict_x0: bool = True,
        solver_type: Literal["bh1", "bh2"] = "bh2",
        lower_order_final: bool = True,
        disable_corrector: list[int] = [],  # noqa: B006 (diffusers' default, never mutated)
        solver_p: SchedulerMixin = None,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        use_flow_sigmas: bool = False,
        flow_shift: float = 1.0,
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "linspace",
        steps_offset: int = 0,
        final_sigmas_type: Literal["zero", "sigma_min"] = "zero",
        rescale_betas_zero_snr: bool = False,
        use_dynamic_shifting: bool = False,
        time_shift_type: Literal["exponential"] = "exponential",
        sigma_min: float | None = None,
        sigma_max: float | None = None,  # diffusers annotates `bool | None` but uses a float
        shift_terminal: float | None = None,  # likewise
    ):
        if shift_terminal is not None and not use_flow_sigmas:
            raise ValueError("`shift_terminal` is only supported when `use_flow_sigmas=True`.")
        self._init_tables()
        self.predict_x0 = predict_x0
        self.timestep_list = [None] * solver_order
        self.disable_corrector = disable_corrector
        self.solver_p = solver_p
        self.last_sample = None
        self._corrector_base = None

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, sigmas: list[float] | None = None,
                      mu: float | None = None):
        """Plan ``num_inference_steps`` steps, or custom descending flow ``sigmas`` (one per step,
        ``use_flow_sigmas`` only); ``mu`` is required with ``use_dynamic_shifting``."""
        cfg = self.config
        if cfg.use_dynamic_shifting and mu is None:
            raise ValueError("`mu` must be passed to set_timesteps when `use_dynamic_shifting` is True.")
        self._check_custom_schedule(num_inference_steps, None, sigmas)
        if sigmas is not None:
            if not cfg.use_flow_sigmas:
                raise ValueError("Custom `sigmas` need use_flow_sigmas=True (set it when creating the scheduler).")
            sigmas = self._check_descending("sigmas", sigmas, strict=False)
            num_inference_steps = len(sigmas)
        else:
            self._check_num_inference_steps(num_inference_steps)
        self._plan(num_inference_steps, sigmas=sigmas, mu=mu)
        self._k = unipc_coefficients(
            cfg.solver_type, self.predict_x0, cfg.solver_order, self._alpha, self._sigma, self._lambda
        )
        self.last_sample = None
        self._corrector_base = None
        if self.solver_p:
            self.solver_p.set_timesteps(self.num_inference_steps, device=device)

    def convert_model_output(self, model_output: np.ndarray, *args, sample: np.ndarray | None = None, **kwargs):
        """x0 (``predict_x0``, thresholded if configured) or eps of the model output."""
        if sample is None:
            if len(args) < 2:
                raise ValueError("convert_model_output: missing `sample`.")
            sample = args[1]
        return self._convert(model_output, sample, self.predict_x0)

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, return_dict: bool = True):
        """Correct ``sample`` with this step's model output (UniC), then predict the next one (UniP)."""
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        cfg, i = self.config, self._step_index
        use_corrector = i > 0 and i - 1 not in self.disable_corrector and self.last_sample is not None
        m = self.convert_model_output(model_output, sample=sample)
        if use_corrector:
            sample = self._correct(i - 1, m)
        self.model_outputs[:-1] = self.model_outputs[1:]
        self.model_outputs[-1] = m
        self.timestep_list[:-1] = self.timestep_list[1:]
        self.timestep_list[-1] = timestep

        if i >= len(self.timesteps):  # diffusers: AssertionError (this_order == 0)
            raise IndexError(f"step index {i} is past the last of the {len(self.timesteps)} steps.")
        order = min(cfg.solver_order, len(self.timesteps) - i) if cfg.lower_order_final else cfg.solver_order
        self.this_order = min(order, self.lower_order_nums + 1)  # warm-up
        self.last_sample = sample
        prev_sample = self._predict(i, self.this_order, sample, model_output)
        if self.lower_order_nums < cfg.solver_order:
            self.lower_order_nums += 1
        self._step_index += 1
        return self._output(prev_sample, None, return_dict)

    def _base(self, j: int, order: int, x: np.ndarray):
        """(s'/s) x - a' phi_1 m_i and the D1_k of interval j (shared by UniP and UniC)."""
        k, m = self._k, self.model_outputs
        m0 = m[-1]
        base = k["cs"][j] * x - k["c0"][j] * m0
        d1s = [(m[-(q + 1)] - m0) / k["rk"][j, q - 1] for q in range(1, order)]
        return base, d1s

    @staticmethod
    def _weighted(rhos: np.ndarray, d1s: list) -> np.ndarray:
        out = rhos[0] * d1s[0]
        for rho, d in zip(rhos[1:], d1s[1:]):
            out = out + rho * d
        return out

    def _check_solvable(self, kind: str, order: int, j: int) -> None:
        if self._k[f"singular_{kind}"][order][j]:
            raise np.linalg.LinAlgError(
                f"UniPC order-{order} {'predictor' if kind == 'p' else 'corrector'} system at step {j} is "
                "singular (as in diffusers, e.g. lower_order_final=False with a final sigma of 0)."
            )

    def _predict(self, i: int, order: int, x: np.ndarray, model_output: np.ndarray) -> np.ndarray:
        if self.solver_p:
            self._corrector_base = None
            return self.solver_p.step(model_output, self.timestep_list[-1], x).prev_sample
        self._check_solvable("p", order, i)
        base, d1s = self._base(i, order, x)
        self._corrector_base = (base, d1s)
        cres = self._k["cres"][i]
        if order == 1:
            return (base - self._k["cres_times_zero"][i]).astype(x.dtype, copy=False)
        return (base - cres * self._weighted(self._k["rho_p"][order][i], d1s)).astype(x.dtype, copy=False)

    def _correct(self, j: int, model_t: np.ndarray) -> np.ndarray:
        order, x = self.this_order, self.last_sample
        self._check_solvable("c", order, j)
        base, d1s = self._corrector_base or self._base(j, order, x)
        rhos = self._k["rho_c"][order][j]
        inner = rhos[-1] * (model_t - self.model_outputs[-1])
        if order > 1:
            inner = self._weighted(rhos[:-1], d1s) + inner
        return (base - self._k["cres"][j] * inner).astype(x.dtype, copy=False)
