"""The A1111 samplers diffusers has no scheduler for, ported from k-diffusion's sampling.py:
DPM++ 2S a (``sample_dpmpp_2s_ancestral``), DPM fast (``sample_dpm_fast``) and DPM adaptive
(``sample_dpm_adaptive``), in our scheduler API.

k-diffusion calls a denoiser D(x, sigma) several times inside one sampler step. Here every model
call is one ``step``: ``timesteps`` lists the (fractional) training timestep of every call's
sigma, ``scale_model_input`` divides by sqrt(sigma^2 + 1) of that call, and ``step`` returns the
point where the model is to be called next (``prev_sample``; the result once the calls run out).
The model output is converted to D = x0 by ``prediction_type`` as in the Euler schedulers.
With t = -log(sigma) and eps = (x - D) / sigma:

DPM++ 2S a (sigma_i -> sigma_{i+1}, eta): sigma_up = min(s', eta sqrt(s'^2 (s^2 - s'^2) / s^2)),
  sigma_down = sqrt(s'^2 - sigma_up^2), h = t(sigma_down) - t(s), midpoint t_m = t + h / 2:
    x_m = (sigma(t_m) / sigma(t)) x - expm1(-h/2) D(x, s)
    x'  = (sigma_down / sigma(t)) x - expm1(-h) D(x_m, sigma(t_m)) + sigma_up z   (z if s' > 0)
  and a single Euler call where sigma_down = 0 (the last step).
DPM-Solver-1/2/3 steps (Lu et al. 2022) from t to t' (h = t' - t), stages at t + r h:
    x_1 = x - sigma(t') expm1(h) eps
    x_2 = x_1 - sigma(t') / (2 r1) expm1(h) (eps_r1 - eps)                      (r1 = 1/2)
    u_2 = x - sigma(s2) expm1(r2 h) eps - sigma(s2) (r2/r1) (expm1(r2 h)/(r2 h) - 1) (eps_r1 - eps)
    x_3 = x_1 - sigma(t') / r2 (expm1(h)/h - 1) (eps_r2 - eps)                   (r1, r2 = 1/3, 2/3)
DPM fast: nfe model calls in floor(nfe/3) + 1 steps uniform in t from sigma_max to sigma_min,
  orders 3, 3, ..., then 2, 1 or nfe mod 3.
DPM adaptive: embedded DPM-Solver-2(3) (or -1(2)) pairs with a PID step-size controller; a step is
  accepted when the scaled error allows, so the calls are not known in advance: ``timesteps`` is
  an iterable that yields the next call's timestep after each ``step``.
All scalars are float32, computed in k-diffusion's order of operations.
"""

from __future__ import annotations

import math

import numpy as np

from ..random import randn_tensor
from .base import KARRAS_COMPATIBLES, SchedulerNotReadyError
from .betas import sigmas_of
from .errors import check_choice
from .multistep_plan import f32_exp, f32_expm1, f32_log
from .prediction import PREDICTION_TYPES, to_d, x0_at_sigma
from .sigma_discrete import _SigmaDiscreteScheduler
from .sigmas import configured_sigma_schedule, sigma_to_t
from .torch_numerics import linspace_f32

_F32 = np.float32


def _t(sigma):
    """t = -log(sigma), float32."""
    return -f32_log(sigma)


def _sigma(t):
    """sigma = exp(-t), float32."""
    return f32_exp(-np.asarray(t, dtype=_F32))


def ancestral_step(sigma_from, sigma_to, eta: float = 1.0):
    """(sigma_down, sigma_up) of k-diffusion's get_ancestral_step, float32."""
    sigma_from, sigma_to = _F32(sigma_from), _F32(sigma_to)
    if not eta:
        return sigma_to, _F32(0)
    f2, t2 = sigma_from * sigma_from, sigma_to * sigma_to
    up = min(sigma_to, _F32(eta) * np.sqrt(t2 * (f2 - t2) / f2))
    return np.sqrt(t2 - up * up), up


class _KDiffusionSampler(_SigmaDiscreteScheduler):
    """Training tables and per-call bookkeeping shared by the three samplers."""

    _compatibles = KARRAS_COMPATIBLES

    def _init_common(self, num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, prediction_type):
        check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        configured_sigma_schedule(self.config)
        self._init_training_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        self._train_sigmas = sigmas_of(self.alphas_cumprod)
        self.sigmas = self._training_sigmas()
        self.timesteps = np.arange(num_train_timesteps - 1, -1, -1, dtype=np.float32)
        self.num_inference_steps = None
        self._call_sigma = None

    def _timestep_of(self, sigma) -> np.float32:
        return _F32(sigma_to_t(np.asarray([sigma], dtype=_F32), np.log(self._train_sigmas))[0])

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        """Divide by sqrt(sigma^2 + 1), sigma being this call's noise level."""
        if self._call_sigma is None:
            raise SchedulerNotReadyError(f"{type(self).__name__}: call `set_timesteps` first.")
        sigma = self._call_sigma
        return sample / np.sqrt(sigma * sigma + _F32(1))

    def add_noise(self, original_samples, noise, timesteps):
        raise NotImplementedError(f"{type(self).__name__} samples from pure noise only (no image-to-image).")


class DPMPP2SAncestralScheduler(_KDiffusionSampler):
    """A1111 "DPM++ 2S a" (k-diffusion ``sample_dpmpp_2s_ancestral``) on the discrete sigma schedule
    of the Euler schedulers (``use_karras_sigmas`` for "DPM++ 2S a Karras")."""

    noise_kind = "with eta > 0 (default 1)"  # for the `edge-sched schedulers` table
    order = 2

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        prediction_type: str = "epsilon",
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        timestep_spacing: str = "linspace",
        steps_offset: int = 0,
        eta: float = 1.0,
    ):
        self._init_common(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, prediction_type)

    def set_timesteps(self, num_inference_steps: int, device=None):
        """Plan ``num_inference_steps`` steps (two model calls each but the last)."""
        n = self._check_num_inference_steps(num_inference_steps)
        steps, sigmas = self._plan_sigmas(self._spaced_timesteps(n), n)
        self._set_sigmas(sigmas)
        self.num_inference_steps = n
        calls, timesteps = [], []
        for i in range(n):
            s, s_next = sigmas[i], sigmas[i + 1]
            down, up = ancestral_step(s, s_next, self.config.eta)
            plan = {"i": i, "sigma": s, "down": down, "up": up, "noise": bool(s_next > 0)}
            if down == 0:
                calls.append(dict(plan, kind="euler", call_sigma=s))
                timesteps.append(steps[i])
                continue
            t, t_next = _t(s), _t(down)
            h = t_next - t
            t_mid = t + _F32(0.5) * h
            sig_t, sig_mid = _sigma(t), _sigma(t_mid)
            plan.update(cx1=sig_mid / sig_t, c01=-f32_expm1(-h * _F32(0.5)),
                        cx2=_sigma(t_next) / sig_t, c02=-f32_expm1(-h))
            calls.append(dict(plan, kind="first", call_sigma=s))
            calls.append(dict(plan, kind="second", call_sigma=sig_mid))
            timesteps += [steps[i], self._timestep_of(sig_mid)]
        self._calls = calls
        self.timesteps = np.asarray(timesteps, dtype=np.float32)
        self._call_sigma = calls[0]["call_sigma"]
        self._x = None

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None, s_noise: float = 1.0,
             return_dict: bool = True):
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        c = self._calls[self._step_index]
        x0 = x0_at_sigma(self.config.prediction_type, model_output, sample, c["call_sigma"])
        if c["kind"] == "first":
            self._x = sample
            prev = c["cx1"] * sample + c["c01"] * x0
        else:
            if c["kind"] == "euler":
                prev = sample + to_d(sample, x0, c["sigma"]) * (c["down"] - c["sigma"])
            else:
                prev = c["cx2"] * self._x + c["c02"] * x0
                self._x = None
            if c["noise"]:
                noise = randn_tensor(sample.shape, generator=generator, dtype=_F32)
                prev = prev + noise * _F32(s_noise) * c["up"]
        self._step_index += 1
        if self._step_index < len(self._calls):
            self._call_sigma = self._calls[self._step_index]["call_sigma"]
        return self._output(prev, x0, return_dict)


class _DPMSolverStages(_KDiffusionSampler):
    """DPM-Solver-1/2/3 steps split into model calls (shared by DPM fast and DPM adaptive)."""

    def _stage_sigmas(self, t, t_next, order, r1):
        """The t of each model call of one DPM-Solver step of ``order`` from t to t_next."""
        h = t_next - t
        if order == 1:
            return [t]
        if order == 2:
            return [t, t + _F32(r1) * h]
        return [t, t + _F32(1 / 3) * h, t + _F32(2 / 3) * h]

    @staticmethod
    def _first_order(x, eps, t_next, h):
        return x - (_sigma(t_next) * f32_expm1(h)) * eps

    def _stage(self, order, r1, k, x, eps_list, t, t_next):
        """After the k-th call of a step: the next call's input (k < order) or the step's result."""
        h = t_next - t
        eps = eps_list[0]
        if k == 0 and order > 1:  # u1 at s1 = t + r1 h
            s1 = t + _F32(r1) * h
            return x - (_sigma(s1) * f32_expm1(_F32(r1) * h)) * eps
        if order == 1:
            return self._first_order(x, eps, t_next, h)
        if order == 2:
            diff = eps_list[1] - eps
            x1 = self._first_order(x, eps, t_next, h)
            return x1 - ((_sigma(t_next) / _F32(2 * r1)) * f32_expm1(h)) * diff
        r2 = _F32(2 / 3)
        if k == 1:  # u2 at s2 = t + r2 h
            s2 = t + r2 * h
            sig_s2, em = _sigma(s2), f32_expm1(r2 * h)
            return x - (sig_s2 * em) * eps - ((sig_s2 * _F32(2.0)) * (em / (r2 * h) - _F32(1))) * (eps_list[1] - eps)
        x1 = self._first_order(x, eps, t_next, h)
        return x1 - ((_sigma(t_next) / r2) * (f32_expm1(h) / h - _F32(1))) * (eps_list[2] - eps)


class DPMFastScheduler(_DPMSolverStages):
    """A1111 "DPM fast" (k-diffusion ``sample_dpm_fast``): ``num_inference_steps`` model calls in
    DPM-Solver-3 steps uniform in log-sigma between the training sigma_max and sigma_min."""

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
        eta = self.config.eta
        t_start, t_end = _t(_F32(self._train_sigmas.max())), _t(_F32(self._train_sigmas.min()))
        m = nfe // 3 + 1
        ts = linspace_f32(t_start, t_end, m + 1)
        orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
        calls, steps = [], []
        for i, order in enumerate(orders):
            t, t_next = ts[i], ts[i + 1]
            if eta:
                down, _ = ancestral_step(_sigma(t), _sigma(t_next), eta)
                t_target = min(t_end, _t(down))
                up = np.sqrt(_sigma(t_next) ** 2 - _sigma(t_target) ** 2)
            else:
                t_target, up = t_next, _F32(0)
            step = {"order": order, "t": t, "t_next": t_target, "up": up, "noise": (_sigma(t), _sigma(t_next))}
            steps.append(step)
            for k, tk in enumerate(self._stage_sigmas(t, t_target, order, 0.5 if order == 2 else 1 / 3)):
                calls.append({"step": len(steps) - 1, "k": k, "call_sigma": _sigma(tk)})
        self._steps, self._calls = steps, calls
        self.sigmas = np.array([c["call_sigma"] for c in calls] + [_F32(0)], dtype=_F32)
        self.timesteps = np.array([self._timestep_of(c["call_sigma"]) for c in calls], dtype=np.float32)
        self.num_inference_steps = nfe
        self._step_index = None
        self._call_sigma = calls[0]["call_sigma"]
        self._x, self._eps_list = None, []

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None, s_noise: float = 1.0,
             return_dict: bool = True):
        self._require_timesteps()
        if self._step_index is None:
            self._step_index = 0  # calls run in order; the timestep may repeat between steps
        c = self._calls[self._step_index]
        st = self._steps[c["step"]]
        if c["k"] == 0:
            self._x, self._eps_list = sample, []
        sigma = c["call_sigma"]
        x0 = x0_at_sigma(self.config.prediction_type, model_output, sample, sigma)
        self._eps_list.append(to_d(sample, x0, sigma))
        r1 = 0.5 if st["order"] == 2 else 1 / 3
        prev = self._stage(st["order"], r1, c["k"], self._x, self._eps_list, st["t"], st["t_next"])
        if c["k"] == st["order"] - 1:  # the step is complete
            if self.config.eta:
                noise = randn_tensor(sample.shape, generator=generator, dtype=_F32)
                prev = prev + (st["up"] * _F32(s_noise)) * noise
        self._step_index += 1
        if self._step_index < len(self._calls):
            self._call_sigma = self._calls[self._step_index]["call_sigma"]
        return self._output(prev, x0, return_dict)


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


class DPMAdaptiveScheduler(_DPMSolverStages):
    """A1111 "DPM adaptive" (k-diffusion ``sample_dpm_adaptive``): embedded DPM-Solver pairs
    with PID step-size control from the training sigma_max to sigma_min. The number of model calls
    depends on the model; ``num_inference_steps`` is ignored (as A1111 does)."""

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
        self._t_end = _t(_F32(self._train_sigmas.min()))
        self._s = _t(_F32(self._train_sigmas.max()))
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
        """Target of the next attempt from s: t = min(t_end, s + h), and the stage calls."""
        cfg = self.config
        s = self._s
        t = min(self._t_end, _F32(s + self._h))
        if cfg.eta:
            down, _ = ancestral_step(_sigma(s), _sigma(t), cfg.eta)
            t_target = min(self._t_end, _t(down))
            self._up = np.sqrt(_sigma(t) ** 2 - _sigma(t_target) ** 2)
        else:
            t_target, self._up = t, _F32(0)
        self._t_attempt, self._t_target = t, t_target
        self._stage_t = self._stage_sigmas(s, t_target, cfg.solver_order, 1 / 3 if cfg.solver_order == 3 else 0.5)
        self._k = 1 if self._eps0 is not None else 0
        self._eps_list = [self._eps0] if self._eps0 is not None else []
        self._call_sigma = _sigma(self._stage_t[self._k])

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None, s_noise: float = 1.0,
             return_dict: bool = True):
        self._require_timesteps()
        cfg = self.config
        sigma = self._call_sigma
        x0 = x0_at_sigma(self.config.prediction_type, model_output, sample, sigma)
        eps = to_d(sample, x0, sigma)
        order, s, t_target = cfg.solver_order, self._s, self._t_target
        if self._k == 0:
            self._x, self._eps0, self._eps_list = sample, eps, [eps]
            if self._x_prev is None:
                self._x_prev = sample
        else:
            self._eps_list.append(eps)
        if self._k < order - 1:  # another stage of this attempt
            prev = self._stage(order, 1 / 3 if order == 3 else 0.5, self._k, self._x, self._eps_list, s, t_target)
            self._k += 1
            self._call_sigma = _sigma(self._stage_t[self._k])
            self._step_index += 1
            return self._output(prev, x0, return_dict)
        prev = self._finish_attempt(generator, s_noise)
        self._step_index += 1
        return self._output(prev, x0, return_dict)

    def _finish_attempt(self, generator, s_noise):
        cfg = self.config
        x, eps_list, s, t_target = self._x, self._eps_list, self._s, self._t_target
        if cfg.solver_order == 2:
            x_low = self._stage(1, 0.5, 0, x, eps_list[:1], s, t_target)
            x_high = self._stage(2, 0.5, 1, x, eps_list, s, t_target)
        else:
            x_low = self._stage(2, 1 / 3, 1, x, eps_list[:2], s, t_target)
            x_high = self._stage(3, 1 / 3, 2, x, eps_list, s, t_target)
        delta = np.maximum(_F32(cfg.atol), _F32(cfg.rtol) * np.maximum(np.abs(x_low), np.abs(self._x_prev)))
        error = np.linalg.norm(((x_low - x_high) / delta).astype(np.float64).ravel()) / math.sqrt(x.size)
        accept = self._propose_step(float(_F32(error)))
        self.info["nfe"] += cfg.solver_order  # k-diffusion's count (it re-evaluates x after a rejection)
        self.info["steps"] += 1
        if accept:
            self._x_prev = x_low
            if cfg.eta:
                noise = randn_tensor(x.shape, generator=generator, dtype=_F32)
                x_high = x_high + (self._up * _F32(s_noise)) * noise
            self._s = self._t_attempt
            self._eps0 = None
            self.info["n_accept"] += 1
        else:
            self.info["n_reject"] += 1
        self.done = not self._s < self._t_end - 1e-5
        if self.done:
            return x_high
        self._begin_attempt()
        if not accept:  # retry from the same x with a smaller step: its eps is known, go to stage 1
            r1 = 1 / 3 if cfg.solver_order == 3 else 0.5
            return self._stage(cfg.solver_order, r1, 0, x, self._eps_list, self._s, self._t_target)
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


__all__ = ["DPMAdaptiveScheduler", "DPMFastScheduler", "DPMPP2SAncestralScheduler", "ancestral_step"]
