"""Scheduler configs: diffusers' ``scheduler_config.json`` contract, without diffusers.

A scheduler's ``__init__`` signature *is* its config schema: every argument (defaults
filled in) is recorded in an immutable :class:`FrozenConfig`, type-checked against the
annotation, saved to / loaded from JSON, and moved between classes with diffusers'
``from_config`` rules.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import os
import types
import typing
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..jsonfile import read_json
from .registry import SCHEDULER_CLASSES  # every scheduler class by its diffusers name (filled on first use)

logger = logging.getLogger("edge_sched")

# The diffusers release whose scheduler configs and numbers we mirror.
DIFFUSERS_COMPAT_VERSION = "0.39.0"


class ConfigError(ValueError):
    """A config (file, dict or keyword argument) that cannot describe a scheduler."""


class FrozenConfig(dict):
    """An immutable dict whose keys are also attributes: ``config.num_train_timesteps``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no field {name!r}") from None

    def _immutable(self, *args, **kwargs):
        raise TypeError(
            "A scheduler config is immutable; build a new scheduler with "
            "`Scheduler.from_config(old.config, key=value)` instead."
        )

    __setitem__ = __delitem__ = __setattr__ = __delattr__ = _immutable
    update = pop = popitem = setdefault = clear = _immutable

    def __reduce__(self):
        return (FrozenConfig, (dict(self),))


# --- type checking of config values -------------------------------------------------

def _type_ok(value: Any, annotation: Any) -> bool:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple, np.ndarray)):
            return False
        (item,) = typing.get_args(annotation)[:1] or (Any,)
        return all(_type_ok(v, item) for v in value)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, (bool, np.bool_))
    if annotation is int:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if annotation is np.ndarray:
        return isinstance(value, np.ndarray)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _describe(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "").replace("numpy.", "np.")


def check_config_types(cls: type, values: dict) -> None:
    """Raise ConfigError naming the first field whose value does not fit ``cls.__init__``."""
    hints = _init_hints(cls)
    for name, value in values.items():
        if name in hints and not _type_ok(value, hints[name]):
            raise ConfigError(
                f"{cls.__name__} config field {name!r} must be {_describe(hints[name])}, "
                f"got {value!r} ({type(value).__name__})."
            )


def _has_nan(value: Any) -> bool:
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    if isinstance(value, (list, tuple)):
        return any(_has_nan(v) for v in value)
    if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
        return bool(np.isnan(value).any())
    return False


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


#: fields that mean the same in every scheduler that has them: (test, what is allowed)
_FIELD_RULES = {
    "num_train_timesteps": (lambda v: v >= 1, "at least 1", " (the model's training schedule has that many timesteps)"),
    "solver_order": (lambda v: v >= 1, "at least 1", ""),
    "steps_offset": (lambda v: v >= 0, "at least 0", " (a negative offset would index the tables from their end)"),
    "sigma_min": (lambda v: 0 < v < math.inf, "a finite number > 0", ""),
    "sigma_max": (lambda v: 0 < v < math.inf, "a finite number > 0", ""),
    "rho": (lambda v: 0 < v < math.inf, "a finite number > 0", " (Karras et al. use 7)"),
}


def check_config_values(cls: type, values: dict) -> None:
    """Values no scheduler can work with, whatever its class: NaN anywhere (inf stays allowed:
    ``lambda_min_clipped=-inf`` is a default), fields that mean the same everywhere out of their range
    (``_FIELD_RULES``; trained betas outside [0, 1]), a sigma range upside down or one that ``rho``
    cannot raise to ``1 / rho`` in floating point. The beta-schedule rules are ``betas.check_beta_schedule``'s."""
    name = cls.__name__
    for field, value in values.items():
        if _has_nan(value):
            raise ConfigError(f"{name} config field {field!r} is NaN ({value!r}); give a number.")
        rule = _FIELD_RULES.get(field)
        if rule is not None and _number(value) and not rule[0](value):
            raise ConfigError(f"{name} config field {field!r} must be {rule[1]}, got {value!r}{rule[2]}.")
    betas = values.get("trained_betas")
    if betas is not None and isinstance(betas, (list, tuple, np.ndarray)):
        arr = np.asarray(betas, dtype=np.float64) if all(_number(b) for b in np.ravel(betas)) else None
        if arr is not None and arr.size and not ((arr >= 0) & (arr <= 1)).all():
            i = int(np.argmax(~((arr >= 0) & (arr <= 1))))
            raise ConfigError(f"{name} config field 'trained_betas' holds {float(arr.ravel()[i])!r} at index {i}; "
                              "every beta must be in [0, 1].")
    lo, hi, rho = values.get("sigma_min"), values.get("sigma_max"), values.get("rho")
    if _number(lo) and _number(hi) and lo > hi:
        raise ConfigError(f"{name}: sigma_min={lo!r} is larger than sigma_max={hi!r}.")
    if _number(rho) and rho > 0:
        for field in ("sigma_min", "sigma_max"):
            sigma = values.get(field)
            if _number(sigma) and sigma > 0 and abs(math.log(sigma)) / rho > 700:
                raise ConfigError(f"{name}: rho={rho!r} is too small for {field}={sigma!r}: "
                                  f"{field} ** (1 / rho) overflows (Karras et al. use rho = 7).")


@functools.lru_cache(maxsize=None)
def _init_hints(cls: type) -> dict:
    init = getattr(cls.__init__, "__wrapped__", cls.__init__)
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # unresolvable annotations: skip type checks rather than fail
        return {}
    # PEP 484's implicit Optional, which diffusers relies on (`shift_terminal: float = None`)
    for name, p in inspect.signature(init).parameters.items():
        if p.default is None and name in hints:
            hints[name] = typing.Optional[hints[name]]
    return hints


def init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The config fields of ``cls``: its ``__init__`` keyword parameters."""
    init = getattr(cls.__init__, "__wrapped__", cls.__init__)
    params = list(inspect.signature(init).parameters.values())[1:]
    return {
        p.name: p
        for p in params
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in getattr(cls, "ignore_for_config", ())
    }


def _record_config(init):
    """Wrap ``__init__`` so that its bound arguments become ``self.config``."""

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        outermost = not getattr(self, "_registering_config", False)
        if outermost:
            cls = type(self)
            params = init_parameters(cls)
            bound = dict(zip(params, args))
            unknown = [k for k in kwargs if k not in params]
            if len(args) > len(params) or unknown:
                raise TypeError(f"{cls.__name__}() got unexpected arguments: {unknown or args[len(params):]}")
            bound.update(kwargs)
            own_names = _own_names_for_legacy_values(cls, bound)
            check_config_types(cls, {**bound, **own_names})
            values = {name: bound.get(name, p.default) for name, p in params.items()}
            check_config_values(cls, values)
            defaulted = sorted(set(params) - set(bound))
            object.__setattr__(self, "_registering_config", True)
            self._internal_dict = FrozenConfig(values)
            if defaulted:
                self._register_hidden({"_use_default_values": defaulted})
            if own_names:
                # diffusers' __init__ does this with register_to_config; its body still sees the
                # arguments as given (so does ours), the config holds this class's names
                logger.info("%s: %s recorded as %s, as diffusers does.", cls.__name__,
                            {k: bound[k] for k in own_names}, own_names)
                self.register_to_config(**own_names)
        try:
            init(self, *args, **kwargs)
        finally:
            if outermost:
                object.__setattr__(self, "_registering_config", False)

    return wrapper


def _own_names_for_legacy_values(cls: type, arguments: dict) -> dict:
    """The arguments that hold a sibling scheduler's option name, with this class's name for it."""
    return {
        name: mapping[arguments[name]]
        for name, mapping in cls._legacy_values.items()
        if isinstance(arguments.get(name), str) and arguments[name] in mapping
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def register_to_config(init):
    """diffusers' ``@register_to_config`` decorator for a scheduler's ``__init__``: here every
    ConfigMixin subclass records its ``__init__`` arguments already, so it returns ``init`` unchanged
    (a custom scheduler written for diffusers keeps its decorator)."""
    return init


def read_config_file(path: str | os.PathLike) -> dict:
    """Parse a JSON config file; errors (ConfigError) name the file."""
    return read_json(path, "a scheduler config", error=ConfigError)


class ConfigMixin:
    """Config recording, ``from_config``, JSON save and load (see module docstring)."""

    config_name = "scheduler_config.json"
    ignore_for_config: tuple[str, ...] = ()
    _compatibles: list[str] = []
    # option values of a sibling scheduler's config that this class accepts and records as one of
    # its own, as diffusers' __init__ does with register_to_config: {"solver_type": {"bh2": "midpoint"}}
    _legacy_values: dict[str, dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _record_config(cls.__dict__["__init__"])

    @property
    def config(self) -> FrozenConfig:
        return self._internal_dict

    def __getattr__(self, name: str) -> Any:
        # diffusers still answers ``scheduler.num_train_timesteps`` from the config, with a deprecation
        config = self.__dict__.get("_internal_dict")
        if config is not None and not name.startswith("__") and name in config:
            warnings.warn(f"Accessing config attribute `{name}` directly on a {type(self).__name__} is deprecated "
                          f"(as in diffusers); read it from the config: `scheduler.config.{name}`.",
                          FutureWarning, stacklevel=2)
            return config[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def _register_hidden(self, extra: dict) -> None:
        self._internal_dict = FrozenConfig({**self._internal_dict, **extra})

    def _shadow_config_attribute(self, name: str, value) -> None:
        """diffusers' ``self.config.flow_shift = np.exp(mu)`` in set_timesteps: its FrozenDict takes the value as
        an instance attribute, not an item, so ``config.flow_shift`` reads it while ``config["flow_shift"]``,
        save_config and from_config keep the constructed value, and the next register_to_config (a new
        FrozenDict) drops it. Mirrored here on a copy of the config (a user-held config is not touched)."""
        if name not in self._internal_dict:
            raise TypeError(f"{type(self).__name__} has no config field {name!r}.")
        check_config_types(type(self), {name: value})
        shadowed = FrozenConfig(self._internal_dict)
        object.__setattr__(shadowed, name, value)
        self._internal_dict = shadowed

    def register_to_config(self, **values) -> None:
        """Replace config fields: the few legitimate updates after construction (a remapped
        option name, ``flow_shift`` set from ``mu``). Values are type-checked like arguments."""
        cls = type(self)
        unknown = sorted(set(values) - set(init_parameters(cls)))
        if unknown:
            raise TypeError(f"{cls.__name__} has no config fields {unknown}.")
        check_config_types(cls, values)
        check_config_values(cls, values)
        self._register_hidden(values)

    # -- diffusers' from_config rules --------------------------------------------------

    @classmethod
    def extract_init_dict(cls, config: dict, **kwargs) -> tuple[dict, dict, dict]:
        """Split ``config`` + ``kwargs`` into (init arguments, unused, hidden) like diffusers."""
        used_defaults = config.get("_use_default_values", [])
        config = {k: v for k, v in config.items() if k not in used_defaults and k != "_use_default_values"}
        original = dict(config)
        expected = set(init_parameters(cls))

        # Keys that belong to a compatible class are expected in shared configs: drop quietly.
        compatible_keys = set().union(*(init_parameters(c) for c in cls._compatible_classes())) - expected
        config = {k: v for k, v in config.items() if k not in compatible_keys}

        orig_name = config.pop("_class_name", cls.__name__)
        if not isinstance(orig_name, (str, list, tuple)):
            raise ConfigError(f"`_class_name` must be a string, got {orig_name!r}.")
        orig_cls = _lookup_class(orig_name) if isinstance(orig_name, str) else None
        if orig_cls is not None and orig_cls is not cls:
            config = {k: v for k, v in config.items() if k not in set(init_parameters(orig_cls)) - expected}
        config = {k: v for k, v in config.items() if not k.startswith("_")}

        init_dict = {}
        for key in expected:
            if key in kwargs:
                init_dict[key] = kwargs.pop(key)
                config.pop(key, None)
            elif key in config:
                init_dict[key] = config.pop(key)
        if config:
            logger.warning(
                "The config attributes %s were passed to %s, but are not expected and will be ignored.",
                config,
                cls.__name__,
            )
        if kwargs:
            logger.warning("%s does not take the arguments %s; they are ignored.", cls.__name__, sorted(kwargs))
        unused = {**config, **kwargs}
        hidden = {k: v for k, v in original.items() if k not in init_dict}
        return init_dict, unused, hidden

    @classmethod
    def from_config(cls, config=None, return_unused_kwargs: bool = False, **kwargs):
        """Build ``cls`` from another scheduler's config (diffusers' rules; overrides as kwargs)."""
        if config is None:
            config = {}
        elif hasattr(config, "config") and isinstance(config.config, dict):
            config = config.config
        if not isinstance(config, dict):
            raise ConfigError(f"from_config expects a config dict or a scheduler, got {type(config).__name__}.")
        init_dict, unused, hidden = cls.extract_init_dict(dict(config), **kwargs)
        scheduler = cls(**init_dict)
        if "_class_name" in hidden:
            hidden["_class_name"] = cls.__name__
        scheduler._register_hidden(hidden)
        unused = {**unused, **hidden}
        return (scheduler, unused) if return_unused_kwargs else scheduler

    # -- files -------------------------------------------------------------------------

    @classmethod
    def load_config(cls, pretrained_model_name_or_path: str | os.PathLike, return_unused_kwargs: bool = False,
                    return_commit_hash: bool = False, **kwargs):
        """diffusers' ``load_config``: the config dict of a local folder, a JSON file or a Hub repo
        (``subfolder=``, ``cache_dir=``, ``revision=``, ``token=``, ``local_files_only=``, ...), plus, as
        asked, the keyword arguments it did not use and the Hub commit it came from (None for local files)."""
        hub = {k: kwargs.pop(k) for k in ("cache_dir", "force_download", "local_files_only", "token", "revision")
               if k in kwargs}
        if "use_auth_token" in kwargs:
            hub.setdefault("token", kwargs.pop("use_auth_token"))
        for key in ("resume_download", "proxies", "user_agent", "_from_pipeline", "_commit_hash", "dduf_entries"):
            kwargs.pop(key, None)  # transport details huggingface_hub handles itself
        config, path = cls._load_config_file(pretrained_model_name_or_path, kwargs.pop("subfolder", None), **hub)
        outputs = (config,)
        if return_unused_kwargs:
            outputs += (kwargs,)
        if return_commit_hash:
            parts = Path(path).parts
            outputs += (parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else None,)
        return outputs if len(outputs) > 1 else config

    @classmethod
    def _load_config_file(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        subfolder: str | None = None,
        *,
        cache_dir=None,
        force_download: bool = False,
        local_files_only: bool = False,
        token=None,
        revision: str | None = None,
    ) -> tuple[dict, Path]:
        """(config, the file it came from): ``config_name`` in a local folder, a JSON file, or a Hub repo."""
        source = Path(pretrained_model_name_or_path)
        if source.is_file():
            return read_config_file(source), source
        if source.is_dir():
            path = source / (subfolder or "") / cls.config_name
            if not path.is_file():
                raise ConfigError(f"{path}: no such config file (looked in the local folder {source}).")
            return read_config_file(path), path
        return _download_config(
            str(pretrained_model_name_or_path),
            cls.config_name,
            subfolder=subfolder,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
            revision=revision,
        )

    def to_json_string(self) -> str:
        data = {k: _jsonable(v) for k, v in self.config.items() if k != "_use_default_values"}
        data["_class_name"] = type(self).__name__
        data.setdefault("_diffusers_version", DIFFUSERS_COMPAT_VERSION)
        return json.dumps(dict(sorted(data.items())), indent=2) + "\n"

    def save_config(self, save_directory: str | os.PathLike) -> Path:
        """Write ``config_name`` into ``save_directory`` atomically (temp file, then rename)."""
        folder = Path(save_directory)
        if folder.is_file():
            raise ConfigError(f"{folder} is a file; save_pretrained expects a folder.")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / self.config_name
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(self.to_json_string(), encoding="utf-8")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    @classmethod
    def _compatible_classes(cls) -> list[type]:
        found = [_lookup_class(name) for name in {cls.__name__, *cls._compatibles}]
        return sorted((c for c in found if c is not None), key=lambda c: c.__name__)




def _lookup_class(name: str) -> type | None:
    return SCHEDULER_CLASSES.get(name)


def _download_config(repo_id: str, filename: str, subfolder=None, **hub_kwargs) -> tuple[dict, Path]:
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HFValidationError
    except ImportError as e:  # pragma: no cover - huggingface_hub is a hard dependency
        raise ConfigError(f"{repo_id!r} is not a local folder and huggingface_hub is not installed.") from e
    try:
        path = hf_hub_download(repo_id, filename, subfolder=subfolder or None, **hub_kwargs)
    except HFValidationError:
        raise ConfigError(f"{repo_id!r} is neither a local folder/file nor a valid Hub repo id.") from None
    except Exception as e:  # network, offline mode, missing repo or file
        where = f"{repo_id}/{subfolder + '/' if subfolder else ''}{filename}"
        raise ConfigError(
            f"Could not get {where} from the Hugging Face Hub ({type(e).__name__}: {e}). "
            "If you are offline, pass a local folder, or make sure the file is in the Hub cache."
        ) from e
    return read_config_file(path), Path(path)
