"""Multistep DPM-Solver++ (Lu et al. 2022, arXiv:2211.01095), ODE and SDE variants, in the
EDM formulation (Karras et al. 2022).

diffusers: EDMDPMSolverMultistepScheduler. The model input is pre-scaled by c_in (see
edm_euler.py), so the solver runs on x = x0 + sigma * eps with alpha_t = 1, sigma_t = sigma
and lambda = -log(sigma); the model output is turned into x0 by EDM's c_skip / c_out
preconditioning. The update rules (orders 1-3, midpoint / heun, the SDE noise term) are
DPMSolverMultistepScheduler's, planned by ``dpm_coefficients`` with these (alpha, sigma,
lambda); this module only supplies the EDM schedule and the x0 conversion.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .dpmsolver_multistep import DPMSolverMultistepScheduler, check_final_sigmas_type, dpm_coefficients
from .edm_euler import _EDMScheduler
from .multistep_plan import log_snr
from .prediction import threshold_sample
from .torch_numerics import linspace_f32

_F32 = np.float32


class EDMDPMSolverMultistepScheduler(_EDMScheduler, DPMSolverMultistepScheduler):
    noise_kind = "with sde-dpmsolver++"  # for the `edge-sched schedulers` table
    _compatibles: list[str] = []
    order = 1

    def __init__(
        self,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        sigma_data: float = 0.5,
        sigma_schedule: Literal["karras", "exponential"] = "karras",
        num_train_timesteps: int = 1000,
        prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon",
        rho: float = 7.0,
        solver_order: int = 2,
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
        algorithm_type: Literal["dpmsolver++", "sde-dpmsolver++"] = "dpmsolver++",
        solver_type: Literal["midpoint", "heun"] = "midpoint",
        lower_order_final: bool = True,
        euler_at_final: bool = False,
        final_sigmas_type: Literal["zero", "sigma_min"] = "zero",
    ):
        check_final_sigmas_type(algorithm_type, final_sigmas_type)
        self._check_edm_config()
        # before set_timesteps: one sigma per training step, on a float32 ramp, final sigma 0
        self._set_sigmas(self._ramp_sigmas(linspace_f32(0, 1, num_train_timesteps)), 0.0)
        self.num_inference_steps = None
        self.model_outputs = [None] * solver_order
        self.lower_order_nums = 0

    def set_timesteps(self, num_inference_steps: int | None = None, device=None):
        """Plan ``num_inference_steps`` steps and every step's solver coefficients."""
        cfg = self.config
        n = self._check_num_inference_steps(num_inference_steps, allow_more_than_train=True)
        final = cfg.sigma_min if cfg.final_sigmas_type == "sigma_min" else 0.0
        self._set_sigmas(self._ramp_sigmas(linspace_f32(0, 1, n)), final)
        self.num_inference_steps = n
        self.model_outputs = [None] * cfg.solver_order
        self.lower_order_nums = 0
        alpha = np.ones_like(self.sigmas)
        self._coefs, self._noise_coef, self._ratios = dpm_coefficients(
            cfg.algorithm_type, cfg.solver_type, alpha, self.sigmas, log_snr(alpha, self.sigmas)
        )
        if cfg.algorithm_type == "sde-dpmsolver++":
            self._coefs[3] = None  # diffusers' EDM variant has no third-order SDE rule

    def convert_model_output(self, model_output: np.ndarray, sample: np.ndarray | None = None) -> np.ndarray:
        """x0 by EDM preconditioning at this step's sigma (thresholded if configured)."""
        cfg = self.config
        x0 = self.precondition_outputs(sample, model_output, self.sigmas[self._step_index])
        if cfg.thresholding:
            x0 = threshold_sample(x0, cfg.dynamic_thresholding_ratio, cfg.sample_max_value)
        return x0


__all__ = ["EDMDPMSolverMultistepScheduler"]
