"""DPM-Solver-1/2/3 steps (Lu et al. 2022, arXiv:2206.00927) as k-diffusion's ``DPMSolver`` takes
them, split at the model calls (DPM fast and DPM adaptive share them).

In t = -log(sigma), from t to t' (h = t' - t) with eps = (x - D(x, sigma)) / sigma at t and the
intermediate times s1 = t + r1 h, s2 = t + r2 h (eps_r1, eps_r2 the eps at the intermediate points):

    x_1 = x - sigma(t') expm1(h) eps
    x_2 = x_1 - sigma(t') / (2 r1) expm1(h) (eps_r1 - eps),          u1 = x - sigma(s1) expm1(r1 h) eps
    x_3 = x_1 - sigma(t') / r2 (expm1(h) / h - 1) (eps_r2 - eps),
          u2 = x - sigma(s2) expm1(r2 h) eps - sigma(s2) (r2 / r1) (expm1(r2 h) / (r2 h) - 1) (eps_r1 - eps)

with k-diffusion's defaults r1 = 1/2 for the 2-step and r1, r2 = 1/3, 2/3 for the 3-step.
Float32, in k-diffusion's order of operations.
"""

from __future__ import annotations

import numpy as np

from .kdiffusion_base import ancestral_step, sigma_of, t_of
from .torch_numerics import f32_expm1

_F32 = np.float32
R1_ORDER_2, R1_ORDER_3, R2_ORDER_3 = 1 / 2, 1 / 3, 2 / 3


def dpm_solver_1_step(x, t, t_next, eps):
    return x - (sigma_of(t_next) * f32_expm1(t_next - t)) * eps


def dpm_solver_2_step(x, t, t_next, eps, eps_r1, r1: float = R1_ORDER_2):
    x_1 = dpm_solver_1_step(x, t, t_next, eps)
    return x_1 - ((sigma_of(t_next) / _F32(2 * r1)) * f32_expm1(t_next - t)) * (eps_r1 - eps)


def dpm_solver_3_step(x, t, t_next, eps, eps_r1, eps_r2):
    h = t_next - t
    x_1 = dpm_solver_1_step(x, t, t_next, eps)
    return x_1 - ((sigma_of(t_next) / _F32(R2_ORDER_3)) * (f32_expm1(h) / h - _F32(1))) * (eps_r2 - eps)


def dpm_solver_u1(x, t, t_next, eps, r1: float):
    """The first intermediate point, at s1 = t + r1 h."""
    r1h = _F32(r1) * (t_next - t)
    return x - (sigma_of(t + r1h) * f32_expm1(r1h)) * eps


def dpm_solver_u2(x, t, t_next, eps, eps_r1):
    """The 3-step's second intermediate point, at s2 = t + r2 h."""
    r2 = _F32(R2_ORDER_3)
    r2h = r2 * (t_next - t)
    sigma_s2, em = sigma_of(t + r2h), f32_expm1(r2h)
    ratio = _F32(R2_ORDER_3 / R1_ORDER_3)
    return x - (sigma_s2 * em) * eps - ((sigma_s2 * ratio) * (em / r2h - _F32(1))) * (eps_r1 - eps)


def ancestral_target(t, t_next, t_end, eta: float):
    """(where the solver step from t to t_next ends, sigma_up) of k-diffusion's DPMSolver with eta:
    at sigma_down's t (at most t_end), adding sqrt(sigma(t_next)^2 - sigma(end)^2) of noise."""
    if not eta:
        return t_next, _F32(0)
    down, _ = ancestral_step(sigma_of(t), sigma_of(t_next), eta)
    t_target = min(t_end, t_of(down))
    return t_target, np.sqrt(sigma_of(t_next) ** 2 - sigma_of(t_target) ** 2)


def stage_times(t, t_next, order: int) -> list:
    """The t of each model call of a DPM-Solver step of ``order`` from t to t_next."""
    h = t_next - t
    if order == 1:
        return [t]
    if order == 2:
        return [t, t + _F32(R1_ORDER_2) * h]
    return [t, t + _F32(R1_ORDER_3) * h, t + _F32(R2_ORDER_3) * h]


def after_stage(order: int, stage: int, x, t, t_next, eps: list):
    """After the model call of ``stage`` (eps: the eps of every call so far): the next call's input,
    or the step's result after its last call."""
    if stage == 0 and order > 1:
        return dpm_solver_u1(x, t, t_next, eps[0], R1_ORDER_3 if order == 3 else R1_ORDER_2)
    if stage == 1 and order == 3:
        return dpm_solver_u2(x, t, t_next, eps[0], eps[1])
    if order == 1:
        return dpm_solver_1_step(x, t, t_next, eps[0])
    if order == 2:
        return dpm_solver_2_step(x, t, t_next, eps[0], eps[1])
    return dpm_solver_3_step(x, t, t_next, eps[0], eps[1], eps[2])


__all__ = ["after_stage", "ancestral_target", "dpm_solver_1_step", "dpm_solver_2_step", "dpm_solver_3_step", "dpm_solver_u1",
           "dpm_solver_u2", "stage_times"]
