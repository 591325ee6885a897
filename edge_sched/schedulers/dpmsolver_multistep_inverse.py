"""Inverse multistep DPM-Solver / DPM-Solver++: the same update rules run from clean to noisy
(DDIM-style inversion of an image into its starting noise, e.g. for editing).

diffusers: DPMSolverMultistepInverseScheduler. The rules are DPMSolverMultistepScheduler's
(see dpmsolver_multistep.py; h = lambda_{i+1} - lambda_i is now negative); only the schedule
differs. Timesteps ascend from 0 to the noisiest timestep kept by ``lambda_min_clipped``:

    linspace / leading:  the first n of n + 1 evenly spaced points of [0, noisiest]
    trailing:            the trailing points of DPM-Solver, ascending
    sigmas:              training sigmas at those timesteps, then the noisiest one; a Karras /
                         exponential / beta ramp runs from the smallest to the largest training
                         sigma and ends on its own last value; flow sigmas are DPM-Solver's grid
                         (descending, as in diffusers) ending on their last value.

Timesteps that the ramps map onto the same integer are dropped (first occurrence kept) while
the sigmas keep every ramp point, as diffusers does.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .dpmsolver_multistep import DPMSolverMultistepScheduler, dpm_coefficients
from .errors import check_choice
from .multistep_plan import alpha_sigma_of, config_defaults, dpm_flow_sigmas, log_snr
from .sigmas import configured_sigma_schedule, sigma_schedule, sigma_to_t
from .spacing import TIMESTEP_SPACINGS, spaced_timesteps

_F32 = np.float32
# options of the shared DPM-Solver code this scheduler does not expose, at the values it behaves with
_DEFAULTS = {"final_sigmas_type": "sigma_min", "rescale_betas_zero_snr": False, "use_lu_lambdas": False,
             "use_dynamic_shifting": False, "time_shift_type": "exponential"}


def inverse_timesteps(spacing: str, num_inference_steps: int, num_train_timesteps: int, noisiest: int,
                      steps_offset: int = 0) -> np.ndarray:
    """Ascending float64 timesteps of the inverse schedule (see the module docstring)."""
    check_choice("timestep_spacing", spacing, TIMESTEP_SPACINGS)
    n = num_inference_steps
    if spacing == "trailing":
        return spaced_timesteps(spacing, n, num_train_timesteps, last_timestep=noisiest + 1)[::-1].copy()
    # n + 1 descending points of [0, noisiest]; ascending, without the noisiest
    points = spaced_timesteps(spacing, n + 1, num_train_timesteps, steps_offset, last_timestep=noisiest + 1)
    return points[::-1][:-1].copy()


class DPMSolverMultistepInverseScheduler(DPMSolverMultistepScheduler):
    noise_kind = "with sde-* algorithm types"  # for the `edge-sched schedulers` table

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
        algorithm_type: Literal["dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++"] = "dpmsolver++",
        solver_type: Literal["midpoint", "heun"] = "midpoint",
        lower_order_final: bool = True,
        euler_at_final: bool = False,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        use_flow_sigmas: bool = False,
        flow_shift: float = 1.0,
        lambda_min_clipped: float = -float("inf"),
        variance_type: str | None = None,  # diffusers reads only "learned" / "learned_range"; others (a DDPM config's) mean None
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "linspace",
        steps_offset: int = 0,
    ):
        with config_defaults(self, _DEFAULTS):
            self._init_tables()
        # before set_timesteps: every training timestep, ascending
        self.timesteps = np.linspace(0, num_train_timesteps - 1, num_train_timesteps, dtype=np.float32)

    def set_timesteps(self, num_inference_steps: int | None = None, device=None):
        """Plan ``num_inference_steps`` ascending steps and every step's solver coefficients."""
        cfg = self.config
        n = self._check_num_inference_steps(num_inference_steps)
        n_train = cfg.num_train_timesteps
        clipped = int(np.searchsorted(self.lambda_t[::-1], cfg.lambda_min_clipped))
        noisiest = n_train - 1 - clipped
        self.noisiest_timestep = noisiest
        steps = inverse_timesteps(cfg.timestep_spacing, n, n_train, noisiest, cfg.steps_offset)
        ac = self.alphas_cumprod
        train_sigmas = ((1 - ac) / ac) ** 0.5  # float32, ascending
        kind = configured_sigma_schedule(cfg)
        if kind is not None:
            # the schedule's "min" is the ascending table's last (largest) sigma: the ramp ascends
            sigmas = sigma_schedule(kind, train_sigmas, n, cfg)
            steps = sigma_to_t(sigmas, np.log(train_sigmas))
            if kind == "karras":
                steps = steps.round()
            last = sigmas[-1]
        elif cfg.use_flow_sigmas:
            sigmas, steps = dpm_flow_sigmas(cfg, n)
            last = sigmas[-1]
        else:
            sigmas = np.interp(steps, np.arange(len(train_sigmas)), train_sigmas)
            last = train_sigmas[noisiest]
        self.sigmas = np.concatenate([sigmas, [last]]).astype(_F32)
        _, first = np.unique(steps, return_index=True)
        self.timesteps = np.asarray(steps)[np.sort(first)].astype(np.int64)
        self.num_inference_steps = len(self.timesteps)
        self.model_outputs = [None] * cfg.solver_order
        self.lower_order_nums = 0
        self._step_index = None
        self._begin_index = None
        self._alpha, self._sigma = alpha_sigma_of(self.sigmas, cfg.use_flow_sigmas)
        self._lambda = log_snr(self._alpha, self._sigma)
        self._coefs, self._noise_coef, self._ratios = dpm_coefficients(
            cfg.algorithm_type, cfg.solver_type, self._alpha, self._sigma, self._lambda
        )
        if cfg.algorithm_type.startswith("sde-"):
            self._coefs[3] = None  # diffusers' inverse calls its third-order rule without the noise

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None,
             variance_noise: np.ndarray | None = None, return_dict: bool = True):
        """Advance ``sample`` from this step's sigma to the next (noisier) one."""
        with config_defaults(self, _DEFAULTS):
            return super().step(model_output, timestep, sample, generator=generator,
                                variance_noise=variance_noise, return_dict=return_dict)

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """x_t = alpha_t * x0 + sigma_t * noise at the sigma of each scheduled timestep
        (looked up in the schedule; this scheduler has no begin index)."""
        begin, self._begin_index = self._begin_index, None
        try:
            return super().add_noise(original_samples, noise, timesteps)
        finally:
            self._begin_index = begin


__all__ = ["DPMSolverMultistepInverseScheduler"]
