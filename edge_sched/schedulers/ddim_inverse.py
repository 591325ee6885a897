"""DDIM inversion: the deterministic DDIM update (Song et al. 2021, eq. 12, eta = 0) run
backwards, from a clean sample towards noise (used to find the latents of a real image).

diffusers: DDIMInverseScheduler. Timesteps ascend; stepping *to* timestep t from
s = min(t - num_train_timesteps // num_inference_steps, num_train_timesteps - 1)
(abar_s = initial_alpha_cumprod when s < 0), one model call per step:
    (x0, eps) = f(model_output, x_s)        using abar_s   (x0 then clipped)
    x_t       = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
"""

from __future__ import annotations

import functools
import warnings
from typing import Literal

import numpy as np

from .base import SchedulerMixin
from .betas import betas_and_alphas_cumprod
from .errors import check_choice
from .prediction import PREDICTION_TYPES, clip_predicted_x0, predicted_x0_and_eps
from .spacing import spaced_timesteps

_F32 = np.float32


class DDIMInverseScheduler(SchedulerMixin):
    order = 1
    ignore_for_config = ("kwargs",)

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        clip_sample: bool = True,
        set_alpha_to_one: bool = True,
        steps_offset: int = 0,
        prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon",
        clip_sample_range: float = 1.0,
        timestep_spacing: Literal["leading", "trailing"] = "leading",
        rescale_betas_zero_snr: bool = False,
        **kwargs,
    ):
        check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        self.betas, self.alphas_cumprod = betas_and_alphas_cumprod(self.config)
        self.alphas = (1.0 - self.betas).astype(_F32)
        # the alpha of the step *from* before timestep 0: 1 (a clean x0) or abar_0
        self.initial_alpha_cumprod = _F32(1.0) if set_alpha_to_one else self.alphas_cumprod[0]
        self.num_inference_steps = None
        self.timesteps = np.arange(num_train_timesteps, dtype=np.int64)

    @classmethod
    def from_config(cls, config=None, return_unused_kwargs: bool = False, **kwargs):
        """diffusers' rule: a deprecated key of the config is handed on to ``__init__``."""
        config = dict(getattr(config, "config", config) or {})
        value = config.pop("set_alpha_to_zero", None)
        value = kwargs.pop("set_alpha_to_zero", value)
        if value is not None:
            kwargs["set_alpha_to_one"] = _deprecated_set_alpha_to_zero(value)
        return super().from_config(config, return_unused_kwargs=return_unused_kwargs, **kwargs)

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        """The sample goes to the model unscaled."""
        return sample

    def set_timesteps(self, num_inference_steps: int, device=None) -> None:
        """Plan ``num_inference_steps`` ascending steps ("leading" or "trailing" spacing)."""
        cfg = self.config
        check_choice("timestep_spacing", cfg.timestep_spacing, ("leading", "trailing"))
        self._check_num_inference_steps(num_inference_steps)
        self.num_inference_steps = num_inference_steps
        self.timesteps = spaced_timesteps(
            cfg.timestep_spacing, num_inference_steps, cfg.num_train_timesteps, cfg.steps_offset
        )[::-1].astype(np.int64)
        # float32 constants for every target timestep t (source s = t - ratio, capped)
        n_train = cfg.num_train_timesteps
        source = np.minimum(np.arange(n_train) - n_train // num_inference_steps, n_train - 1)
        abar_s = np.where(source >= 0, self.alphas_cumprod[np.maximum(source, 0)], self.initial_alpha_cumprod)
        abar_s = abar_s.astype(_F32)
        self._sqrt_abar_source = np.sqrt(abar_s)
        self._sqrt_one_minus_abar_source = np.sqrt(_F32(1) - abar_s)
        self._sqrt_abar = np.sqrt(self.alphas_cumprod)
        self._sqrt_one_minus_abar = np.sqrt(_F32(1) - self.alphas_cumprod)

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, return_dict: bool = True):
        """One inverted DDIM step, ending at ``timestep``."""
        self._require_timesteps()
        t = int(np.asarray(timestep).item())
        x0, eps = predicted_x0_and_eps(
            self.config.prediction_type, model_output, sample,
            self._sqrt_abar_source[t], self._sqrt_one_minus_abar_source[t],
        )
        x0 = clip_predicted_x0(x0, self.config)
        prev_sample = self._sqrt_abar[t] * x0 + self._sqrt_one_minus_abar[t] * eps
        return self._output(prev_sample, x0, return_dict)


def _deprecated_set_alpha_to_zero(value):
    warnings.warn(
        "The `set_alpha_to_zero` argument is deprecated. Please use `set_alpha_to_one` instead.",
        FutureWarning,
        stacklevel=3,
    )
    return value  # diffusers uses its value as `set_alpha_to_one`


def _accept_deprecated_kwargs(recording_init):
    """Let ``DDIMInverseScheduler(set_alpha_to_zero=...)`` through the config recorder (which
    rejects unknown keywords): its value becomes ``set_alpha_to_one``, as in diffusers'
    ``__init__`` (we also record it in the config, so a saved config keeps the behaviour)."""

    @functools.wraps(recording_init)
    def __init__(self, *args, **kwargs):
        value = kwargs.pop("set_alpha_to_zero", None)
        if value is not None:
            kwargs["set_alpha_to_one"] = _deprecated_set_alpha_to_zero(value)
        recording_init(self, *args, **kwargs)

    return __init__


DDIMInverseScheduler.__init__ = _accept_deprecated_kwargs(DDIMInverseScheduler.__init__)
