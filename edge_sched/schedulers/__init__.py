"""numpy schedulers with diffusers' names, configs and numbers."""

from .ays import AysSchedules
from .a1111 import A1111_SAMPLERS, from_a1111_name
from .dpmsolver_sde import DPMSolverSDEScheduler
from .dpmsolver_singlestep import DPMSolverSinglestepScheduler
from .dpm_adaptive import DPMAdaptiveScheduler
from .dpm_fast import DPMFastScheduler
from .dpmpp_2s_ancestral import DPMPP2SAncestralScheduler
from .kdpm2 import KDPM2DiscreteScheduler
from .kdpm2_ancestral import KDPM2AncestralDiscreteScheduler
from .base import SchedulerMixin, SchedulerNotReadyError, SchedulerOutput
from .configuration import SCHEDULER_CLASSES, ConfigError, FrozenConfig
from .resolve import (
    SamplerChoice, SamplerNotAvailableError, UnknownSchedulerError, resolve_sampler, resolve_scheduler, scheduler_class,
    scheduler_from_name,
)
from .cm_stochastic_iterative import CMStochasticIterativeScheduler
from .ddim_parallel import DDIMParallelScheduler
from .ddpm_parallel import DDPMParallelScheduler
from .ddpm_wuerstchen import DDPMWuerstchenScheduler
from .karras_ve import KarrasVeOutput, KarrasVeScheduler
from .repaint import RePaintScheduler
from .score_sde_ve import ScoreSdeVeScheduler, SdeVeOutput
from .score_sde_vp import ScoreSdeVpScheduler
from .unclip import UnCLIPScheduler
from .cosine_dpmsolver_multistep import CosineDPMSolverMultistepScheduler
from .deis_multistep import DEISMultistepScheduler
from .dpmsolver_multistep_inverse import DPMSolverMultistepInverseScheduler
from .edm_dpmsolver_multistep import EDMDPMSolverMultistepScheduler
from .edm_euler import EDMEulerScheduler
from .flow_match_heun import FlowMatchHeunDiscreteScheduler
from .ipndm import IPNDMScheduler
from .sa_solver import SASolverScheduler
from .tcd import TCDScheduler, TCDSchedulerOutput
from .ddim import DDIMScheduler
from .ddim_inverse import DDIMInverseScheduler
from .ddpm import DDPMScheduler
from .dpmsolver_multistep import DPMSolverMultistepScheduler
from .euler import EulerDiscreteScheduler
from .euler_ancestral import EulerAncestralDiscreteScheduler
from .flow_match_euler import FlowMatchEulerDiscreteScheduler
from .heun import HeunDiscreteScheduler
from .lcm import LCMScheduler, LCMSchedulerOutput
from .lms import LMSDiscreteScheduler
from .pndm import PNDMScheduler
from .unipc_multistep import UniPCMultistepScheduler
from .vq_diffusion import VQDiffusionScheduler, VQDiffusionSchedulerOutput

__all__ = [
    "A1111_SAMPLERS",
    "from_a1111_name",
    "DPMSolverSDEScheduler",
    "DPMSolverSinglestepScheduler",
    "DPMAdaptiveScheduler",
    "DPMFastScheduler",
    "DPMPP2SAncestralScheduler",
    "KDPM2DiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler",
    "VQDiffusionScheduler",
    "VQDiffusionSchedulerOutput",
    "CosineDPMSolverMultistepScheduler",
    "DEISMultistepScheduler",
    "DPMSolverMultistepInverseScheduler",
    "EDMDPMSolverMultistepScheduler",
    "EDMEulerScheduler",
    "FlowMatchHeunDiscreteScheduler",
    "IPNDMScheduler",
    "SASolverScheduler",
    "TCDScheduler",
    "TCDSchedulerOutput",
    "CMStochasticIterativeScheduler",
    "DDIMParallelScheduler",
    "DDPMParallelScheduler",
    "DDPMWuerstchenScheduler",
    "KarrasVeOutput",
    "KarrasVeScheduler",
    "RePaintScheduler",
    "ScoreSdeVeScheduler",
    "SdeVeOutput",
    "ScoreSdeVpScheduler",
    "UnCLIPScheduler",
    "AysSchedules",
    "ConfigError",
    "DDIMInverseScheduler",
    "DDIMScheduler",
    "DDPMScheduler",
    "DPMSolverMultistepScheduler",
    "EulerAncestralDiscreteScheduler",
    "EulerDiscreteScheduler",
    "FlowMatchEulerDiscreteScheduler",
    "HeunDiscreteScheduler",
    "LCMScheduler",
    "LCMSchedulerOutput",
    "LMSDiscreteScheduler",
    "PNDMScheduler",
    "UniPCMultistepScheduler",
    "FrozenConfig",
    "SCHEDULER_CLASSES",
    "SchedulerMixin",
    "SchedulerNotReadyError",
    "SchedulerOutput",
    "scheduler_class",
    "SamplerChoice",
    "SamplerNotAvailableError",
    "UnknownSchedulerError",
    "resolve_sampler",
    "resolve_scheduler",
    "scheduler_from_name",
]
