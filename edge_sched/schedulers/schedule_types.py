"""A1111's "Schedule type" and ComfyUI's "scheduler" (the sigma spacing, apart from the sampler) -> the
diffusers config options that give it, and back (the label a scheduler's config stands for).

The mapping is diffusers' own (docs: api/schedulers/overview, "Noise schedules and schedule types"):
Karras / Exponential / Beta are ``use_karras_sigmas`` / ``use_exponential_sigmas`` / ``use_beta_sigmas``
(diffusers' beta sigmas use alpha = beta = 0.6, A1111's defaults), SGM Uniform and Simple are
``timestep_spacing="trailing"``. Uniform / Normal (evenly spaced timesteps from the first to the last) are
``timestep_spacing="linspace"``, and A1111's "DDIM" (ComfyUI's ddim_uniform: every (1000 // n)-th timestep
from 1) is ``"leading"`` with ``steps_offset=1``. Each diffusers scheduler derives its timesteps from these
options its own way; the other A1111 / ComfyUI types have no diffusers option and are refused by name.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from types import MappingProxyType

SIGMA_FLAGS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")
AUTOMATIC = "Automatic"


@dataclass(frozen=True)
class ScheduleType:
    """One schedule type: A1111's label, the config options, and what A1111 adds to the infotext with it."""

    label: str
    flag: str | None = None  # the sigma flag set True (the other two are set False)
    spacing: str | None = None  # timestep_spacing, where the type is a spacing
    steps_offset: int | None = None
    infotext: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def needs(self) -> str:
        return self.flag or "timestep_spacing"


SCHEDULE_TYPES = {t.label: t for t in (
    ScheduleType("Uniform", spacing="linspace"),
    ScheduleType("Normal", spacing="linspace"),
    ScheduleType("Karras", flag="use_karras_sigmas"),
    ScheduleType("Exponential", flag="use_exponential_sigmas"),
    ScheduleType("Beta", flag="use_beta_sigmas",
                 infotext=MappingProxyType({"Beta schedule alpha": 0.6, "Beta schedule beta": 0.6})),
    ScheduleType("SGM Uniform", spacing="trailing"),
    ScheduleType("Simple", spacing="trailing"),
    ScheduleType("DDIM", spacing="leading", steps_offset=1),
)}
#: A1111 / ComfyUI schedule types with no diffusers option (named so that they are refused clearly)
UNAVAILABLE_SCHEDULE_TYPES = ("Polyexponential", "KL Optimal", "Align Your Steps", "Linear Quadratic")
#: other spellings: A1111's names and aliases, ComfyUI's scheduler names
_ALIASES = {"sgmuniform": "SGM Uniform", "sgm_uniform": "SGM Uniform", "ddim_uniform": "DDIM",
            "automatic": AUTOMATIC, "auto": AUTOMATIC, "kl_optimal": "KL Optimal", "align_your_steps": "Align Your Steps",
            "linear_quadratic": "Linear Quadratic", "ays": "Align Your Steps"}


def fold(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()


_BY_FOLDED = {fold(n): n for n in [*SCHEDULE_TYPES, *UNAVAILABLE_SCHEDULE_TYPES, AUTOMATIC]}
_BY_FOLDED.update({fold(k): v for k, v in _ALIASES.items()})


def schedule_label(name: str) -> str:
    """A1111's label of a schedule type name in any spelling (``karras``, ``sgm_uniform``, ``SGM Uniform``...);
    ValueError for a name that is none, or one diffusers has no option for."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"--schedule must be a schedule type name, got {name!r}; known: {', '.join(known_names())}")
    label = _BY_FOLDED.get(fold(name))
    if label is None:
        raise ValueError(f"unknown schedule type {name!r}; known: {', '.join(known_names())}")
    if label in UNAVAILABLE_SCHEDULE_TYPES:
        raise ValueError(f"schedule type {name!r} ({label}) is not available here: diffusers has no option for it; "
                         f"available: {', '.join(known_names())}")
    return label


def known_names() -> list[str]:
    return [AUTOMATIC, *SCHEDULE_TYPES]


def split_schedule_suffix(name: str) -> tuple[str, str | None]:
    """A legacy combined name ("DPM++ 2M Karras", "Euler a SGM Uniform") -> (sampler part, schedule label);
    (name, None) when it ends in no schedule type. The longest matching ending wins."""
    words = name.split()
    for n in range(min(3, len(words) - 1), 0, -1):
        label = _BY_FOLDED.get(fold(" ".join(words[-n:])))
        if label is not None and label != AUTOMATIC:
            return " ".join(words[:-n]), label
    return name, None


def options_for(label: str, cls, what: str) -> dict:
    """The config options of schedule type ``label`` for scheduler class ``cls``; ValueError naming
    ``what`` (the sampler) when the class has no such option."""
    schedule = SCHEDULE_TYPES[label]
    params = inspect.signature(cls.__init__).parameters
    if schedule.needs() not in params:
        takes = [t.label for t in SCHEDULE_TYPES.values() if t.needs() in params]
        raise ValueError(f"--schedule {label}: {what} cannot take that schedule type ({cls.__name__} has no "
                         f"{schedule.needs()} option); schedule types it takes: {', '.join(takes) or 'none'}")
    options = {flag: flag == schedule.flag for flag in SIGMA_FLAGS if flag in params}
    if schedule.spacing is not None:
        options["timestep_spacing"] = schedule.spacing
    if schedule.steps_offset is not None and "steps_offset" in params:
        options["steps_offset"] = schedule.steps_offset
    return options


def label_of(config, cls) -> str:
    """The schedule type a scheduler's config stands for: its sigma flag, else its timestep spacing
    (linspace -> Uniform, trailing -> SGM Uniform, leading -> DDIM), else Automatic (no option: the
    sampler's own schedule)."""
    params = inspect.signature(cls.__init__).parameters
    for schedule in SCHEDULE_TYPES.values():
        if schedule.flag and config.get(schedule.flag):
            return schedule.label
    spacing = config.get("timestep_spacing") if "timestep_spacing" in params else None
    by_spacing = {"linspace": "Uniform", "trailing": "SGM Uniform", "leading": "DDIM"}
    if spacing in by_spacing:
        return by_spacing[spacing]
    if any(flag in params for flag in SIGMA_FLAGS):  # no spacing option: evenly spaced timesteps
        return "Uniform"
    return AUTOMATIC


__all__ = ["AUTOMATIC", "SCHEDULE_TYPES", "ScheduleType", "UNAVAILABLE_SCHEDULE_TYPES", "known_names", "label_of",
           "options_for", "schedule_label", "split_schedule_suffix"]
