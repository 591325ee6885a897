"""A1111 / k-diffusion sampler names -> edge_sched schedulers.

The table is diffusers' own mapping (docs: api/schedulers/overview, "A1111/k-diffusion ->
Diffusers"): the scheduler class and the init options each name stands for. The four names
diffusers marks N/A (DPM++ 2S a [Karras], DPM adaptive, DPM fast) map to our ports of
k-diffusion's samplers in kdiffusion_only.py.

Note (from that table, kept as is): "DPM++ SDE" maps to DPMSolverSinglestepScheduler; k-diffusion's
``sample_dpmpp_sde`` itself is what DPMSolverSDEScheduler implements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from .base import SchedulerMixin


@dataclass(frozen=True)
class A1111Sampler:
    """One row: the A1111 name, the scheduler class name and the init options it implies."""

    name: str
    scheduler: str
    options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    in_diffusers: bool = True  # False: one of the rows diffusers marks N/A (ours from k-diffusion)


def _row(name, scheduler, in_diffusers=True, **options):
    return A1111Sampler(name, scheduler, MappingProxyType(options), in_diffusers)


KARRAS = {"use_karras_sigmas": True}
SDE = {"algorithm_type": "sde-dpmsolver++"}
# A1111 passes its "eta (ancestral)" setting, default 1, to every k-diffusion sampler taking eta:
# its DPM fast / adaptive are the ancestral variants (k-diffusion's own default is eta = 0)
A1111_ETA = {"eta": 1.0}

A1111_SAMPLERS = {
    row.name: row
    for row in (
        _row("DPM++ 2M", "DPMSolverMultistepScheduler"),
        _row("DPM++ 2M Karras", "DPMSolverMultistepScheduler", **KARRAS),
        _row("DPM++ 2M SDE", "DPMSolverMultistepScheduler", **SDE),
        _row("DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler", **KARRAS, **SDE),
        _row("DPM++ 2S a", "DPMPP2SAncestralScheduler", False),
        _row("DPM++ 2S a Karras", "DPMPP2SAncestralScheduler", False, **KARRAS),
        _row("DPM++ SDE", "DPMSolverSinglestepScheduler"),
        _row("DPM++ SDE Karras", "DPMSolverSinglestepScheduler", **KARRAS),
        _row("DPM2", "KDPM2DiscreteScheduler"),
        _row("DPM2 Karras", "KDPM2DiscreteScheduler", **KARRAS),
        _row("DPM2 a", "KDPM2AncestralDiscreteScheduler"),
        _row("DPM2 a Karras", "KDPM2AncestralDiscreteScheduler", **KARRAS),
        _row("DPM adaptive", "DPMAdaptiveScheduler", False, **A1111_ETA),
        _row("DPM fast", "DPMFastScheduler", False, **A1111_ETA),
        _row("Euler", "EulerDiscreteScheduler"),
        _row("Euler a", "EulerAncestralDiscreteScheduler"),
        _row("Heun", "HeunDiscreteScheduler"),
        _row("LMS", "LMSDiscreteScheduler"),
        _row("LMS Karras", "LMSDiscreteScheduler", **KARRAS),
    )
}


# ---- beyond diffusers' table: the command line's wider vocabulary (resolve.resolve_sampler) ----------------
#: A1111 1.6+ sampler names diffusers' table lacks, mapped where a scheduler of ours runs the same method with
#: A1111's default settings (UniPC: its "UniPC variant" bh1 and "UniPC order" 3; PLMS: PNDM without its
#: Runge-Kutta warm-up; DDIM: its eta 0). Schedules come apart from the name (schedule_types.py).
A1111_EXTRA_SAMPLERS = {
    row.name: row
    for row in (
        _row("DPM++ 2M SDE Heun", "DPMSolverMultistepScheduler", **SDE, solver_type="heun"),
        _row("DDIM", "DDIMScheduler"),
        _row("PLMS", "PNDMScheduler", skip_prk_steps=True),
        _row("UniPC", "UniPCMultistepScheduler", solver_order=3, solver_type="bh1"),
        _row("LCM", "LCMScheduler"),
    )
}
#: A1111 1.9+'s "Automatic" schedule type: the sampler's own default (its samplers' 'scheduler' option);
#: the k-diffusion samplers without one use the model's evenly spaced sigmas, the timestep samplers
#: (DDIM, PLMS, UniPC) every (1000 // steps)-th timestep from 1
A1111_AUTOMATIC_SCHEDULE = {
    "DPM++ 2M": "Karras", "DPM++ SDE": "Karras", "DPM++ 2M SDE": "Exponential", "DPM++ 2M SDE Heun": "Exponential",
    "DPM++ 2S a": "Karras", "DPM2": "Karras", "DPM2 a": "Karras", "Euler": "Uniform", "Euler a": "Uniform",
    "LMS": "Uniform", "Heun": "Uniform", "DDIM": "DDIM", "PLMS": "DDIM", "UniPC": "DDIM",
}
#: ComfyUI's KSampler names -> the A1111 name of the same sampler (the *_gpu variants draw their Brownian
#: noise on the GPU in ComfyUI; here it is the same tree on the CPU)
COMFYUI_SAMPLERS = {
    "euler": "Euler", "euler_ancestral": "Euler a", "heun": "Heun", "dpm_2": "DPM2", "dpm_2_ancestral": "DPM2 a",
    "lms": "LMS", "dpm_fast": "DPM fast", "dpm_adaptive": "DPM adaptive", "dpmpp_2s_ancestral": "DPM++ 2S a",
    "dpmpp_sde": "DPM++ SDE", "dpmpp_sde_gpu": "DPM++ SDE", "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_gpu": "DPM++ 2M SDE", "dpmpp_2m_sde_heun": "DPM++ 2M SDE Heun",
    "dpmpp_2m_sde_heun_gpu": "DPM++ 2M SDE Heun", "ddim": "DDIM", "uni_pc": "UniPC", "lcm": "LCM",
}
#: names people use that no scheduler here reproduces: refused as "not available", with the reason
_NO_PORT = "no scheduler here implements it (diffusers has none)"
UNAVAILABLE_SAMPLERS = {
    **{name: _NO_PORT for name in ("DPM++ 3M SDE", "Restart", "DDIM CFG++", "Euler CFG++", "Euler a CFG++",
                                   "HeunPP2", "DPM++ 2M CFG++", "DPM++ 2S a CFG++")},
    **{name: _NO_PORT for name in (
        "euler_cfg_pp", "euler_ancestral_cfg_pp", "heunpp2", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_2m_cfg_pp",
        "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ipndm", "ipndm_v", "res_multistep", "res_multistep_cfg_pp",
        "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "gradient_estimation",
        "gradient_estimation_cfg_pp", "er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece")},
    # same names, other methods: ours would not give ComfyUI's images
    "ddpm": "ComfyUI's ddpm sampler adds noise of variance 1 - alpha, diffusers' DDPMScheduler its posterior's",
    "deis": "ComfyUI's deis (the DEIS authors' tableau) is not diffusers' DEISMultistepScheduler (log-rho form)",
    "uni_pc_bh2": "ComfyUI's uni_pc_bh2 is not mapped; use --scheduler UniPCMultistepScheduler --set solver_type=bh2",
}


def fold_name(name: str) -> str:
    """A sampler name with case and repeated spaces folded away: how the table is looked up."""
    return " ".join(name.split()).casefold()


_BY_FOLDED = {fold_name(n): row for n, row in A1111_SAMPLERS.items()}


def find_a1111_sampler(name: str) -> A1111Sampler | None:
    """The table row of an A1111 sampler name (case and repeated spaces ignored), or None."""
    return _BY_FOLDED.get(fold_name(name))


# resolve.py builds on this table, hence the imports inside the two functions below


def a1111_sampler(name: str) -> A1111Sampler:
    """The table row of an A1111 sampler name; resolve.UnknownSchedulerError for any other name."""
    from .resolve import resolve_scheduler

    resolve_scheduler(name, class_names=False)  # raises for a name that is not in the table
    return find_a1111_sampler(name)


def from_a1111_name(name: str, config=None, **overrides) -> SchedulerMixin:
    """The scheduler an A1111 sampler name stands for, built from ``config`` (a scheduler config
    dict, e.g. a pipeline's scheduler_config.json, or a scheduler) with the row's init options;
    ``overrides`` win over both."""
    from .resolve import scheduler_from_name

    return scheduler_from_name(name, config, class_names=False, **overrides)


__all__ = ["A1111_AUTOMATIC_SCHEDULE", "A1111_EXTRA_SAMPLERS", "COMFYUI_SAMPLERS", "UNAVAILABLE_SAMPLERS",
           "A1111_SAMPLERS", "A1111Sampler", "a1111_sampler", "find_a1111_sampler", "fold_name", "from_a1111_name"]
