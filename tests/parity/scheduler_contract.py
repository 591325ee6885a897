"""What every scheduler must do, and the small table of how to drive each one.

``test_scheduler_contract.py`` states each contract once (return_dict=False, errors before
``set_timesteps``, bad input, add_noise, config round trips, save/load, from_config across
compatibles...) and applies it to every class in ``edge_sched.schedulers.SCHEDULER_CLASSES``,
against diffusers' class of the same name where there is one. This module says, per scheduler,
only what the defaults cannot guess: constructor arguments without a default, how its step is
called (RePaint's mask, Karras-VE's sigmas, VQ-Diffusion's class ids...), which step methods it has.

Both sides are driven by the same code through a ``Side``: ``OURS`` (numpy) or ``DIFFUSERS``
(torch tensors, ``torch.Generator`` seeded like our ``TorchGenerator``). Checks that several
per-scheduler files make on their own cases (refused by both, a repeated first timestep) live here
too, as functions.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from typing import Callable

import numpy as np
import pytest
import torch

import diffusers
from edge_sched.random import TorchGenerator
from edge_sched.schedulers import SCHEDULER_CLASSES, scheduler_class

from .harness import RTOL, initial_sample, model_fn
from .test_vq_diffusion import log_p_x0_model, start_sample

SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
#: Stable Diffusion 1.5's scheduler_config.json, as pipelines hand it from one class to another
SD15 = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
#: A1111 samplers diffusers does not have; validated against k-diffusion in test_kdiffusion_only.py
KDIFFUSION_ONLY = {"DPMAdaptiveScheduler", "DPMFastScheduler", "DPMPP2SAncestralScheduler"}
NAMES = sorted(SCHEDULER_CLASSES)
WITH_DIFFUSERS = [n for n in NAMES if n not in KDIFFUSION_ONLY]


def reference_class(name):
    """diffusers' class of that name (the score-SDE and Karras-VE ones live in diffusers.schedulers.deprecated)."""
    if hasattr(diffusers, name):
        return getattr(diffusers, name)
    from diffusers.schedulers import deprecated

    return getattr(deprecated, name)


# -- the two sides ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Side:
    name: str
    cls: Callable  # scheduler name -> class
    tensor: Callable  # numpy array -> this side's array
    numpy: Callable  # this side's array (or scalar) -> numpy
    generator: Callable  # seed -> this side's generator

    def __repr__(self):
        return self.name


def _to_torch(a):
    return torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a


def _to_numpy(a):
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return a if a is None else np.asarray(a)


OURS = Side("ours", scheduler_class, lambda a: a, _to_numpy, TorchGenerator)
DIFFUSERS = Side("diffusers", reference_class, _to_torch, _to_numpy,
                 lambda seed: torch.Generator("cpu").manual_seed(seed))


def takes(method, argument: str) -> bool:
    return argument in inspect.signature(method).parameters


#: a timestep for a scheduler that has none yet (not planned): what its first one would be
UNPLANNED_TIMESTEP = {"DDPMWuerstchenScheduler": 1.0, "ScoreSdeVpScheduler": 1.0, "PNDMScheduler": 901,
                      "KarrasVeScheduler": 9}


def first_timestep(scheduler):
    """The first scheduled timestep (DPM adaptive's timesteps are an iterator decided as it goes)."""
    timesteps = getattr(scheduler, "timesteps", None)
    if timesteps is None:
        return UNPLANNED_TIMESTEP[type(scheduler).__name__]
    return next(iter(timesteps))


def relative_error(ours, ref) -> float:
    """max |ours - ref| / max(1, max |ref|), the harness's measure; non-finite values must agree."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    finite = np.isfinite(ref)
    if not (np.array_equal(finite, np.isfinite(ours)) and np.array_equal(ours[~finite], ref[~finite], equal_nan=True)):
        return float("inf")
    if not finite.any():
        return 0.0
    return float(np.abs(ours[finite] - ref[finite]).max()) / max(1.0, float(np.abs(ref[finite]).max()))


def outcome(run):
    """(result, None) or (None, the exception) of one call."""
    try:
        return run(), None
    except Exception as error:  # noqa: BLE001 - compared against the other side by the caller
        return None, error


# -- how a step is called ----------------------------------------------------------------------

def denoiser_step(side, s, x, gen, t=None, scale=True, **kwargs):
    """``step(model_output, t, sample)`` at the first timestep (or ``t``), the model given its scaled
    input (``scale=False``: the sample itself, for a timestep that step is to refuse)."""
    t = first_timestep(s) if t is None else t
    model_in = s.scale_model_input(side.tensor(x), t) if scale and hasattr(s, "scale_model_input") else side.tensor(x)
    out = side.tensor(model_fn(side.numpy(model_in), side.numpy(t)))
    if takes(s.step, "generator"):
        kwargs.setdefault("generator", gen)
    return s.step(out, t, side.tensor(x), **kwargs)


def per_item_step(side, s, x, gen, **kwargs):
    """Würstchen: one time ratio per batch item."""
    t = side.tensor(np.full(x.shape[0], side.numpy(first_timestep(s)), dtype=np.float32))
    return s.step(side.tensor(model_fn(x, side.numpy(t))), t, side.tensor(x), generator=gen, **kwargs)


def repaint_inputs(x):
    known = np.tanh(initial_sample(100, x.shape)).astype(np.float32)
    mask = (np.random.default_rng(0).random((x.shape[0], 1) + x.shape[2:]) > 0.5).astype(np.float32)
    return known, mask


def repaint_step(side, s, x, gen, **kwargs):
    t = first_timestep(s)
    known, mask = repaint_inputs(x)
    out = side.tensor(model_fn(x, side.numpy(t)))
    return s.step(out, t, side.tensor(x), side.tensor(known), side.tensor(mask), gen, **kwargs)


def vq_step(side, s, x, gen, **kwargs):
    t = first_timestep(s)
    log_p = log_p_x0_model(x, side.numpy(t), s.config.num_vec_classes)
    return s.step(side.tensor(log_p), t, side.tensor(x), generator=gen, **kwargs)


def karras_ve_denoiser(x, sigma):
    sigma = np.float32(sigma)
    return (-x * sigma / (1 + sigma * sigma) + np.float32(0.1) * model_fn(x / (1 + sigma), sigma)).astype(np.float32)


def _karras_ve_sigmas(s):
    t = int(first_timestep(s))
    return s.schedule[t], s.schedule[t - 1]


def karras_ve_step(side, s, x, gen, **kwargs):
    sigma, sigma_prev = _karras_ve_sigmas(s)
    out = side.tensor(karras_ve_denoiser(x, side.numpy(sigma)))
    return s.step(out, sigma, sigma_prev, side.tensor(x), **kwargs)


def karras_ve_step_correct(side, s, x, gen, **kwargs):
    sigma, sigma_prev = _karras_ve_sigmas(s)
    first = s.step(side.tensor(karras_ve_denoiser(x, side.numpy(sigma))), sigma, sigma_prev, side.tensor(x))
    again = side.tensor(karras_ve_denoiser(side.numpy(first.prev_sample), side.numpy(sigma_prev)))
    return s.step_correct(again, sigma, sigma_prev, side.tensor(x), first.prev_sample, first.derivative, **kwargs)


def score_model(x, sigma):
    s2 = np.float32(1) + np.float32(sigma) ** 2
    return ((-x + np.float32(0.3) * model_fn(x / np.sqrt(s2), sigma)) / s2).astype(np.float32)


def score_sde_ve_plan(s, steps):
    s.set_timesteps(steps)
    s.set_sigmas(steps)


def score_sde_ve_step_pred(side, s, x, gen, **kwargs):
    score = side.tensor(score_model(x, side.numpy(s.sigmas[0])))
    return s.step_pred(score, first_timestep(s), side.tensor(x), generator=gen, **kwargs)


def score_sde_ve_step_correct(side, s, x, gen, **kwargs):
    score = side.tensor(score_model(x, side.numpy(s.sigmas[0])))
    return s.step_correct(score, side.tensor(x), generator=gen, **kwargs)


def score_sde_vp_step_pred(side, s, x, gen, **kwargs):
    t = side.tensor(np.full(x.shape[0], side.numpy(first_timestep(s)), dtype=np.float32))
    return s.step_pred(side.tensor(model_fn(x, side.numpy(t))), side.tensor(x), t, generator=gen, **kwargs)


def default_plan(s, steps):
    s.set_timesteps(steps)


# -- checks the per-scheduler files share ------------------------------------------------------

def refused_by_both(name, config=None, set_kwargs=None, ours_error=ValueError, match=None):
    """diffusers refuses this config (or these set_timesteps arguments) in some way; ours with
    ``ours_error`` matching ``match``."""
    config = config or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception):  # noqa: B017 - diffusers fails in many ways
            ref = reference_class(name).from_config(config)
            if set_kwargs is not None:
                ref.set_timesteps(**set_kwargs)
    with pytest.raises(ours_error, match=match):
        ours = scheduler_class(name).from_config(config)
        if set_kwargs is not None:
            ours.set_timesteps(**set_kwargs)


def repeated_first_timestep_fails_like_diffusers(name, config, steps, ref_error=IndexError, ours_error=IndexError,
                                                 match=None):
    """A schedule whose first timestep repeats (several sigmas round to one timestep): diffusers then
    starts at step index 1 and runs past the end; ours plans the same timesteps and fails the same way."""
    ref = reference_class(name).from_config(config)
    ours = scheduler_class(name).from_config(config)
    ref.set_timesteps(steps)
    ours.set_timesteps(steps)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    assert ours.timesteps[0] == ours.timesteps[1]
    x = initial_sample(0)
    with pytest.raises(ref_error):
        for t in ref.timesteps:
            ref.step(torch.from_numpy(model_fn(x, t.numpy())), t, torch.from_numpy(x))
    with pytest.raises(ours_error, match=match):
        for t in ours.timesteps:
            ours.step(model_fn(x, t), t, x)


# -- the table -----------------------------------------------------------------------------

SPACINGS = [dict(SD, timestep_spacing=s) for s in ("linspace", "leading", "trailing")]
FLOW = dict(use_flow_sigmas=True, flow_shift=3.0)
ZERO_SNR = dict(SD, rescale_betas_zero_snr=True)


@dataclasses.dataclass(frozen=True)
class Spec:
    """How to drive one scheduler class; the defaults fit a plain denoising scheduler."""

    kwargs: dict = dataclasses.field(default_factory=dict)  # constructor arguments without a default
    config: dict = dataclasses.field(default_factory=dict)  # for the contracts that compare outputs
    plan: Callable = default_plan  # (scheduler, steps): what a pipeline calls before the loop
    calls: dict = dataclasses.field(default_factory=lambda: {"step": denoiser_step})  # step methods
    sample: Callable = lambda seed: initial_sample(seed)  # noqa: E731
    #: steps before set_timesteps as diffusers' does (a fresh scheduler is planned for training, or needs none)
    plan_less: bool = False
    #: the call that must refuse before set_timesteps (default: the first of ``calls``)
    unplanned: str | None = None
    #: configs for the noising and schedule contracts, besides the defaults
    configs: tuple = ()
    schedule_configs: tuple = ()  # more configs for the schedule contract only
    img2img: tuple = ({}, 6)  # (config, begin index of 20 steps) for the image-to-image contract
    learned_variance: tuple = ()  # configs whose model predicts (mean, variance): the step takes the mean
    variance_noise: tuple = ()  # (config, step kwargs) where step takes the noise itself (variance_noise)
    #: configs for the save / round-trip contracts, besides the defaults and the SD 1.5 pipeline config
    saved_configs: tuple = ()
    noising: str | None = "add_noise"  # the forward-process method (flow matching: scale_noise)
    noise_timesteps: Callable | None = None  # (side, scheduler) -> timesteps; default: two scheduled ones
    #: noising stages diffusers cannot do, with the reason (the contract leaves them out)
    noise_stages_diffusers_lacks: dict = dataclasses.field(default_factory=dict)
    #: step arguments ours takes besides diffusers' (signature contract)
    extra_step_arguments: frozenset = frozenset()
    adaptive: bool = False  # the number of steps is the solver's (num_inference_steps is ignored)
    tensor_schedules: frozenset = frozenset()  # custom schedule arguments diffusers takes only as tensors
    refused_schedules: frozenset = frozenset()  # custom-schedule cases refused for another reason (its message)
    schedule_atol: float = 0.0  # absolute slack of the schedule contract's arrays, besides schedule_rtol
    schedule_rtol: float = RTOL
    #: timesteps interpolated through float32 log / exp / sqrt (an ulp from torch's); others are exact
    ulp_timesteps: bool = False
    #: diffusers steps a fresh scheduler (its training sigmas); ours asks for set_timesteps first
    diffusers_steps_unplanned: bool = False

    def make(self, side: Side, name: str, **config):
        return side.cls(name)(**{**self.kwargs, **config})

    def first_call(self):
        return self.unplanned or next(iter(self.calls))


VQ_CLASSES = 9
VQ_CUSTOM = dict(num_vec_classes=17, num_train_timesteps=20, alpha_cum_start=0.9999, alpha_cum_end=0.01,
                 gamma_cum_start=0.0001, gamma_cum_end=0.9)
DPM_SAVED = (dict(SD, use_karras_sigmas=True, algorithm_type="sde-dpmsolver++", solver_order=3),)
PLAN_LESS = ("CMStochasticIterativeScheduler", "DDPMScheduler", "DDPMParallelScheduler", "DPMSolverSDEScheduler",
             "HeunDiscreteScheduler", "IPNDMScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
             "LMSDiscreteScheduler", "ScoreSdeVeScheduler", "UnCLIPScheduler", "VQDiffusionScheduler")

SPECS: dict[str, Spec] = {name: Spec() for name in NAMES}
SPECS.update({
    "DPMAdaptiveScheduler": Spec(adaptive=True),
    "DDIMScheduler": Spec(configs=(SD, ZERO_SNR), variance_noise=tuple(
        (dict(SD, timestep_spacing="trailing"), {"eta": eta}) for eta in (0.0, 0.5, 1.0))),
    "DDIMParallelScheduler": Spec(variance_noise=((dict(SD, timestep_spacing="trailing"), {"eta": 1.0}),)),
    "DDPMScheduler": Spec(configs=(SD, ZERO_SNR, dict(beta_schedule="sigmoid"))),
    "DDPMWuerstchenScheduler": Spec(
        calls={"step": per_item_step},
        configs=(dict(scaler=2.0), dict(scaler=0.5), dict(s=0.02)),
        # any time ratio, one per batch item
        noise_timesteps=lambda side, s: side.tensor(np.array([0.9, 0.01], dtype=np.float32))),
    "DEISMultistepScheduler": Spec(configs=(SD, FLOW),
                                   saved_configs=(dict(SD, use_karras_sigmas=True, solver_order=3),)),
    "DPMSolverMultistepScheduler": Spec(
        configs=(SD, ZERO_SNR, FLOW), saved_configs=DPM_SAVED, schedule_rtol=1e-6, img2img=(SD, 8),
        learned_variance=tuple(dict(SD, variance_type=v, algorithm_type=a)
                               for v in ("learned", "learned_range") for a in ("dpmsolver++", "sde-dpmsolver++")),
        variance_noise=((dict(SD, algorithm_type="sde-dpmsolver++", solver_order=3), {}),)),
    # inverting runs h < 0, where the SDE noise weight sqrt(1 - e^-2h) is NaN in diffusers: the same NaNs
    "DPMSolverMultistepInverseScheduler": Spec(
        configs=(SD, FLOW), saved_configs=DPM_SAVED,
        learned_variance=tuple(dict(SD, variance_type=v) for v in ("learned", "learned_range")),
        variance_noise=((dict(SD, algorithm_type="sde-dpmsolver++"), {}),)),
    # begin mid-group: the order falls back until enough model outputs exist
    "DPMSolverSinglestepScheduler": Spec(
        configs=(SD, FLOW), schedule_rtol=1e-6, img2img=(dict(SD, solver_order=3), 7),
        learned_variance=tuple(dict(SD, variance_type=v, algorithm_type=a, solver_order=3)
                               for v in ("learned", "learned_range") for a in ("dpmsolver++", "sde-dpmsolver++"))),
    "DPMSolverSDEScheduler": Spec(config={"noise_sampler_seed": 0}, configs=tuple(SPACINGS), ulp_timesteps=True),
    "CosineDPMSolverMultistepScheduler": Spec(ulp_timesteps=True),
    "DDIMInverseScheduler": Spec(configs=(dict(timestep_spacing="trailing"),)),
    "EDMDPMSolverMultistepScheduler": Spec(
        ulp_timesteps=True,
        configs=(dict(sigma_schedule="exponential"),),
        saved_configs=(dict(algorithm_type="sde-dpmsolver++", solver_order=3, sigma_schedule="exponential"),),
        extra_step_arguments=frozenset({"variance_noise"})),
    "EDMEulerScheduler": Spec(
        diffusers_steps_unplanned=True, ulp_timesteps=True,
        configs=(dict(sigma_schedule="exponential", final_sigmas_type="sigma_min"),),
        tensor_schedules=frozenset({"sigmas"}),  # ramp positions, mapped through the schedule
        saved_configs=(dict(sigma_schedule="exponential", sigma_max=14.6, final_sigmas_type="sigma_min"),)),
    # zero-SNR sigmas reach 4096: its forward process is held by the grids' relative bound, not here
    "EulerAncestralDiscreteScheduler": Spec(configs=tuple(SPACINGS), schedule_configs=(ZERO_SNR,),
                                            diffusers_steps_unplanned=True),
    "EulerDiscreteScheduler": Spec(diffusers_steps_unplanned=True),
    "FlowMatchEulerDiscreteScheduler": Spec(
        noising="scale_noise", diffusers_steps_unplanned=True, configs=(dict(shift=3.0),),
        saved_configs=(dict(shift=3.0, use_dynamic_shifting=True),)),  # shift_terminal saved as null
    "FlowMatchHeunDiscreteScheduler": Spec(
        noising="scale_noise", configs=(dict(shift=3.0),), saved_configs=(dict(shift=3.0),),
        noise_timesteps=lambda side, s: s.timesteps[3]),  # one timestep for the batch
    "HeunDiscreteScheduler": Spec(configs=tuple(SPACINGS)),
    # alphas = sqrt(1 - betas^2) near 0 carry torch's float32 ulps as absolute differences (its own test's bound)
    "IPNDMScheduler": Spec(schedule_atol=RTOL, ulp_timesteps=True),
    "KarrasVeScheduler": Spec(calls={"step": karras_ve_step, "step_correct": karras_ve_step_correct},
                              unplanned="add_noise_to_input"),
    "KDPM2DiscreteScheduler": Spec(configs=tuple(SPACINGS), ulp_timesteps=True),
    "KDPM2AncestralDiscreteScheduler": Spec(configs=tuple(SPACINGS), ulp_timesteps=True),
    "LCMScheduler": Spec(configs=(ZERO_SNR, dict(beta_schedule="linear"))),
    "LMSDiscreteScheduler": Spec(configs=tuple(SPACINGS), img2img=(SD, 8)),  # its order follows the step index
    "PNDMScheduler": Spec(configs=(SD,)),
    "RePaintScheduler": Spec(calls={"step": repaint_step}),
    "SASolverScheduler": Spec(configs=(SD,), noise_stages_diffusers_lacks={
        "fresh": "diffusers indexes its alphas with the fresh scheduler's float timesteps (IndexError)"}),
    "ScoreSdeVeScheduler": Spec(plan=score_sde_ve_plan,
                                calls={"step_pred": score_sde_ve_step_pred, "step_correct": score_sde_ve_step_correct},
                                noise_timesteps=lambda side, s: side.tensor(np.array([0, 7]))),  # sigma indices
    "ScoreSdeVpScheduler": Spec(calls={"step_pred": score_sde_vp_step_pred}),
    "UniPCMultistepScheduler": Spec(configs=(SD, ZERO_SNR, FLOW), img2img=(dict(SD, solver_order=3), 6),
                                    refused_schedules=frozenset({"ascending sigmas"})),  # sigmas need flow sigmas
    "UnCLIPScheduler": Spec(saved_configs=(dict(clip_sample=False),)),
    "VQDiffusionScheduler": Spec(kwargs={"num_vec_classes": VQ_CLASSES}, calls={"step": vq_step},
                                 sample=lambda seed: start_sample({"num_vec_classes": VQ_CLASSES}, "random", seed),
                                 saved_configs=(VQ_CUSTOM,)),
})
SPECS = {name: dataclasses.replace(spec, plan_less=name in PLAN_LESS) for name, spec in SPECS.items()}
