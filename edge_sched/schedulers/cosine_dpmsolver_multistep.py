"""SDE DPM-Solver++ (orders 1-2) with Brownian-tree noise, for models trained with a cosine
(arctan) noise conditioning: Stable Audio Open (Evans et al. 2024).

diffusers: CosineDPMSolverMultistepScheduler. The EDM formulation of
edm_dpmsolver_multistep.py with ``algorithm_type="sde-dpmsolver++"`` fixed, other defaults
(exponential sigmas in [0.3, 500], sigma_data = 1, v-prediction), and the network timestep
c_noise = atan(sigma) * 2 / pi instead of log(sigma) / 4.

Noise: diffusers draws each step's z from a Brownian tree (torchsde) over [sigma_min,
sigma_max], seeded by ``generator.initial_seed()``: z = W(sigma_i, sigma_{i+1}) / sqrt|sigma_{i+1} - sigma_i|.
Here ``noise_sampler`` (a callable ``(sigma, sigma_next) -> noise``, diffusers' attribute)
supplies it; left None, the first step builds the Brownian-tree sampler of
``edge_sched.brownian`` (BrownianTreeNoiseSampler, diffusers' interface) from the generator's seed.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from .dpmsolver_multistep import DPMSolverMultistepScheduler
from .edm_dpmsolver_multistep import EDMDPMSolverMultistepScheduler
from .multistep_plan import config_defaults

_F32 = np.float32
# the options of the EDM solver this scheduler fixes
_FIXED = {"algorithm_type": "sde-dpmsolver++", "thresholding": False}


class CosineDPMSolverMultistepScheduler(EDMDPMSolverMultistepScheduler):
    noise_kind = "stochastic (Brownian tree)"  # for the `edge-sched schedulers` table
    _compatibles: list[str] = []
    _legacy_values = {"solver_type": {"logrho": "midpoint", "bh1": "midpoint", "bh2": "midpoint"}}

    def __init__(
        self,
        sigma_min: float = 0.3,
        sigma_max: float = 500,
        sigma_data: float = 1.0,
        sigma_schedule: Literal["exponential", "karras"] = "exponential",
        num_train_timesteps: int = 1000,
        solver_order: int = 2,
        prediction_type: Literal["epsilon", "sample", "v_prediction"] = "v_prediction",
        rho: float = 7.0,
        solver_type: Literal["midpoint", "heun"] = "midpoint",
        lower_order_final: bool = True,
        euler_at_final: bool = False,
        final_sigmas_type: Literal["zero", "sigma_min"] = "zero",
    ) -> None:
        super().__init__(
            sigma_min=sigma_min, sigma_max=sigma_max, sigma_data=sigma_data, sigma_schedule=sigma_schedule,
            num_train_timesteps=num_train_timesteps, prediction_type=prediction_type, rho=rho,
            solver_order=solver_order, algorithm_type=_FIXED["algorithm_type"], solver_type=solver_type,
            lower_order_final=lower_order_final, euler_at_final=euler_at_final, final_sigmas_type=final_sigmas_type,
        )
        self.noise_sampler = None

    def precondition_noise(self, sigma) -> np.ndarray:
        """c_noise = atan(sigma) * 2 / pi (float32, at least 1-D)."""
        sigma = np.atleast_1d(np.asarray(sigma, dtype=_F32))
        return (np.arctan(sigma.astype(np.float64)).astype(_F32) / _F32(math.pi) * _F32(2)).astype(_F32)

    def set_timesteps(self, num_inference_steps: int | None = None, device=None) -> None:
        """Plan ``num_inference_steps`` steps; the noise sampler is rebuilt at the next first step."""
        with config_defaults(self, _FIXED):
            super().set_timesteps(num_inference_steps)
        self.noise_sampler = None

    def _default_noise_sampler(self, model_output: np.ndarray, generator):
        try:
            from ..brownian import BrownianTreeNoiseSampler
        except ImportError:
            raise NotImplementedError(
                "CosineDPMSolverMultistepScheduler needs edge_sched.brownian (the Brownian-tree noise source) "
                "to draw its noise; or set `scheduler.noise_sampler` to a callable (sigma, sigma_next) -> noise."
            ) from None
        if generator is None:  # torchsde seeds itself randomly then
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
        elif isinstance(generator, list):
            seed = [g.initial_seed() for g in generator]
        else:
            seed = generator.initial_seed()
        lo, hi = sorted((self.config.sigma_min, self.config.sigma_max))
        sampler = BrownianTreeNoiseSampler(model_output.shape, sigma_min=lo, sigma_max=hi, seed=seed)

        def noise(sigma, sigma_next):
            # torchsde clamps queries outside [sigma_min, sigma_max] (the final sigma 0) into the tree's
            # span, while diffusers still divides by sqrt(|sigma_next - sigma|) of the unclamped levels
            a, b = (min(max(float(v), lo), hi) for v in (sigma, sigma_next))
            if (a, b) == (float(sigma), float(sigma_next)):
                return sampler(a, b)
            if a == b:
                return np.zeros(model_output.shape, dtype=_F32)
            return (sampler(a, b) * (math.sqrt(abs(b - a)) / math.sqrt(abs(float(sigma_next) - float(sigma))))
                    ).astype(_F32)

        return noise

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None, return_dict: bool = True):
        """One SDE-DPM-Solver++ step with this step's Brownian increment as the noise."""
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        if self.noise_sampler is None:
            self.noise_sampler = self._default_noise_sampler(model_output, generator)
        i = self._step_index
        noise = np.asarray(self.noise_sampler(self.sigmas[i], self.sigmas[i + 1]), dtype=_F32)
        with config_defaults(self, _FIXED):
            return DPMSolverMultistepScheduler.step(self, model_output, timestep, sample,
                                                    variance_noise=noise, return_dict=return_dict)


__all__ = ["CosineDPMSolverMultistepScheduler"]
