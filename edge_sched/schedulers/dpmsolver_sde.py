"""DPM-Solver++(2S) SDE of k-diffusion (``sample_dpmpp_sde``, eta = 1, r = 1/2): two model calls
per step, Brownian-tree noise.

diffusers: DPMSolverSDEScheduler. In t = -log(sigma), a step from s (t) to s' (t') goes through
the midpoint t_m = t + (t' - t) / 2, sigma_m = e^-t_m. Each of its two calls is an ancestral
DPM-Solver-1 move from the step's start x:

    to sigma_to (sigma_m for the first call, s' for the second):
    sigma_up = min(sigma_to, sqrt(sigma_to^2 (s^2 - sigma_to^2) / s^2)),
    sigma_down = sqrt(sigma_to^2 - sigma_up^2)
    x_to = (sigma_down / s) x - expm1(log(s / sigma_down)) x0 + sigma_up * n(s, sigma_to)

with x0 from the model at s (first call) or at sigma_m on x_m (second call), and
n(a, b) = (W(b) - W(a)) / sqrt(|b - a|) the normalised increment of a Brownian motion over
[sigma_min, sigma_max]: torchsde's BrownianInterval as diffusers seeds it (``noise_sampler_seed``,
one int or one per batch item), reproduced by edge_sched.brownian. torchsde draws on the device of
diffusers' sample; ``scheduler.noise_device = "cuda"`` reproduces a CUDA pipeline (default "cpu").
The final step to sigma 0 is a single Euler call. The schedule interleaves [t_0, tm_0, t_1, tm_1,
..., t_{n-1}]. set_timesteps plans every scalar (float32 like torch); ``step`` applies them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..brownian import BrownianTreeNoiseSampler
from .base import KARRAS_COMPATIBLES
from .betas import sigmas_of
from .errors import NotSupportedError, check_choice
from .prediction import PREDICTION_TYPES, to_d, x0_at_sigma
from .sigma_discrete import _SigmaDiscreteScheduler
from .sigmas import configured_sigma_schedule, discrete_sigma_plan, sigma_to_t
from .spacing import spaced_timesteps
from .torch_numerics import f32_exp, f32_expm1, f32_log

_F32 = np.float32


def ancestral_move(t: np.ndarray, sigma_from: np.ndarray, sigma_to: np.ndarray):
    """float32 (weight of x, weight of x0, sigma_up) of the ancestral DPM-Solver-1 move from
    ``sigma_from`` = exp(-t) to ``sigma_to``, in t = -log(sigma) as diffusers computes it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        f2, t2 = sigma_from * sigma_from, sigma_to * sigma_to
        up = np.minimum(sigma_to, np.sqrt(t2 * (f2 - t2) / f2))
        down = np.sqrt(t2 - up * up)
        t_anc = -f32_log(down)
        return f32_exp(-t_anc) / sigma_from, -f32_expm1(t - t_anc), up


class DPMSolverSDEScheduler(_SigmaDiscreteScheduler):
    noise_kind = "Brownian (torchsde's, noise_sampler_seed)"  # for the `edge-sched schedulers` table
    _compatibles = KARRAS_COMPATIBLES
    order = 2

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon",
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        noise_sampler_seed: int | list[int] | None = None,
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "linspace",
        steps_offset: int = 0,
    ):
        check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        configured_sigma_schedule(self.config)
        self._init_training_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        self.noise_sampler_seed = noise_sampler_seed
        self.noise_device = "cpu"  # torchsde's generator device: that of the torch pipeline's latents
        # like diffusers, a fresh scheduler is already set to the full training schedule
        self.set_timesteps(num_train_timesteps, None, num_train_timesteps)

    def set_timesteps(self, num_inference_steps: int, device=None, num_train_timesteps: int | None = None) -> None:
        """Plan ``num_inference_steps`` steps (two calls each but the last); ``num_train_timesteps``
        overrides the config's range for the spacing."""
        cfg = self.config
        n = self._check_num_inference_steps(num_inference_steps)
        steps = spaced_timesteps(cfg.timestep_spacing, n, num_train_timesteps or cfg.num_train_timesteps,
                                 cfg.steps_offset, rounded=False)  # float64, as diffusers plans them here
        steps, sigmas = discrete_sigma_plan(cfg, self.alphas_cumprod, steps, n)
        log_train = np.log(sigmas_of(self.alphas_cumprod))
        # midpoints in t = -log(sigma), from the float64 sigmas
        t = -np.log(sigmas)
        mid_steps = sigma_to_t(np.exp(-(t[:-1] + np.diff(t) * 0.5)), log_train)
        timesteps = np.concatenate([steps[:1], np.repeat(steps[1:], 2)]).astype(np.float64)
        timesteps[1::2] = mid_steps
        self.timesteps = timesteps
        self.num_inference_steps = n
        s = np.concatenate([sigmas, [0.0]]).astype(_F32)
        self._set_sigmas(np.concatenate([s[:1], np.repeat(s[1:-1], 2), s[-1:]]))
        self._plan_moves(s)
        self.sample = None
        self.mid_point_sigma = None
        self.noise_sampler = None

    def _plan_moves(self, s: np.ndarray) -> None:
        """Per step i (s_i -> s_{i+1}): the midpoint sigma and both calls' move coefficients."""
        sigma, sigma_next = s[:-1], s[1:]
        with np.errstate(divide="ignore"):
            t, t_next = -f32_log(sigma), -f32_log(sigma_next)
        t_mid = t + (t_next - t) * _F32(0.5)
        self._from = f32_exp(-t)
        self._mid = f32_exp(-t_mid)
        self._to = f32_exp(-t_next)
        self._first = ancestral_move(t, self._from, self._mid)
        self._second = ancestral_move(t, self._from, self._to)

    @property
    def state_in_first_order(self) -> bool:
        return self.sample is None

    def scale_model_input(self, sample: np.ndarray, timestep) -> np.ndarray:
        """Divide by sqrt(sigma^2 + 1), sigma being the midpoint for the second call."""
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        if self.state_in_first_order:
            return sample / self._input_norm[self._step_index]
        m = self.mid_point_sigma
        return sample / np.sqrt(m * m + _F32(1))

    def _x0(self, model_output, sample, sigma_input):
        if self.config.prediction_type == "sample":
            raise NotSupportedError("DPMSolverSDEScheduler: prediction_type 'sample' is not implemented.")
        return x0_at_sigma(self.config.prediction_type, model_output, sample, sigma_input)

    def step(self, model_output: np.ndarray, timestep, sample: np.ndarray, return_dict: bool = True,
             s_noise: float = 1.0):
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        if self.noise_sampler is None:
            positive = self.sigmas[self.sigmas > 0]
            seed = self.noise_sampler_seed
            if seed is None:  # diffusers draws a fresh seed too
                seed = int(np.random.default_rng().integers(0, 2**63 - 1))
            self.noise_sampler = BrownianTreeNoiseSampler(
                sample.shape, float(positive.min()), float(self.sigmas.max()), seed,
                dtype=np.float64 if sample.dtype == np.float64 else _F32, device=self.noise_device)
        i = self._step_index
        first = self.state_in_first_order
        k = i // 2 if first else (i - 1) // 2  # the step (pair of calls) this call belongs to
        sigma, sigma_next = (self.sigmas[i], self.sigmas[i + 1]) if first else (self.sigmas[i - 1], self.sigmas[i])
        x0 = self._x0(model_output, sample, sigma if first else self._mid[k])

        if sigma_next == 0:  # the last step: one Euler call, no noise
            prev_sample = sample + to_d(sample, x0, sigma) * (sigma_next - sigma)
        else:
            cx, c0, up = self._first if first else self._second
            if not first:
                sample = self.sample
            prev_sample = cx[k] * sample + c0[k] * x0
            noise = self.noise_sampler(self._from[k], self._mid[k] if first else self._to[k])
            prev_sample = prev_sample + noise * s_noise * up[k]
            self.sample, self.mid_point_sigma = (sample, self._mid[k]) if first else (None, None)
        self._step_index += 1
        return self._output(prev_sample, x0, return_dict)


__all__ = ["DPMSolverSDEScheduler", "ancestral_move"]
