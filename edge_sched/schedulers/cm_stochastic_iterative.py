"""Multistep consistency sampling (Song et al. 2023, "Consistency Models", Algorithm 1).

diffusers: CMStochasticIterativeScheduler. Karras sigmas (rho ramp) over the model's
``num_train_timesteps`` discretisation; a schedule of n steps picks every
(T // n)-th of them (or custom integer ``timesteps``) and appends sigma_min. Model time is
t = 250 log(sigma) (float64). The model sees x / sqrt(sigma^2 + sigma_data^2); each step:
    x0     = c_out(sigma) F + c_skip(sigma) x,   (clamped to [-1, 1] if clip_denoised)
             c_skip = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2),
             c_out  = (sigma - sigma_min) sigma_data / sqrt(sigma^2 + sigma_data^2)
    x_next = x0 + s_noise z sqrt(sigma_next^2 - sigma_min^2)    (sigma_next clamped to [sigma_min, sigma_max])
z ~ N(0, I) is drawn at every step when the schedule has more than one step (else z = 0).
Coefficients are computed in the sigma table's dtype (float32 once set_timesteps ran, float64
before, as diffusers) and applied in the sample's float32.
"""

from __future__ import annotations

import numpy as np

from ..random import randn_tensor
from .base import SchedulerMixin, expand_to
from .sigmas import karras_sigmas_at


class CMStochasticIterativeScheduler(SchedulerMixin):
    noise_kind = "with 2+ steps"  # for the `edge-sched schedulers` table
    order = 1

    def __init__(
        self,
        num_train_timesteps: int = 40,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        sigma_data: float = 0.5,
        s_noise: float = 1.0,
        rho: float = 7.0,
        clip_denoised: bool = True,
    ):
        self.init_noise_sigma = sigma_max
        self.sigmas = self._karras(np.linspace(0, 1, num_train_timesteps))
        self.timesteps = self.sigma_to_t(self.sigmas)
        self.num_inference_steps = None
        self.custom_timesteps = False
        self._step_index = None
        self._begin_index = None

    def _karras(self, ramp: np.ndarray) -> np.ndarray:
        cfg = self.config
        return karras_sigmas_at(ramp, cfg.sigma_min, cfg.sigma_max, cfg.rho)

    @staticmethod
    def sigma_to_t(sigmas) -> np.ndarray:
        """The consistency model's time input: 250 log(sigma) (float64)."""
        sigmas = np.asarray(sigmas, dtype=np.float64)
        return 1000 * 0.25 * np.log(sigmas + 1e-44)

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, timesteps: list[int] | None = None):
        """Every (T // n)-th Karras sigma of the training discretisation, or custom descending
        integer ``timesteps`` (indices into it, below ``num_train_timesteps``)."""
        n_train = self.config.num_train_timesteps
        self._check_custom_schedule(num_inference_steps, timesteps)
        if timesteps is not None:
            steps = self._check_descending("timesteps", timesteps)
            if steps[0] >= n_train:
                raise ValueError(f"custom timesteps must start below num_train_timesteps ({n_train}), got {steps[0]:g}.")
            steps = np.asarray(timesteps, dtype=np.int64)
            self.custom_timesteps = True
        else:
            self._check_num_inference_steps(num_inference_steps)
            self.num_inference_steps = num_inference_steps
            steps = (np.arange(0, num_inference_steps) * (n_train // num_inference_steps)).round()[::-1].astype(np.int64)
            self.custom_timesteps = False
        sigmas = self._karras(steps[::-1] / (n_train - 1))
        self.timesteps = self.sigma_to_t(sigmas)
        self.sigmas = np.concatenate([sigmas, [self.config.sigma_min]]).astype(np.float32)
        self._step_index = None
        self._begin_index = None

    def get_scalings(self, sigma):
        """(c_skip, c_out) of the consistency parameterisation without the boundary shift."""
        sd = self.config.sigma_data
        return sd**2 / (sigma**2 + sd**2), sigma * sd / (sigma**2 + sd**2) ** 0.5

    def get_scalings_for_boundary_condition(self, sigma):
        """(c_skip, c_out) with c_skip(sigma_min) = 1, c_out(sigma_min) = 0."""
        sd, smin = self.config.sigma_data, self.config.sigma_min
        return sd**2 / ((sigma - smin) ** 2 + sd**2), (sigma - smin) * sd / (sigma**2 + sd**2) ** 0.5

    def scale_model_input(self, sample: np.ndarray, timestep) -> np.ndarray:
        """x / sqrt(sigma^2 + sigma_data^2)."""
        if self._step_index is None:
            self._init_step_index(timestep)
        sigma = self.sigmas[self._step_index]
        denom = (sigma**2 + sigma.dtype.type(self.config.sigma_data**2)) ** 0.5
        return sample / denom.astype(sample.dtype)

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, generator=None, return_dict: bool = True):
        """One consistency step: denoise at this sigma, re-noise to the next one."""
        if isinstance(timestep, (int, np.integer)) or np.asarray(timestep).dtype.kind in "iu":
            raise ValueError(
                f"timestep {timestep!r} is an integer: pass one of `scheduler.timesteps` (float model times), "
                "not an index from enumerate(timesteps)."
            )
        cfg = self.config
        if self._step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        sigma = self.sigmas[i]
        sigma_next = self.sigmas[i + 1] if i + 1 < cfg.num_train_timesteps else self.sigmas[-1]
        f = sigma.dtype.type
        c_skip, c_out = self.get_scalings_for_boundary_condition(sigma)
        dtype = model_output.dtype.type
        denoised = dtype(c_out) * model_output + dtype(c_skip) * sample
        if cfg.clip_denoised:
            denoised = np.clip(denoised, -1, 1)
        if len(self.timesteps) > 1:
            noise = randn_tensor(model_output.shape, generator=generator, dtype=model_output.dtype)
        else:
            noise = np.zeros_like(model_output)
        z = noise * dtype(cfg.s_noise)
        sigma_hat = np.clip(sigma_next, f(cfg.sigma_min), f(cfg.sigma_max))
        with np.errstate(invalid="ignore"):
            std = (sigma_hat**2 - f(cfg.sigma_min**2)) ** f(0.5)
        prev_sample = denoised + z * dtype(std)
        self._step_index += 1
        return self._output(prev_sample, None, return_dict)

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """x = x0 + sigma noise, sigma of each item's scheduled timestep."""
        sigma = self.sigmas[self._noising_indices(timesteps)].astype(original_samples.dtype)
        return original_samples + noise * expand_to(sigma, original_samples.ndim)
