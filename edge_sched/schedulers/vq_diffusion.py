"""VQ-Diffusion (Gu et al. 2022): discrete diffusion over the classes of a VQ codebook.

diffusers: VQDiffusionScheduler. A latent pixel is one of K = ``num_vec_classes`` classes, the
last being the mask class. One forward step keeps a class with probability a_t + b_t, moves it to
each other unmasked class with b_t and masks it with c_t; a masked pixel stays masked. The
cumulative probabilities from x0 (sec. 4.1) run linearly over t = 0 .. T-1:
    abar_t = alpha_cum_start + t / (T - 1) (alpha_cum_end - alpha_cum_start)    (cbar_t: gamma_*)
    bbar_t = (1 - abar_t - cbar_t) / (K - 1)
    a_t = abar_t / abar_{t-1},  1 - c_t = (1 - cbar_t) / (1 - cbar_{t-1}),  b_t = (1 - a_t - c_t) / (K - 1)
with abar_{-1} = 1, cbar_{-1} = 0, and the cumulative tables get one more entry (abar = 1, cbar = 0)
at index T. Tables are built in float64, their logs stored in float32, as diffusers does.

``step(log_p_x0, t, x_t)`` with the model's log p(x0 | x_t) over the K - 1 unmasked classes,
shape (batch, K - 1, pixels):
    t > 0:  r_j = log p(x0 = j) - log q(x_t | x0 = j);  s = logsumexp_j r_j;  r -= s
            log p(x_{t-1} = i) = logaddexp(r_i + log abar_{t-1}, log bbar_{t-1}) + log q(x_t | x_{t-1} = i) + s
            log p(x_{t-1} = mask) = log cbar_{t-1} + log q(x_t | x_{t-1} = mask) + s
    t = 0:  the model's log p(x0) itself;
then Gumbel-max sampling: x_{t-1} = argmax_i (log p_i - log(-log(u_i + 1e-30) + 1e-30)),
u ~ U[0, 1) float32, one per logit, drawn like torch.rand of the logits' shape.

Numerics: float32 throughout like torch; exp / log / log1p are computed in float64 and rounded
(correctly rounded results, which torch's CPU kernels return for most but not all inputs: its
float32 log goes through MKL and is one ulp off for ~7% of inputs); the logsumexp sum follows
torch's cascade order (torch_numerics.sum_axis0_f32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..random import rand_tensor
from .base import SchedulerMixin, SchedulerOutput
from .torch_numerics import f32_log, sum_axis0_f32

_F32 = np.float32
# log of the one-hot zeros, which diffusers clamps to 1e-30 before the log
_LOG_TINY = _F32(np.log(np.float64(_F32(1e-30))))


@dataclass
class VQDiffusionSchedulerOutput(SchedulerOutput):
    """``prev_sample``: int64 class ids of shape (batch, pixels)."""


def _cr(fn, x):
    """``fn`` correctly rounded to the dtype of ``x`` (float32 via float64; float64 directly)."""
    x = np.asarray(x)
    if x.dtype == np.float64:
        return fn(x)
    return fn(x.astype(np.float64)).astype(x.dtype)


def _logaddexp(x, y):
    """torch.logaddexp's formula: max + log1p(exp(-|x - y|)), and x where x == y = +-inf."""
    with np.errstate(invalid="ignore"):
        out = np.maximum(x, y) + _cr(np.log1p, _cr(np.exp, -np.abs(x - y)))
        return np.where(np.isinf(x) & (x == y), x, out)


def gumbel_noise(uniform: np.ndarray) -> np.ndarray:
    """Gumbel(0, 1) noise from float32 uniforms on [0, 1): -log(-log(u + 1e-30) + 1e-30)."""
    tiny = _F32(1e-30)
    return -_cr(np.log, -_cr(np.log, uniform + tiny) + tiny)


def _linear_cumulative(num_train_timesteps: int, start: float, end: float) -> np.ndarray:
    """start .. end linearly over the training timesteps, float64 in diffusers' operation order."""
    return np.arange(0, num_train_timesteps) / (num_train_timesteps - 1) * (end - start) + start


class VQDiffusionScheduler(SchedulerMixin):
    noise_kind = "stochastic (Gumbel-max over classes)"  # for the `edge-sched schedulers` table
    order = 1

    def __init__(
        self,
        num_vec_classes: int,
        num_train_timesteps: int = 100,
        alpha_cum_start: float = 0.99999,
        alpha_cum_end: float = 0.000009,
        gamma_cum_start: float = 0.000009,
        gamma_cum_end: float = 0.99999,
    ):
        if num_vec_classes < 2:
            raise ValueError(f"num_vec_classes must be at least 2 (one class plus the mask class), got {num_vec_classes}.")
        if num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be at least 2 (the schedules are linear from start to end), "
                             f"got {num_train_timesteps}.")
        self.num_embed = num_vec_classes
        self.mask_class = num_vec_classes - 1  # by convention the last class is the mask
        T, others = num_train_timesteps, num_vec_classes - 1

        att = np.concatenate(([1.0], _linear_cumulative(T, alpha_cum_start, alpha_cum_end)))
        at = att[1:] / att[:-1]
        att = np.concatenate((att[1:], [1.0]))
        ctt = np.concatenate(([0.0], _linear_cumulative(T, gamma_cum_start, gamma_cum_end)))
        one_minus_ctt = 1 - ctt
        ct = 1 - one_minus_ctt[1:] / one_minus_ctt[:-1]
        ctt = np.concatenate((ctt[1:], [0.0]))
        bt = (1 - at - ct) / others
        btt = (1 - att - ctt) / others

        # single-step (index t: step t-1 -> t) and cumulative (index t: 0 -> t) log tables, float32
        self.log_at, self.log_bt, self.log_ct = f32_log(at), f32_log(bt), f32_log(ct)
        self.log_cumprod_at, self.log_cumprod_bt, self.log_cumprod_ct = f32_log(att), f32_log(btt), f32_log(ctt)
        # log q(x_t = k | x_{t-1} or x0 = j) for an unmasked k: "stay" where j == k, "move" otherwise
        # (logaddexp(log onehot + log a, log b), as diffusers builds them from log one-hot vectors)
        self._stay = _logaddexp(self.log_at, self.log_bt)
        self._move = _logaddexp(_LOG_TINY + self.log_at, self.log_bt)
        self._stay_cum = _logaddexp(self.log_cumprod_at, self.log_cumprod_bt)
        self._move_cum = _logaddexp(_LOG_TINY + self.log_cumprod_at, self.log_cumprod_bt)

        self.num_inference_steps = None
        self.timesteps = np.arange(T - 1, -1, -1, dtype=np.int64)

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        """The class ids go to the model as they are."""
        return sample

    def set_timesteps(self, num_inference_steps: int, device=None):
        """Timesteps n - 1, ..., 0: the first n training timesteps, not spaced over the training range
        (diffusers' rule; the VQ-Diffusion pipeline uses n = num_train_timesteps)."""
        self._check_num_inference_steps(num_inference_steps)
        self.num_inference_steps = int(num_inference_steps)
        self.timesteps = np.arange(self.num_inference_steps - 1, -1, -1, dtype=np.int64)

    def _check_timestep(self, timestep) -> int:
        t = np.asarray(timestep)
        if t.size != 1 or t.dtype.kind not in "iu":
            raise ValueError(f"timestep must be a single integer, got {timestep!r}.")
        t = int(t.reshape(()))
        if not 0 <= t < self.config.num_train_timesteps:
            raise ValueError(f"timestep must be in [0, {self.config.num_train_timesteps - 1}] "
                             f"(num_train_timesteps={self.config.num_train_timesteps}), got {t}.")
        return t

    def _check_inputs(self, log_p_x_0: np.ndarray, x_t: np.ndarray) -> None:
        K = self.num_embed
        if x_t.ndim != 2 or x_t.dtype.kind not in "iu":
            raise ValueError(f"sample must be integer class ids of shape (batch, pixels), got {x_t.dtype} {x_t.shape}.")
        if x_t.size and (x_t.min() < 0 or x_t.max() >= K):
            raise ValueError(f"sample class ids must be in [0, {K - 1}] (num_vec_classes={K}), "
                             f"got values in [{x_t.min()}, {x_t.max()}].")
        expected = (x_t.shape[0], K - 1, x_t.shape[1])
        if log_p_x_0.shape != expected:
            raise ValueError(f"model_output must be log p(x0) over the {K - 1} unmasked classes, shape {expected} "
                             f"for a sample of shape {x_t.shape}; got {log_p_x_0.shape}.")

    def log_Q_t_transitioning_to_known_class(self, *, t, x_t: np.ndarray, log_onehot_x_t=None, cumulative: bool):
        """log q(x_t | x_{t-1} = j) (``cumulative=False``, rows j = 0 .. K-1, the mask row last) or
        log q(x_t | x0 = j) (``cumulative=True``, rows j = 0 .. K-2), shape (batch, rows, pixels).
        ``log_onehot_x_t`` is accepted for diffusers' signature and not needed."""
        t = self._check_timestep(t)
        x_t = np.asarray(x_t)
        masked = (x_t == self.mask_class)[:, None, :]
        onehot = np.arange(self.num_embed - 1)[None, :, None] == x_t[:, None, :]
        if cumulative:
            stay, move, c = self._stay_cum[t], self._move_cum[t], self.log_cumprod_ct[t]
        else:
            stay, move, c = self._stay[t], self._move[t], self.log_ct[t]
        log_q = np.where(masked, c, np.where(onehot, stay, move)).astype(_F32)
        if cumulative:
            return log_q
        # from the mask class: log 1 if x_t is masked, else (clamped) log 0
        from_mask = np.where(masked, _F32(0), _LOG_TINY).astype(_F32)
        return np.concatenate([log_q, from_mask], axis=1)

    def apply_cumulative_transitions(self, q: np.ndarray, t: int) -> np.ndarray:
        """Rows logaddexp(q + log abar_t, log bbar_t) plus a last (mask) row log cbar_t."""
        masked_row = np.broadcast_to(self.log_cumprod_ct[t], (q.shape[0], 1, q.shape[2])).astype(q.dtype)
        return np.concatenate([_logaddexp(q + self.log_cumprod_at[t], self.log_cumprod_bt[t]), masked_row], axis=1)

    def q_posterior(self, log_p_x_0: np.ndarray, x_t: np.ndarray, t) -> np.ndarray:
        """log p(x_{t-1} | x_t) over all K classes, shape (batch, K, pixels) (module docstring)."""
        t = self._check_timestep(t)
        if t == 0:
            raise ValueError("q_posterior needs t >= 1 (at t = 0 step samples from the model's log p(x0)).")
        x_t = np.asarray(x_t)
        log_p_x_0 = np.asarray(log_p_x_0)
        self._check_inputs(log_p_x_0, x_t)
        if log_p_x_0.dtype != np.float64:
            log_p_x_0 = log_p_x_0.astype(_F32)  # float16 meets torch's float32 tables as float32
        r = log_p_x_0 - self.log_Q_t_transitioning_to_known_class(t=t, x_t=x_t, cumulative=True)
        # logsumexp over classes as torch takes it: shift by the (finite) max, sum in torch's order
        shift = r.max(axis=1, keepdims=True)
        shift[np.isinf(shift)] = 0
        total = sum_axis0_f32(np.moveaxis(_cr(np.exp, r - shift), 1, 0))[:, None, :]
        with np.errstate(divide="ignore"):
            s = _cr(np.log, total) + shift
        q = self.apply_cumulative_transitions(r - s, t - 1)
        return q + self.log_Q_t_transitioning_to_known_class(t=t, x_t=x_t, cumulative=False) + s

    def step(
        self,
        model_output: np.ndarray,
        timestep,
        sample: np.ndarray,
        generator=None,
        return_dict: bool = True,
    ):
        """Sample x_{t-1} (int64 class ids, shape (batch, pixels)) from the model's log p(x0 | x_t)."""
        t = self._check_timestep(timestep)
        if t == 0:
            logits = np.asarray(model_output)
        else:
            logits = self.q_posterior(model_output, sample, t)
        # one uniform per logit, drawn as torch.rand(logits.shape) (float32 whatever the logits' dtype)
        u = rand_tensor(logits.shape, generator=generator, dtype=_F32)
        prev_sample = np.argmax(gumbel_noise(u) + logits, axis=1).astype(np.int64)
        if not return_dict:
            return (prev_sample,)
        return VQDiffusionSchedulerOutput(prev_sample=prev_sample)
