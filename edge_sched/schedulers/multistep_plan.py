"""Schedule planning shared by the multistep exponential-integrator solvers.

DPM-Solver / DPM-Solver++ (Lu et al. 2022, arXiv:2206.00927, 2211.01095) and UniPC (Zhao et
al. 2023, arXiv:2302.04867) integrate the diffusion ODE in log-SNR time. A noise level
sigma (Karras' sigma = sigma_t / alpha_t) has

    VP:             alpha_t = 1 / sqrt(sigma^2 + 1),   sigma_t = sigma * alpha_t
    flow matching:  alpha_t = 1 - sigma,                sigma_t = sigma
    lambda = log(alpha_t) - log(sigma_t),               h = lambda_next - lambda

and the rules are linear in the sample and the (converted) model outputs, with coefficients
that depend only on these numbers. This module plans what depends only on the schedule:
timesteps and sigmas (training-interpolated, Karras, exponential, beta, Lu's uniform-lambda,
flow-matching; ``lambda_min_clipped``; the final sigma), the float32 (alpha_t, sigma_t,
lambda) of every sigma as torch computes them, and the conversion of model outputs to the
x0 or eps the rules integrate. dpmsolver_multistep.py and unipc_multistep.py hold the rules.

Numerics: diffusers computes these scalars as float32 torch tensors; +-*/ and sqrt are
correctly rounded on both sides, torch's float32 exp/log/expm1 are replaced by correctly
rounded ones (torch_numerics.f32_exp...: at most one ulp apart).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np

from .base import KARRAS_COMPATIBLES, SchedulerMixin, expand_to
from .betas import betas_and_alphas_cumprod
from .configuration import FrozenConfig
from .errors import check_choice
from .prediction import predicted_eps, predicted_x0, threshold_sample
from .sigmas import configured_sigma_schedule, flow_time_shift, lu_lambdas, sigma_schedule, sigma_to_t
from .spacing import spaced_timesteps
# f32_exp and f32_expm1 only for dpmsolver_sde.py, which still imports them from here
from .torch_numerics import f32_exp, f32_expm1, f32_log  # noqa: F401

_F32 = np.float32
FINAL_SIGMAS_TYPES = ("zero", "sigma_min")


def alpha_sigma_of(sigmas: np.ndarray, flow: bool) -> tuple[np.ndarray, np.ndarray]:
    """(alpha_t, sigma_t) of Karras sigmas, in the sigmas' dtype (float32 ops like torch)."""
    one = sigmas.dtype.type(1)
    if flow:
        return one - sigmas, sigmas
    alpha = one / np.sqrt(sigmas * sigmas + one)
    return alpha, sigmas * alpha


def log_snr(alpha: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """lambda = log(alpha_t) - log(sigma_t) in float32 (+inf at sigma 0)."""
    with np.errstate(invalid="ignore"):
        return f32_log(alpha) - f32_log(sigma)


@dataclass(frozen=True)
class PlanRules:
    """Where diffusers' DPMSolverMultistep and UniPCMultistep plan the same options differently.

    round_ramp_timesteps: Karras / Lu timesteps are rounded, except for squaredcos_cap_v2 when
                          ``keep_cosine_fractional`` (DPM); otherwise truncated to integers.
    final_from_ramp:      with ``final_sigmas_type="sigma_min"``, a resampled schedule ends on
                          its own last sigma (UniPC) instead of the first training sigma (DPM).
    flow_grid:            "dpm": shifted 1 - linspace(1, 1/T, n + 1), reversed, without its 0;
                          "unipc": linspace(1, 1/T, n + 1)[:-1] (or custom sigmas), then shifted
                          (mu time shift, shift_terminal), nudged below 1.
    karras_flow:          Karras sigmas of a flow model are mapped to s / (1 + s) (UniPC).
    """

    keep_cosine_fractional: bool
    final_from_ramp: bool
    flow_grid: str
    karras_flow: bool


DPM_RULES = PlanRules(keep_cosine_fractional=True, final_from_ramp=False, flow_grid="dpm", karras_flow=False)
UNIPC_RULES = PlanRules(keep_cosine_fractional=False, final_from_ramp=True, flow_grid="unipc", karras_flow=True)


def plan_schedule(config, alphas_cumprod: np.ndarray, lambda_t: np.ndarray, num_inference_steps: int | None,
                  rules: PlanRules, *, timesteps=None, sigmas=None, mu: float | None = None):
    """(int64 timesteps, float32 sigmas with the final sigma appended) of one schedule.

    ``timesteps``: custom integer timesteps (DPM); ``sigmas``: custom flow sigmas (UniPC);
    ``mu``: the dynamic flow shift (UniPC; DPM folds it into ``flow_shift`` beforehand).
    """
    cfg = config
    check_choice("final_sigmas_type", cfg.final_sigmas_type, FINAL_SIGMAS_TYPES)
    n_train = cfg.num_train_timesteps
    train_sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
    kind = configured_sigma_schedule(cfg)
    if getattr(cfg, "use_lu_lambdas", False) and kind != "karras":  # diffusers' precedence
        kind = "lu"
    flow = cfg.use_flow_sigmas
    if timesteps is not None:
        steps = np.asarray(timesteps).astype(np.int64)
    elif sigmas is None:
        # clip the smallest log-SNR (critical for the cosine schedule): drop the last timesteps
        clipped = int(np.searchsorted(lambda_t[::-1], getattr(cfg, "lambda_min_clipped", -math.inf)))
        steps = spaced_timesteps(
            cfg.timestep_spacing, num_inference_steps, n_train, cfg.steps_offset,
            extra_step=True, last_timestep=n_train - clipped,
        ).astype(np.int64)
    base = train_sigmas if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    ramp_end = None  # last sigma of a resampled schedule (UniPC's "sigma_min" final sigma)

    if kind is not None:
        log_sigmas = np.log(base)
        if kind == "lu":
            in_lambdas = log_sigmas[::-1]
            out = np.exp(lu_lambdas(in_lambdas[-1].item(), in_lambdas[0].item(), num_inference_steps))
        else:
            out = sigma_schedule(kind, base[::-1], num_inference_steps, cfg)
        if kind == "karras" and flow and rules.karras_flow:
            out = out / (out + 1)
            steps = out * n_train
        else:
            steps = sigma_to_t(out, log_sigmas)
            round_it = kind in ("karras", "lu") and not (
                rules.keep_cosine_fractional and cfg.beta_schedule == "squaredcos_cap_v2")
            steps = steps.round() if round_it else steps
        ramp_end = out[-1]
    elif flow:
        out, steps = _flow_sigmas(cfg, rules, num_inference_steps, sigmas, mu)
        ramp_end = out[-1]
    else:
        out = np.interp(steps, np.arange(len(train_sigmas)), train_sigmas)

    if cfg.final_sigmas_type == "zero":
        last = 0.0
    elif rules.final_from_ramp and ramp_end is not None:
        last = ramp_end
    else:
        last = train_sigmas[0]
    all_sigmas = np.concatenate([out, [last]]).astype(_F32)
    return np.asarray(steps).astype(np.int64), all_sigmas


def _flow_sigmas(cfg, rules: PlanRules, n: int | None, sigmas, mu):
    """Flow-matching sigmas (descending, without the final one) and their float timesteps."""
    n_train, shift = cfg.num_train_timesteps, cfg.flow_shift
    if rules.flow_grid == "dpm":
        s = 1.0 - np.linspace(1, 1 / n_train, n + 1)
        s = (shift * s / (1 + (shift - 1) * s))[::-1][:-1].copy()
        return s, s * n_train
    s = np.linspace(1, 1 / n_train, n + 1)[:-1] if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if cfg.use_dynamic_shifting:
        s = flow_time_shift(s, mu, cfg.time_shift_type)
    else:
        s = shift * s / (1 + (shift - 1) * s)
    if cfg.shift_terminal:
        one_minus = 1 - s
        with np.errstate(divide="ignore", invalid="ignore"):  # one step: 0 / 0, NaN as in diffusers
            s = 1 - one_minus / (one_minus[-1] / (1 - cfg.shift_terminal))
    s = np.array(s, dtype=np.float64)
    if abs(s[0] - 1) < 1e-6:  # keep log(alpha_t) finite at the first step
        s[0] -= 1e-6
    return s, s * n_train


class _MultistepSolver(SchedulerMixin):
    """What DPMSolverMultistepScheduler and UniPCMultistepScheduler share: training tables,
    schedule planning, model-output conversion, ``add_noise`` and diffusers' step indexing."""

    _compatibles = KARRAS_COMPATIBLES
    order = 1
    init_noise_sigma = 1.0
    _rules: PlanRules

    def _init_tables(self) -> None:
        """Training tables (float32 like torch) and the schedule before ``set_timesteps``."""
        cfg = self.config
        configured_sigma_schedule(cfg)
        check_choice("final_sigmas_type", cfg.final_sigmas_type, FINAL_SIGMAS_TYPES)
        self.betas, alphas_cumprod = betas_and_alphas_cumprod(cfg)
        self.alphas = (1.0 - self.betas).astype(_F32)
        if cfg.rescale_betas_zero_snr:
            # sigma would be infinite at the zero-SNR step; diffusers uses a tiny alpha instead
            alphas_cumprod[-1] = 2**-24
        self.alphas_cumprod = alphas_cumprod
        self.alpha_t = np.sqrt(alphas_cumprod)
        self.sigma_t = np.sqrt(_F32(1) - alphas_cumprod)
        self.lambda_t = log_snr(self.alpha_t, self.sigma_t)
        self.sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        n = cfg.num_train_timesteps
        self.timesteps = np.linspace(0, n - 1, n, dtype=np.float32)[::-1].copy()
        self.num_inference_steps = None
        self.model_outputs = [None] * cfg.solver_order
        self.lower_order_nums = 0
        self._step_index = None
        self._begin_index = None

    def _plan(self, num_inference_steps, *, timesteps=None, sigmas=None, mu=None) -> None:
        """Set timesteps, sigmas and the float32 (alpha_t, sigma_t, lambda) of every sigma."""
        self.timesteps, self.sigmas = plan_schedule(
            self.config, self.alphas_cumprod, self.lambda_t, num_inference_steps, self._rules,
            timesteps=timesteps, sigmas=sigmas, mu=mu,
        )
        self.num_inference_steps = len(self.timesteps)
        self._alpha, self._sigma = alpha_sigma_of(self.sigmas, self.config.use_flow_sigmas)
        self._lambda = log_snr(self._alpha, self._sigma)
        self.model_outputs = [None] * self.config.solver_order
        self.lower_order_nums = 0
        self._step_index = None
        self._begin_index = None

    def _convert(self, model_output: np.ndarray, sample: np.ndarray, to_x0: bool, *, threshold_eps: bool = False):
        """The x0 (data prediction) or eps (noise prediction) of the model output at the
        current step; x0 is thresholded when the config asks for it, eps only with
        ``threshold_eps`` (through its x0). An epsilon output with a learned variance
        (``variance_type``) keeps its first 3 channels, the mean."""
        cfg, i = self.config, self._step_index
        kind = cfg.prediction_type
        alpha, sigma = self._alpha[i], self._sigma[i]
        if kind == "epsilon" and getattr(cfg, "variance_type", None) in ("learned", "learned_range"):
            model_output = model_output[:, :3]
        if to_x0:
            # flow_prediction uses the raw sigma (== sigma_t for flow sigmas)
            x0 = predicted_x0(kind, model_output, sample, alpha, self.sigmas[i] if kind == "flow_prediction" else sigma)
            if cfg.thresholding:
                x0 = threshold_sample(x0, cfg.dynamic_thresholding_ratio, cfg.sample_max_value)
            return x0
        eps = predicted_eps(kind, model_output, sample, alpha, sigma)
        if cfg.thresholding and threshold_eps:
            x0 = threshold_sample((sample - sigma * eps) / alpha, cfg.dynamic_thresholding_ratio, cfg.sample_max_value)
            eps = (sample - alpha * x0) / sigma
        return eps

    def scale_model_input(self, sample: np.ndarray, *args, **kwargs) -> np.ndarray:
        """These solvers feed the sample to the model unscaled."""
        return sample

    def index_for_timestep(self, timestep, schedule_timesteps: np.ndarray | None = None) -> int:
        """As diffusers for these solvers: a timestep not in the schedule maps to the last step."""
        if schedule_timesteps is None:
            schedule_timesteps = self.timesteps
        indices = np.flatnonzero(schedule_timesteps == np.asarray(timestep).item())
        if len(indices) == 0:
            return len(self.timesteps) - 1
        return int(indices[1] if len(indices) > 1 else indices[0])

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """x_t = alpha_t * x0 + sigma_t * noise at the sigma of each (scheduled) timestep."""
        idx = self._noising_indices(timesteps)
        sigma = expand_to(self.sigmas.astype(original_samples.dtype)[idx], original_samples.ndim)
        alpha_t, sigma_t = alpha_sigma_of(sigma, self.config.use_flow_sigmas)
        return alpha_t * original_samples + sigma_t * noise


def dpm_flow_sigmas(config, num_inference_steps: int):
    """DPM-Solver's flow-matching grid (descending sigmas without the final one, and their
    float timesteps), for solvers that plan flow sigmas the same way (DEIS, the DPM inverse)."""
    return _flow_sigmas(config, DPM_RULES, num_inference_steps, None, None)


@contextlib.contextmanager
def config_defaults(scheduler: SchedulerMixin, defaults: dict):
    """Let the shared planning and update code read options a scheduler does not expose
    (DEIS has no ``final_sigmas_type``...), at the values that scheduler behaves with. Inside
    the block ``scheduler.config`` also holds ``defaults``; the saved config never does."""
    real = scheduler._internal_dict
    # the defaults win: a key of the same name in the config is a leftover from another class's
    # config (from_config keeps those), which this scheduler ignores, as diffusers' does
    merged = FrozenConfig({**real, **defaults})
    for name, value in vars(real).items():  # a shadowing attribute (ConfigMixin._shadow_config_attribute) stays
        object.__setattr__(merged, name, value)
    scheduler._internal_dict = merged
    try:
        yield
    finally:
        scheduler._internal_dict = real
