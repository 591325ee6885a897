"""DPM-Solver-2 of k-diffusion (``sample_dpm_2``; Karras et al. 2022, Algorithm 2 with a
midpoint in log-sigma), no churn.

diffusers: KDPM2DiscreteScheduler. Step i from s_i to s_{i+1} takes two model calls: at s_i, and
at the log-midpoint m_i = sqrt(s_i * s_{i+1}) (evaluated through exp(lerp(log, log, 1/2))):
    d   = (x - x0(x, s_i)) / s_i,            x' = x + d (m_i - s_i)
    d'  = (x' - x0(x', m_i)) / m_i,          x_{i+1} = x + d' (s_{i+1} - s_i)
The schedule interleaves the calls: timesteps [t_0, tm_1, t_1, tm_2, t_2, ..., tm_{n-1}, t_{n-1}]
(tm = the training timestep of the midpoint sigma). As in diffusers the last entry is a lone
predictor step to m_n = 0, i.e. it returns the denoised x0.
"""

from __future__ import annotations

import numpy as np

from .base import KARRAS_COMPATIBLES
from .betas import sigmas_of
from .errors import check_choice
from .prediction import PREDICTION_TYPES, to_d, x0_at_sigma
from .sigma_discrete import _SigmaDiscreteScheduler
from .sigmas import configured_sigma_schedule, sigma_to_t
from .errors import NotSupportedError


def interleave_pairs(values: np.ndarray) -> np.ndarray:
    """[v0, v1, v1, v2, v2, ..., v_last, v_last, v_last]: diffusers' KDPM2 per-call layout."""
    return np.concatenate([values[:1], np.repeat(values[1:], 2), values[-1:]])


def log_midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """exp of the halfway point between log a and log b, in float32 with torch's lerp formula
    (end - (end - start) * 0.5 at weight 0.5), so zeros and infinities come out as in torch."""
    with np.errstate(divide="ignore", invalid="ignore"):
        start, end = np.log(a.astype(np.float32)), np.log(b.astype(np.float32))
        return np.exp(end - (end - start) * np.float32(0.5)).astype(np.float32)


class _KDPM2Base(_SigmaDiscreteScheduler):
    """What KDPM2 and KDPM2 ancestral share: config checks, spacing + sigma ramps, the
    timestep of each interpolated sigma, and the predictor/corrector state."""

    _compatibles = KARRAS_COMPATIBLES
    order = 2
    sample: np.ndarray | None = None

    def _init_kdpm2(self, num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, prediction_type):
        check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        configured_sigma_schedule(self.config)
        self._init_training_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        # like diffusers, a fresh scheduler is already set to the full training schedule
        self.set_timesteps(num_train_timesteps, None, num_train_timesteps)

    def _plan(self, num_inference_steps, num_train_timesteps):
        """(timesteps, float32 sigmas with the final 0) for the configured spacing and ramp."""
        num_inference_steps = self._check_num_inference_steps(num_inference_steps)
        steps = self._spaced_timesteps(num_inference_steps, num_train_timesteps)
        steps, sigmas = self._plan_sigmas(steps, num_inference_steps)
        if configured_sigma_schedule(self.config) == "karras":
            steps = np.round(steps)  # diffusers rounds Karras timesteps here (not for the other ramps)
        self.num_inference_steps = num_inference_steps
        return np.asarray(steps), sigmas

    def _timesteps_of(self, sigmas: np.ndarray, dtype) -> np.ndarray:
        """Fractional training timestep of each float32 sigma (float32 math), cast to ``dtype``."""
        log_train = np.log(sigmas_of(self.alphas_cumprod))
        return sigma_to_t(sigmas.astype(np.float32), log_train).astype(dtype)

    def _set_interpolated(self, sigmas, sigmas_interpol) -> None:
        self._set_sigmas(interleave_pairs(sigmas))
        self.sigmas_interpol = interleave_pairs(sigmas_interpol)
        with np.errstate(invalid="ignore"):
            self._interpol_norm = np.sqrt(self.sigmas_interpol * self.sigmas_interpol + np.float32(1))
        self.sample = None

    @property
    def state_in_first_order(self) -> bool:
        """True when the next ``step`` is a predictor (first-model-call) step."""
        return self.sample is None

    def _x0(self, model_output, sample, sigma_input):
        if self.config.prediction_type == "sample":
            raise NotSupportedError(f"{type(self).__name__}: prediction_type 'sample' is not implemented.")
        return x0_at_sigma(self.config.prediction_type, model_output, sample, sigma_input)


class KDPM2DiscreteScheduler(_KDPM2Base):
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        prediction_type: str = "epsilon",
        timestep_spacing: str = "linspace",
        steps_offset: int = 0,
    ):
        self._init_kdpm2(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, prediction_type)

    def set_timesteps(self, num_inference_steps: int, device=None, num_train_timesteps: int | None = None):
        """Plan ``num_inference_steps`` two-call steps; ``num_train_timesteps`` overrides the
        config's range for the spacing."""
        steps, sigmas = self._plan(num_inference_steps, num_train_timesteps)
        # midpoint of each sigma and the one before it (m_0 is NaN in torch too, and unused)
        sigmas_interpol = log_midpoint(sigmas, np.roll(sigmas, 1))
        steps_interpol = self._timesteps_of(sigmas_interpol, steps.dtype)
        pairs = np.stack([steps_interpol[1:-1], steps[1:]], axis=-1).reshape(-1)
        self.timesteps = np.concatenate([steps[:1], pairs])
        self._set_interpolated(sigmas, sigmas_interpol)

    def scale_model_input(self, sample: np.ndarray, timestep) -> np.ndarray:
        """Divide by sqrt(sigma^2 + 1), sigma being the midpoint for the second call."""
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        norm = self._input_norm if self.state_in_first_order else self._interpol_norm
        return sample / norm[self._step_index]

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, return_dict: bool = True):
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        if self.state_in_first_order:
            sigma, sigma_mid = self.sigmas[i], self.sigmas_interpol[i + 1]
            x0 = self._x0(model_output, sample, sigma)
            derivative = to_d(sample, x0, sigma)
            dt = sigma_mid - sigma
            self.sample = sample
        else:
            sigma, sigma_mid, sigma_next = self.sigmas[i - 1], self.sigmas_interpol[i], self.sigmas[i]
            x0 = self._x0(model_output, sample, sigma_mid)
            derivative = to_d(sample, x0, sigma_mid)
            dt = sigma_next - sigma
            sample, self.sample = self.sample, None
        prev_sample = sample + derivative * dt
        self._step_index += 1
        return self._output(prev_sample, x0, return_dict)


__all__ = ["KDPM2DiscreteScheduler", "interleave_pairs", "log_midpoint"]
