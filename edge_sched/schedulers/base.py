"""What every scheduler shares: outputs, loading/saving, step bookkeeping, checks.

A concrete scheduler plans its per-step constants in ``set_timesteps`` and applies its
update rule in ``step``; everything else lives here.
"""

from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass, fields

import numpy as np

from .configuration import SCHEDULER_CLASSES, ConfigError, ConfigMixin


@dataclass
class SchedulerOutput:
    """Result of ``step``: the next sample and, where the rule has one, the x0 estimate.

    Indexable like diffusers' outputs: ``out[0]`` is ``prev_sample``.
    """

    prev_sample: np.ndarray
    pred_original_sample: np.ndarray | None = None

    def to_tuple(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None)

    def __getitem__(self, index):
        if isinstance(index, str):
            return getattr(self, index)
        return self.to_tuple()[index]


# diffusers' KarrasDiffusionSchedulers: the schedulers a Stable Diffusion style config can switch between
KARRAS_COMPATIBLES = [
    "DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "LMSDiscreteScheduler", "EulerDiscreteScheduler",
    "HeunDiscreteScheduler", "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
    "DEISMultistepScheduler", "UniPCMultistepScheduler", "DPMSolverSDEScheduler", "EDMEulerScheduler",
]


class SchedulerNotReadyError(RuntimeError):
    """``step`` (or similar) called before ``set_timesteps``."""


def expand_to(values: np.ndarray, ndim: int) -> np.ndarray:
    """Append singleton axes so per-sample ``values`` broadcast over a batch of latents."""
    values = np.asarray(values)
    return values.reshape(values.shape + (1,) * (ndim - values.ndim))


def _one_stream_per_seed(step):
    """``step`` with its ``generator`` argument passed through ``SchedulerMixin._seed_stream``."""
    names = list(inspect.signature(step).parameters)
    if "generator" not in names:
        return step
    position = names.index("generator") - 1  # among the arguments after self

    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        if "generator" in kwargs:
            kwargs["generator"] = self._seed_stream(kwargs["generator"])
        elif len(args) > position:
            args = (*args[:position], self._seed_stream(args[position]), *args[position + 1:])
        return step(self, *args, **kwargs)

    return wrapper


_HALF = ("float16", "bfloat16")


def _half_dtype(*arrays):
    """The 16-bit float dtype of the inputs (torch keeps it: float16 latents give float16 outputs), or None."""
    if not arrays or not all(isinstance(a, np.ndarray) for a in arrays):
        return None
    dtype = arrays[0].dtype if len(arrays) == 1 else np.result_type(*arrays)
    return dtype if dtype.name in _HALF else None


def _as(value, dtype, shape):
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.dtype != dtype and value.shape == shape:
        return value.astype(dtype)
    return value


def _keeps_half_step(step):
    """``step`` whose latent outputs keep float16 (bfloat16) inputs' dtype, as diffusers' do. The math runs in
    float32 (diffusers' Euler-family steps upcast too) and is rounded once at the end."""
    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        model_output = kwargs.get("model_output", args[0] if args else None)
        sample = kwargs.get("sample", args[2] if len(args) > 2 else None)
        dtype = _half_dtype(model_output, sample)
        if dtype is None:
            return out
        if isinstance(out, tuple):
            return tuple(_as(v, dtype, sample.shape) for v in out)
        if hasattr(out, "__dataclass_fields__"):
            changed = {f.name: _as(getattr(out, f.name), dtype, sample.shape) for f in fields(out)}
            return type(out)(**changed)
        return _as(out, dtype, sample.shape)

    return wrapper


def _keeps_half_input(scale_model_input):
    @functools.wraps(scale_model_input)
    def wrapper(self, sample, *args, **kwargs):
        out = scale_model_input(self, sample, *args, **kwargs)
        dtype = _half_dtype(sample)
        return out if dtype is None else _as(out, dtype, sample.shape)

    return wrapper


def _new_loop(set_timesteps):
    """``set_timesteps`` that also ends the int-seed stream of the previous loop, and refuses a schedule
    that is not finite (whatever config or custom values led to it) before a step can use it."""
    @functools.wraps(set_timesteps)
    def wrapper(self, *args, **kwargs):
        self.__dict__.pop("_seeded", None)
        if self.__dict__.get("_planning"):  # a subclass calling its parent's: checked once, at the end
            return set_timesteps(self, *args, **kwargs)
        self._planning = True
        try:
            out = set_timesteps(self, *args, **kwargs)
        finally:
            self._planning = False
        _check_finite_schedule(self)
        return out

    return wrapper


def _check_finite_schedule(scheduler) -> None:
    # sigmas only: a NaN *timestep* can be legitimate (KDPM2's midpoint where sigma_down cancels to 0, which
    # diffusers steps through by index)
    for name in ("sigmas",):
        values = scheduler.__dict__.get(name)
        if not isinstance(values, np.ndarray) or values.dtype.kind not in "fiu":
            continue
        bad = ~np.isfinite(values.astype(np.float64, copy=False))
        if bad.any():
            i = int(np.argmax(bad.ravel()))
            scheduler.num_inference_steps = None  # step() refuses until a good set_timesteps
            raise ValueError(
                f"{type(scheduler).__name__}: this config and these set_timesteps arguments give {name} with "
                f"{values.ravel()[i]} at position {i}; check the beta schedule (beta_end, trained_betas) or the "
                f"custom values"
            )


class SchedulerMixin(ConfigMixin):
    """Base class of every edge_sched scheduler (mirrors diffusers' SchedulerMixin)."""

    order = 1
    init_noise_sigma = 1.0
    num_inference_steps: int | None = None
    timesteps: np.ndarray
    _step_index: int | None = None
    _begin_index: int | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            SCHEDULER_CLASSES[cls.__name__] = cls
        if "step" in cls.__dict__:
            cls.step = _keeps_half_step(_one_stream_per_seed(cls.__dict__["step"]))
        if "scale_model_input" in cls.__dict__:
            cls.scale_model_input = _keeps_half_input(cls.__dict__["scale_model_input"])
        if "set_timesteps" in cls.__dict__:
            cls.set_timesteps = _new_loop(cls.__dict__["set_timesteps"])

    # -- int seeds: one stream over a loop ---------------------------------------------

    def _seed_stream(self, generator):
        """An int seed (or a list of them) given to ``step`` is ``TorchGenerator(seed)`` made at the first
        step after ``set_timesteps`` and continued on later steps with the same seed, so ``step(...,
        generator=7)`` in a loop draws what one ``TorchGenerator(7)`` would draw over the loop (not the
        same noise at every step). Generators are used as given."""
        seeds = generator if isinstance(generator, (list, tuple)) else [generator]
        if not seeds or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds):
            return generator
        key = (type(generator), tuple(int(s) for s in seeds))
        cached = self.__dict__.get("_seeded")
        if cached is None or cached[0] != key:
            from ..random import TorchGenerator

            streams = [TorchGenerator(s) for s in key[1]]
            cached = self._seeded = (key, streams if isinstance(generator, (list, tuple)) else streams[0])
        return cached[1]

    # -- loading and saving ------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        subfolder: str | None = None,
        return_unused_kwargs: bool = False,
        *,
        cache_dir=None,
        force_download: bool = False,
        local_files_only: bool = False,
        token=None,
        revision: str | None = None,
        **kwargs,
    ):
        """Load ``scheduler_config.json`` from a local folder or a Hub repo (``subfolder="scheduler"``
        for a pipeline); ``kwargs`` override config values."""
        config, path = cls._load_config_file(
            pretrained_model_name_or_path,
            subfolder=subfolder,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
            revision=revision,
        )
        try:
            return cls.from_config(config, return_unused_kwargs=return_unused_kwargs, **kwargs)
        except (ConfigError, TypeError, ValueError) as e:
            raise ConfigError(f"{path}: {e}") from e

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """Write ``scheduler_config.json`` (loadable by diffusers and by us)."""
        if kwargs.pop("push_to_hub", False):
            raise NotImplementedError("push_to_hub is not supported; upload the folder with huggingface_hub.")
        self.save_config(save_directory)

    @property
    def compatibles(self) -> list[type]:
        """Scheduler classes that can be built from this one's config."""
        return self._compatible_classes()

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"  # diffusers' form: the class and its JSON config

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    # -- step bookkeeping --------------------------------------------------------------

    @property
    def step_index(self) -> int | None:
        """Index of the current step in ``timesteps`` (None until the first step)."""
        return self._step_index

    @property
    def begin_index(self) -> int | None:
        """First step index, set by pipelines (image-to-image) via ``set_begin_index``."""
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0) -> None:
        self._begin_index = begin_index

    def index_for_timestep(self, timestep, schedule_timesteps: np.ndarray | None = None) -> int:
        """Position of ``timestep`` in the schedule; for a repeated timestep (image-to-image
        starting mid-schedule) the second occurrence, as diffusers does."""
        if schedule_timesteps is None:
            schedule_timesteps = self.timesteps
        indices = np.flatnonzero(schedule_timesteps == np.asarray(timestep).item())
        if len(indices) == 0:
            raise ValueError(f"timestep {timestep!r} is not in this scheduler's timesteps {schedule_timesteps!r}.")
        return int(indices[1] if len(indices) > 1 else indices[0])

    def _noising_indices(self, timesteps) -> list[int]:
        """Schedule index of each timestep given to ``add_noise``: looked up in the schedule, or,
        once a pipeline set a begin index (image-to-image), the current step for every item."""
        timesteps = np.atleast_1d(np.asarray(timesteps))
        if self._begin_index is None:
            return [self.index_for_timestep(t) for t in timesteps]
        start = self._step_index if self._step_index is not None else self._begin_index
        return [start] * len(timesteps)

    def _init_step_index(self, timestep) -> None:
        if self._begin_index is None:
            self._step_index = self.index_for_timestep(timestep)
        else:
            self._step_index = self._begin_index

    def _require_timesteps(self) -> None:
        if self.num_inference_steps is None:
            raise SchedulerNotReadyError(
                f"{type(self).__name__}: call `set_timesteps(num_inference_steps)` before `step`."
            )

    # -- shared argument checks --------------------------------------------------------

    def _check_num_inference_steps(self, num_inference_steps, *, allow_more_than_train: bool = False) -> int:
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, (int, np.integer)):
            raise TypeError(f"num_inference_steps must be an int, got {num_inference_steps!r}.")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}.")
        if not allow_more_than_train and num_inference_steps > (limit := self.config.num_train_timesteps):
            raise ValueError(
                f"num_inference_steps ({num_inference_steps}) cannot be larger than "
                f"num_train_timesteps ({limit}): the model was trained on {limit} timesteps at most."
            )
        return int(num_inference_steps)

    @staticmethod
    def _check_custom_schedule(num_inference_steps, timesteps, sigmas=None) -> None:
        """Exactly one of ``num_inference_steps``, ``timesteps``, ``sigmas``."""
        given = [n for n, v in (("num_inference_steps", num_inference_steps), ("timesteps", timesteps),
                                ("sigmas", sigmas)) if v is not None]
        if len(given) != 1:
            raise ValueError(
                "Pass exactly one of `num_inference_steps`, `timesteps` or `sigmas` to set_timesteps"
                + (f"; got {' and '.join(given)}." if given else "; got none.")
            )

    @staticmethod
    def _check_descending(name: str, values, *, strict: bool = True) -> np.ndarray:
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"custom {name} must be a non-empty 1-D list, got {values!r}.")
        if not np.isfinite(arr).all():
            raise ValueError(f"custom {name} must be finite numbers, got {list(values)!r}.")
        diffs = np.diff(arr)
        if np.any(diffs >= 0 if strict else diffs > 0):
            raise ValueError(f"custom {name} must be in descending order, got {list(values)!r}.")
        return arr

    def _output(self, prev_sample, pred_original_sample, return_dict: bool):
        if not return_dict:
            return (prev_sample,) if pred_original_sample is None else (prev_sample, pred_original_sample)
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)


__all__ = [
    "KARRAS_COMPATIBLES",
    "SchedulerMixin",
    "SchedulerOutput",
    "SchedulerNotReadyError",
    "expand_to",
]
