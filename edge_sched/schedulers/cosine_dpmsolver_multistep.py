"""SDE DPM-Solver++ (orders 1-2) with Brownian-tree noise, for models trained with a cosine
(arctan) noise conditioning: Stable Audio Open (Evans et al. 2024).

diffusers: CosineDPMSolverMultistepScheduler. The EDM formulation of
edm_dpmsolver_multistep.py with ``algorithm_type="sde-dpmsolver++"`` fixed, other defaults
(exponential sigmas in [0.3, 500], sigma_data = 1, v-prediction), and the network timestep
c_noise = atan(sigma) * 2 / pi instead of log(sigma) / 4.

Noise: diffusers draws each step's z from torchsde's Brownian motion over [sigma_min, sigma_max]
(the config's), seeded by ``generator.initial_seed()`` (one tree per generator given a list):
z = (W(sigma_{i+1}) - W(sigma_i)) / sqrt|sigma_{i+1} - sigma_i|, the final query at sigma 0 clamped
into the span. ``noise_sampler`` (diffusers' attribute, a callable ``(sigma, sigma_next) -> noise``)
supplies it; left None, the first step builds edge_sched.brownian's BrownianTreeNoiseSampler (the
same numbers as torchsde's) from the generator's seed, on the generator's device (torchsde's
device is that of diffusers' sample: set ``noise_device`` to say it).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from ..brownian import BrownianTreeNoiseSampler
from ..random import as_generator
from .dpmsolver_multistep import DPMSolverMultistepScheduler
from .edm_dpmsolver_multistep import EDMDPMSolverMultistepScheduler
from .multistep_plan import config_defaults

_F32 = np.float32
# the options of the EDM solver this scheduler fixes
_FIXED = {"algorithm_type": "sde-dpmsolver++", "thresholding": False}


class CosineDPMSolverMultistepScheduler(EDMDPMSolverMultistepScheduler):
    noise_kind = "Brownian (torchsde's, generator seed)"  # for the `edge-sched schedulers` table
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
            solver_order=solver_order, algorithm_type=_FIXED["algorithm_type"], solver_type=self.config.solver_type,
            lower_order_final=lower_order_final, euler_at_final=euler_at_final, final_sigmas_type=final_sigmas_type,
        )
        self.noise_sampler = None
        self.noise_device: str | None = None  # None: the generator's device ("cpu" without one)

    def precondition_noise(self, sigma) -> np.ndarray:
        """c_noise = atan(sigma) * 2 / pi (float32, at least 1-D)."""
        sigma = np.atleast_1d(np.asarray(sigma, dtype=_F32))
        return (np.arctan(sigma.astype(np.float64)).astype(_F32) / _F32(math.pi) * _F32(2)).astype(_F32)

    def set_timesteps(self, num_inference_steps: int | None = None, device=None) -> None:
        """Plan ``num_inference_steps`` steps; the noise sampler is rebuilt at the next first step."""
        with config_defaults(self, _FIXED):
            super().set_timesteps(num_inference_steps)
        self.noise_sampler = None

    def _default_noise_sampler(self, model_output: np.ndarray, generator) -> BrownianTreeNoiseSampler:
        generators = generator if isinstance(generator, (list, tuple)) else [generator]
        if generator is None:  # diffusers' BatchedBrownianTree then draws a random seed
            seed = int(np.random.default_rng().integers(0, 2**63 - 1))
        else:
            seeds = [as_generator(g).initial_seed() for g in generators]
            seed = seeds if isinstance(generator, (list, tuple)) else seeds[0]
        device = self.noise_device or getattr(next(iter(generators), None), "device", None) or "cpu"
        dtype = np.float64 if model_output.dtype == np.float64 else _F32
        return BrownianTreeNoiseSampler(model_output.shape, self.config.sigma_min, self.config.sigma_max, seed,
                                        dtype=dtype, device=str(device).split(":")[0])

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
