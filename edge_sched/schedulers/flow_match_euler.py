"""Euler sampler for rectified-flow / flow-matching models (Lipman et al. 2023, "Flow Matching
for Generative Modeling"; Esser et al. 2024, "Scaling Rectified Flow Transformers", SD3).

diffusers: FlowMatchEulerDiscreteScheduler. The sample is x_sigma = (1 - sigma) * x0 + sigma * noise
and the model predicts the velocity v = dx/dsigma = noise - x0. One model call per step:

    x_next = x + (sigma_next - sigma) * v                               (deterministic)
    x_next = (1 - sigma_next) * (x - sigma * v) + sigma_next * z        (stochastic_sampling)

Sigmas start from t / T on a uniform grid, then are shifted towards noise:
    static:       sigma' = s * sigma / (1 + (s - 1) * sigma)
    dynamic (mu): sigma' = e^mu / (e^mu + (1/sigma - 1))   ("exponential")
                  sigma' = mu / (mu + (1/sigma - 1))        ("linear")
optionally stretched so the last sigma is ``shift_terminal``, and optionally resampled by a
Karras / exponential / beta ramp. The timestep the model sees is sigma * T.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..random import randn_tensor
from .base import SchedulerMixin, expand_to
from .errors import check_choice
from .sigmas import configured_sigma_schedule, flow_time_shift, sigma_schedule

TIME_SHIFT_TYPES = ("exponential", "linear")


def _is_integer_timestep(timestep) -> bool:
    if isinstance(timestep, (int, np.integer)):
        return True
    return isinstance(timestep, np.ndarray) and timestep.dtype.kind in "iub"


class FlowMatchEulerDiscreteScheduler(SchedulerMixin):
    noise_kind = "with stochastic_sampling"  # for the `edge-sched schedulers` table
    _compatibles = []
    order = 1

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        shift: float = 1.0,
        use_dynamic_shifting: bool = False,
        base_shift: float | None = 0.5,
        max_shift: float | None = 1.15,
        base_image_seq_len: int = 256,
        max_image_seq_len: int = 4096,
        invert_sigmas: bool = False,
        shift_terminal: float = None,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        time_shift_type: Literal["exponential", "linear"] = "exponential",
        stochastic_sampling: bool = False,
    ):
        configured_sigma_schedule(self.config)
        check_choice("time_shift_type", time_shift_type, TIME_SHIFT_TYPES)
        n = num_train_timesteps
        t = np.linspace(1, n, n, dtype=np.float32)[::-1]
        sigmas = t / np.float32(n)
        if not use_dynamic_shifting:  # with dynamic shifting the shift depends on mu, given later
            sigmas = self._static_shift(shift, sigmas)
        self._shift = shift
        self.timesteps = sigmas * np.float32(n)
        self.sigmas = sigmas
        self.sigma_min = float(sigmas[-1])
        self.sigma_max = float(sigmas[0])
        self.num_inference_steps = None
        self._step_index = None
        self._begin_index = None

    @property
    def shift(self) -> float:
        """The static shift used by ``set_timesteps`` (``set_shift`` changes it)."""
        return self._shift

    def set_shift(self, shift: float) -> None:
        self._shift = shift

    # -- schedule -----------------------------------------------------------------------

    @staticmethod
    def _static_shift(shift, sigmas):
        return shift * sigmas / (1 + (shift - 1) * sigmas)

    def time_shift(self, mu: float, sigma: float, t: np.ndarray) -> np.ndarray:
        """Resolution-dependent shift of ``t`` by ``mu`` (``time_shift_type``)."""
        return flow_time_shift(t, mu, self.config.time_shift_type, sigma)

    def stretch_shift_to_terminal(self, t: np.ndarray) -> np.ndarray:
        """Rescale 1 - t so that the last value becomes ``shift_terminal``."""
        one_minus = 1 - t
        if one_minus[-1] == 0:  # diffusers divides by zero here and fails later on NaN timesteps
            raise ValueError(
                f"shift_terminal={self.config.shift_terminal} cannot stretch a schedule whose last sigma is 1 "
                f"(sigmas {np.asarray(t).tolist()}); use more than one step."
            )
        scale = one_minus[-1] / (1 - self.config.shift_terminal)
        return 1 - one_minus / scale

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device=None,
        sigmas: list[float] | None = None,
        mu: float | None = None,
        timesteps: list[float] | None = None,
    ):
        """Plan the schedule from ``num_inference_steps``, custom ``sigmas`` (without the final 0)
        and/or custom ``timesteps``; ``mu`` is required with ``use_dynamic_shifting``."""
        cfg = self.config
        if cfg.use_dynamic_shifting and mu is None:
            raise ValueError("`mu` must be passed to set_timesteps when `use_dynamic_shifting` is True.")
        if sigmas is not None and timesteps is not None and len(sigmas) != len(timesteps):
            raise ValueError(f"custom `sigmas` ({len(sigmas)}) and `timesteps` ({len(timesteps)}) differ in length.")
        if num_inference_steps is not None:
            n = self._check_num_inference_steps(num_inference_steps, allow_more_than_train=True)
            for name, values in (("sigmas", sigmas), ("timesteps", timesteps)):
                if values is not None and len(values) != n:
                    raise ValueError(
                        f"custom `{name}` has {len(values)} values but num_inference_steps is {n}; "
                        "they must agree when both are given."
                    )
        elif sigmas is None and timesteps is None:
            raise ValueError("Pass `num_inference_steps`, `sigmas` or `timesteps` to set_timesteps; got none.")
        else:
            n = len(sigmas) if sigmas is not None else len(timesteps)
        self.num_inference_steps = n
        N = cfg.num_train_timesteps

        # diffusers plans the default grid in float64 and custom inputs in float32
        custom_t = None if timesteps is None else self._vector("timesteps", timesteps)
        if sigmas is None:
            t = custom_t if custom_t is not None else np.linspace(self.sigma_max * N, self.sigma_min * N, n)
            sig = t / N
        else:
            sig = self._vector("sigmas", sigmas)
            n = len(sig)
        if cfg.use_dynamic_shifting:
            sig = self.time_shift(mu, 1.0, sig)
        else:
            sig = self._static_shift(self.shift, sig)
        if cfg.shift_terminal:
            sig = self.stretch_shift_to_terminal(sig)
        kind = configured_sigma_schedule(cfg)
        if kind is not None:
            sig = sigma_schedule(kind, sig, n, cfg)

        sig = np.asarray(sig).astype(np.float32)
        steps = sig * np.float32(N) if custom_t is None else custom_t
        if cfg.invert_sigmas:  # Mochi: sigmas run 0 -> 1, the model is fed the inverted ones
            sig = np.float32(1) - sig
            steps = sig * np.float32(N)
        last = np.float32(1 if cfg.invert_sigmas else 0)
        self.sigmas = np.append(sig, last).astype(np.float32)
        self.timesteps = np.asarray(steps, dtype=np.float32)
        self._dt = np.diff(self.sigmas)  # float32, as torch subtracts two float32 scalars
        self._step_index = None
        self._begin_index = None

    @staticmethod
    def _vector(name: str, values) -> np.ndarray:
        arr = np.array(values)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"custom {name} must be a non-empty 1-D list, got {values!r}.")
        return arr.astype(np.float32)

    # -- sampling -----------------------------------------------------------------------

    def step(
        self,
        model_output: np.ndarray,
        timestep,
        sample: np.ndarray,
        s_churn: float = 0.0,
        s_tmin: float = 0.0,
        s_tmax: float = float("inf"),
        s_noise: float = 1.0,
        generator=None,
        per_token_timesteps: np.ndarray | None = None,
        return_dict: bool = True,
    ):
        """One Euler step along the velocity ``model_output``. ``s_churn``, ``s_tmin``, ``s_tmax``
        and ``s_noise`` are accepted and ignored, as in diffusers. ``per_token_timesteps``
        (batch, tokens) gives each token of a (batch, tokens, channels) sample its own timestep;
        each token then moves to the largest scheduled sigma below its own."""
        if _is_integer_timestep(timestep):
            raise ValueError(
                "Pass one of `scheduler.timesteps` as `timestep`, not an integer index (e.g. from enumerate)."
            )
        self._require_timesteps()
        if self._step_index is None:
            self._init_step_index(timestep)
        sample = np.asarray(sample, dtype=np.float32)  # diffusers upcasts; float32 input is not copied
        out_dtype = model_output.dtype

        if per_token_timesteps is not None:
            pt = np.asarray(per_token_timesteps)
            token_sigma = (pt if pt.dtype.kind == "f" else pt.astype(np.float32)) / self.config.num_train_timesteps
            grid = self.sigmas[:, None, None]
            below = grid < token_sigma[None] - 1e-6
            sigma = token_sigma[..., None]
            sigma_next = (below * grid).max(axis=0)[..., None]
            dt = sigma - sigma_next  # diffusers' sign for this path
        else:
            i = self._step_index
            # torch keeps a 0-d float32 factor in the model output's dtype (fp16 stays fp16)
            sigma, sigma_next = self.sigmas[i], self.sigmas[i + 1]
            dt = self._dt[i].astype(out_dtype)
            sigma = sigma.astype(out_dtype)

        if self.config.stochastic_sampling:
            x0 = sample - sigma * model_output
            noise = randn_tensor(sample.shape, generator=generator, dtype=sample.dtype)
            prev_sample = (1.0 - sigma_next) * x0 + sigma_next * noise
        else:
            prev_sample = sample + dt * model_output
        self._step_index += 1
        if per_token_timesteps is None:
            prev_sample = prev_sample.astype(out_dtype, copy=False)
        return self._output(prev_sample, None, return_dict)

    def scale_noise(self, sample: np.ndarray, timestep, noise: np.ndarray | None = None) -> np.ndarray:
        """Forward process of flow matching: x = sigma * noise + (1 - sigma) * sample, sigma looked up
        per batch item from ``timestep`` (or the begin/step index when a pipeline set one)."""
        sigmas = self.sigmas.astype(sample.dtype)
        sigma = expand_to(sigmas[self._noising_indices(timestep)].reshape(-1), sample.ndim)
        return sigma * noise + (1.0 - sigma) * sample
