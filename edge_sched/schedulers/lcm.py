"""Latent Consistency Model sampler (Luo et al. 2023, "Latent Consistency Models"; the
boundary conditions of Song et al. 2023, "Consistency Models").

diffusers: LCMScheduler. Timesteps are a subset of the distillation schedule
``t_j = j * (T // original_inference_steps) - 1``. One model call per step:

    x0        = f(model_output, x_t, abar_t)                 (epsilon / sample / v)
    s         = timestep_scaling * t,  sigma_data = 0.5
    c_skip    = sigma_data^2 / (s^2 + sigma_data^2),  c_out = s / sqrt(s^2 + sigma_data^2)
    denoised  = c_out * x0 + c_skip * x_t                     (the consistency function)
    x_prev    = sqrt(abar_prev) * denoised + sqrt(1 - abar_prev) * z,   z ~ N(0, I)

and on the last step x_prev = denoised (no noise is drawn).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..random import randn_tensor
from .base import SchedulerMixin, SchedulerOutput
from .betas import alphas_cumprod_of, make_betas, rescale_zero_terminal_snr
from .errors import check_choice
from .noising import add_noise_at_timesteps, velocity_at_timesteps
from .prediction import PREDICTION_TYPES, clip_predicted_x0, predicted_x0_and_eps
from .errors import check_strength

logger = logging.getLogger(__name__)

LCM_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
SIGMA_DATA = 0.5


@dataclass
class LCMSchedulerOutput(SchedulerOutput):
    """``prev_sample`` and ``denoised`` (the consistency function's x0 estimate);
    ``out[1]`` and ``return_dict=False`` give ``denoised`` as diffusers does."""

    denoised: np.ndarray | None = None


class LCMScheduler(SchedulerMixin):
    order = 1

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        beta_schedule: str = "scaled_linear",
        trained_betas: np.ndarray | list[float] | None = None,
        original_inference_steps: int = 50,
        clip_sample: bool = False,
        clip_sample_range: float = 1.0,
        set_alpha_to_one: bool = True,
        steps_offset: int = 0,
        prediction_type: str = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
        timestep_spacing: str = "leading",
        timestep_scaling: float = 10.0,
        rescale_betas_zero_snr: bool = False,
    ):
        check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        if trained_betas is None:
            check_choice("beta_schedule", beta_schedule, LCM_BETA_SCHEDULES)
        betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        if rescale_betas_zero_snr:
            betas = rescale_zero_terminal_snr(betas)
        self.betas = betas
        self.alphas = (1.0 - betas).astype(np.float32)
        self.alphas_cumprod = alphas_cumprod_of(betas)
        self.final_alpha_cumprod = np.float32(1.0) if set_alpha_to_one else self.alphas_cumprod[0]
        # float32 lookup tables, rounded as torch rounds its 0-d float32 tensors
        self._sqrt_abar = np.sqrt(self.alphas_cumprod)
        self._sqrt_one_minus_abar = np.sqrt(np.float32(1) - self.alphas_cumprod)
        self.sigma_data = SIGMA_DATA
        self.init_noise_sigma = 1.0
        self.num_inference_steps = None
        self.timesteps = np.arange(num_train_timesteps - 1, -1, -1, dtype=np.int64)
        self.custom_timesteps = False
        self._step_index = None
        self._begin_index = None

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        """LCM feeds the sample to the model unscaled."""
        return sample

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device=None,
        original_inference_steps: int | None = None,
        timesteps: list[int] | None = None,
        strength: int = 1.0,
    ):
        """Pick ``num_inference_steps`` evenly spaced (by index) timesteps from the
        ``original_inference_steps * strength`` distillation timesteps, or take custom ``timesteps``."""
        cfg = self.config
        self._check_custom_schedule(num_inference_steps, timesteps)
        original_steps = cfg.original_inference_steps if original_inference_steps is None else original_inference_steps
        if isinstance(original_steps, bool) or not isinstance(original_steps, (int, np.integer)) or original_steps < 1:
            raise ValueError(f"original_inference_steps must be a positive int, got {original_steps!r}.")
        if original_steps > cfg.num_train_timesteps:
            raise ValueError(
                f"original_inference_steps ({original_steps}) cannot be larger than num_train_timesteps "
                f"({cfg.num_train_timesteps}): the model was trained on {cfg.num_train_timesteps} timesteps at most."
            )
        k = cfg.num_train_timesteps // original_steps
        origin = np.arange(1, int(original_steps * strength) + 1, dtype=np.int64) * k - 1

        if timesteps is not None:
            steps = self._check_descending("timesteps", timesteps)
            if steps[0] >= cfg.num_train_timesteps:
                raise ValueError(
                    f"custom timesteps must start below num_train_timesteps ({cfg.num_train_timesteps}), "
                    f"got {steps[0]:g}."
                )
            check_strength(strength)
            self._warn_custom(list(timesteps), origin, original_steps, strength)
            steps = np.array(timesteps, dtype=np.int64)
            self.num_inference_steps = len(steps)
            self.custom_timesteps = True
            # strength < 1 (image-to-image) keeps the last int(n * strength) steps
            kept = min(int(self.num_inference_steps * strength), self.num_inference_steps)
            steps = steps[max(self.num_inference_steps - kept, 0) * self.order :]
            if steps.size == 0:
                raise ValueError(f"strength={strength} keeps none of the {len(timesteps)} custom timesteps; "
                                 f"raise strength to at least {1 / len(timesteps):.3g}.")
        else:
            num_inference_steps = self._check_num_inference_steps(num_inference_steps)
            if len(origin) // num_inference_steps < 1:
                raise ValueError(
                    f"original_inference_steps x strength ({original_steps} x {strength}) is smaller than "
                    f"num_inference_steps ({num_inference_steps}): reduce num_inference_steps to at most "
                    f"{int(original_steps * strength)} or raise strength to at least "
                    f"{float(num_inference_steps / original_steps)}."
                )
            if num_inference_steps > original_steps:
                raise ValueError(
                    f"num_inference_steps ({num_inference_steps}) cannot be larger than original_inference_steps "
                    f"({original_steps}): the schedule is a subset of the original one."
                )
            check_strength(strength)  # after diffusers' own checks, before strength > 1 indexes past the tables
            self.num_inference_steps = num_inference_steps
            origin = origin[::-1]
            picks = np.floor(np.linspace(0, len(origin), num=num_inference_steps, endpoint=False)).astype(np.int64)
            steps = origin[picks]
        self.timesteps = np.ascontiguousarray(steps, dtype=np.int64)
        self._step_index = None
        self._begin_index = None

    def _warn_custom(self, timesteps: list, origin: np.ndarray, original_steps: int, strength) -> None:
        """diffusers' warnings for custom schedules that leave the distillation schedule."""
        last = self.config.num_train_timesteps - 1
        if strength == 1.0 and timesteps[0] != last:
            logger.warning(
                "The first custom timestep is %s, not num_train_timesteps - 1 (%s); results may be unexpected.",
                timesteps[0], last,
            )
        known = set(origin.tolist())
        off_schedule = [t for t in timesteps[1:] if t not in known]
        if off_schedule:
            logger.warning(
                "The custom timesteps %s are not on the original training/distillation schedule; "
                "results may be unexpected.", off_schedule,
            )
        if len(timesteps) > original_steps:
            logger.warning(
                "The custom schedule has %d timesteps, more than original_inference_steps (%d); "
                "results may be unexpected.", len(timesteps), original_steps,
            )

    def get_scalings_for_boundary_condition_discrete(self, timestep):
        """(c_skip, c_out) of the consistency parameterisation, in float32 like torch."""
        s = np.float32(timestep) * np.float32(self.config.timestep_scaling)
        d = s * s + np.float32(self.sigma_data**2)
        return np.float32(self.sigma_data**2) * (np.float32(1) / d), s / np.sqrt(d)

    def step(
        self,
        model_output: np.ndarray,
        timestep,
        sample: np.ndarray,
        generator=None,
        return_dict: bool = True,
    ):
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        cfg = self.config
        t = int(np.asarray(timestep).item())
        nxt = self._step_index + 1
        t_prev = int(self.timesteps[nxt]) if nxt < len(self.timesteps) else t
        sqrt_a_prev, sqrt_b_prev = (
            (self._sqrt_abar[t_prev], self._sqrt_one_minus_abar[t_prev]) if t_prev >= 0
            else (np.sqrt(self.final_alpha_cumprod), np.sqrt(np.float32(1) - self.final_alpha_cumprod))
        )
        c_skip, c_out = self.get_scalings_for_boundary_condition_discrete(t)

        x0, _ = predicted_x0_and_eps(cfg.prediction_type, model_output, sample,
                                     self._sqrt_abar[t], self._sqrt_one_minus_abar[t])
        x0 = clip_predicted_x0(x0, cfg)
        denoised = c_out * x0 + c_skip * sample

        # diffusers compares with num_inference_steps (not len(timesteps)): with strength < 1
        # and custom timesteps the last step is noised too.
        if self._step_index != self.num_inference_steps - 1:
            noise = randn_tensor(model_output.shape, generator=generator, dtype=denoised.dtype)
            prev_sample = sqrt_a_prev * denoised + sqrt_b_prev * noise
        else:
            prev_sample = denoised
        self._step_index += 1
        if not return_dict:
            return (prev_sample, denoised)
        return LCMSchedulerOutput(prev_sample=prev_sample, denoised=denoised)

    def previous_timestep(self, timestep):
        """The timestep after ``timestep`` in the schedule (-1 after the last one)."""
        if self.custom_timesteps or self.num_inference_steps:
            i = int(np.flatnonzero(self.timesteps == np.asarray(timestep).item())[0])
            return np.int64(-1) if i == len(self.timesteps) - 1 else self.timesteps[i + 1]
        return timestep - 1

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * noise."""
        return add_noise_at_timesteps(self.alphas_cumprod, original_samples, noise, timesteps)

    def get_velocity(self, sample: np.ndarray, noise: np.ndarray, timesteps) -> np.ndarray:
        """v = sqrt(abar_t) * noise - sqrt(1 - abar_t) * sample."""
        return velocity_at_timesteps(self.alphas_cumprod, sample, noise, timesteps)
