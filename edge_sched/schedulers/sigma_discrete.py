"""What the k-diffusion style discrete-sigma schedulers share (Euler, Euler ancestral, Heun, LMS).

These samplers (Karras et al. 2022) work on x = x0 + sigma * eps with the training noise
levels sigma_t = sqrt((1 - abar_t) / abar_t), so a pipeline starts from noise of std
``init_noise_sigma`` and the model sees the unit-variance input x / sqrt(sigma^2 + 1).
This module holds that plumbing once: the training tables (with the zero-terminal-SNR
variant), the sigma plan of ``set_timesteps``, input scaling and ``add_noise``.
Each scheduler module adds only its update rule.
"""

from __future__ import annotations

import numpy as np

from .base import SchedulerMixin, expand_to
from .betas import alphas_cumprod_of, make_betas, rescale_zero_terminal_snr, sigmas_of
from .errors import check_choice
from .sigmas import discrete_sigma_plan
from .spacing import spaced_timesteps

# the beta schedules diffusers' Euler / Euler ancestral / LMS constructors accept
KDIFFUSION_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


class _SigmaDiscreteScheduler(SchedulerMixin):
    """Base of the discrete-sigma schedulers (not registered: the name starts with ``_``).

    A subclass calls :meth:`_init_training_schedule` in ``__init__`` and
    :meth:`_set_sigmas` whenever it sets a schedule; ``self.sigmas`` is the float32 array
    of noise levels per step plus the final one.
    """

    sigmas: np.ndarray

    def _init_training_schedule(
        self,
        num_train_timesteps: int,
        beta_start: float,
        beta_end: float,
        beta_schedule: str,
        trained_betas=None,
        rescale_betas_zero_snr: bool = False,
        beta_schedules=KDIFFUSION_BETA_SCHEDULES,
    ) -> None:
        """betas, alphas and alphas_cumprod (float32, as torch builds them)."""
        if trained_betas is None:
            check_choice("beta_schedule", beta_schedule, beta_schedules)
        betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        if rescale_betas_zero_snr:
            betas = rescale_zero_terminal_snr(betas)
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = alphas_cumprod_of(betas)
        if rescale_betas_zero_snr:
            # sigma would be infinite at the zero-SNR step; diffusers uses a tiny alpha instead
            self.alphas_cumprod[-1] = 2**-24

    def _training_sigmas(self) -> np.ndarray:
        """Every training sigma, descending, then 0: the schedule of a fresh scheduler."""
        return np.concatenate([sigmas_of(self.alphas_cumprod)[::-1], [0.0]]).astype(np.float32)

    def _spaced_timesteps(self, num_inference_steps: int, num_train_timesteps: int | None = None) -> np.ndarray:
        """float32 timesteps of the configured spacing; fractional for "linspace"."""
        cfg = self.config
        return spaced_timesteps(
            cfg.timestep_spacing, num_inference_steps, num_train_timesteps or cfg.num_train_timesteps,
            cfg.steps_offset, rounded=False,
        ).astype(np.float32)

    def _plan_sigmas(self, timesteps: np.ndarray, num_inference_steps: int, base_sigmas=None, final_sigma=0.0):
        """(timesteps, float32 sigmas with ``final_sigma`` appended) for descending ``timesteps``:
        training sigmas interpolated there (or ``base_sigmas``), then the ``use_*_sigmas`` ramp."""
        cfg = self.config
        steps, sigmas = discrete_sigma_plan(cfg, self.alphas_cumprod, timesteps, num_inference_steps, base_sigmas)
        return steps, np.concatenate([sigmas, [final_sigma]]).astype(np.float32)

    def _set_sigmas(self, sigmas: np.ndarray) -> None:
        self.sigmas = np.asarray(sigmas, dtype=np.float32)
        # the model-input divisor sqrt(sigma^2 + 1), in float32 as torch computes it
        self._input_norm = np.sqrt(self.sigmas * self.sigmas + np.float32(1))
        self._step_index = None
        self._begin_index = None

    @property
    def init_noise_sigma(self) -> float:
        """Std of the starting noise: sigma_max, or sqrt(sigma_max^2 + 1) for "leading" spacing."""
        max_sigma = np.float32(self.sigmas.max())
        if self.config.timestep_spacing in ("linspace", "trailing"):
            return float(max_sigma)
        return float(np.sqrt(max_sigma * max_sigma + np.float32(1)))

    def scale_model_input(self, sample: np.ndarray, timestep) -> np.ndarray:
        """Divide by sqrt(sigma^2 + 1) so the model sees unit-variance input."""
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        return sample / self._input_norm[self._step_index]

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """x_t = x0 + sigma_t * noise at the given (scheduled) timesteps."""
        idx = self._noising_indices(timesteps)
        sigma = expand_to(self.sigmas[idx].astype(original_samples.dtype), original_samples.ndim)
        return original_samples + noise * sigma

    @staticmethod
    def _reject_integer_timestep(timestep) -> None:
        if not isinstance(timestep, bool) and np.asarray(timestep).dtype.kind in "iu":
            raise ValueError(
                "Pass one of `scheduler.timesteps` as `timestep`, not an integer index (e.g. from enumerate)."
            )


__all__ = ["KDIFFUSION_BETA_SCHEDULES"]
