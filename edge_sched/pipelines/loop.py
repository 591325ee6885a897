"""The denoising loop: one for every pipeline (text-to-image, image-to-image, inpainting, SDXL, LCM,
DDPM/DDIM), as openvino.genai serves its pipelines with one loop and a blend hook.

Each step: the latents (doubled for classifier-free guidance), ``scheduler.scale_model_input``, the
pipeline's input hook (the 9-channel inpainting concat), the UNet with the pipeline's extra feeds (text
embeddings, SDXL's added conditioning, LCM's ``timestep_cond``, class labels), run in chunks of the
graph's static batch when it has one (in low-memory mode one image row at a time), guidance (and
guidance rescale), ``scheduler.step``, the pipeline's blend hook (latent-masking inpainting), the NaN
check, ``callback_on_step_end``, progress.

diffusers' contracts kept here: guidance is re-read every step (``pipe._guidance_scale``), so a
callback may switch it off (diffusers' ``SDCFGCutoffCallback`` sets it to 0 and keeps the conditional
half of ``prompt_embeds``); ``pipe._interrupt = True`` (from a callback) skips the remaining steps; the
callback sees the tensors it names, and what it returns replaces them.

``guidance_interval=(sigma_low, sigma_high)`` (Kynkaanniemi et al. 2024, "Applying guidance in a limited
interval improves sample and distribution quality"): guidance applies only where sigma_low < sigma <=
sigma_high; the other steps run the UNet once, on the conditional half of every batch-doubled input.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from .guidance import classifier_free_guidance


class NonFiniteLatentsError(FloatingPointError):
    """NaN or inf appeared in the latents; says at which step."""


#: state, guided -> the UNet feeds beyond ``sample`` and ``timestep`` (each batch-first)
UnetFeeds = Callable[[dict, bool], dict]


@dataclasses.dataclass(frozen=True)
class Denoiser:
    """The graph the loop calls each step. ``component``: its folder name; ``sample``: its latent input
    (also the input whose first dim is the batch); ``outputs``: its prediction output, the first name the
    graph has (optimum's ONNX and OpenVINO exporters name a transformer's differently); ``timestep``: the
    graph's timestep from the schedule's (FLUX's transformer takes t / 1000), None: as is;
    ``scale_model_input``: whether ``scheduler.scale_model_input`` applies (diffusers' flow-matching
    pipelines never call it; their flow schedulers leave the input unchanged or have no such method)."""

    component: str = "unet"
    sample: str = "sample"
    outputs: tuple[str, ...] = ("out_sample",)
    timestep: Callable[[object], object] | None = None
    scale_model_input: bool = True


UNET = Denoiser()


@dataclasses.dataclass
class LoopHooks:
    """What a pipeline adds to the one loop.

    ``unet_feeds(state, guided)``: the extra denoiser inputs, read from the callback state each step (so a
    callback that replaces ``prompt_embeds`` is heard). ``model_input(state, x)``: applied to the scaled
    model input (the inpainting UNet's mask and masked-image channels). ``blend(state, latents, i)``:
    applied to the stepped latents (latent-masking inpainting). ``keep_denoised``: the step's second
    output is kept as ``state["denoised"]`` (LCM decodes it). ``denoiser``: which graph, fed how (default:
    the UNet). ``fixed_feeds``: inputs without a batch axis, fed whole to every call (FLUX's token ids).
    ``guidance_scale()``: the classifier-free guidance scale, read each step (default ``pipe.guidance_scale``;
    FLUX's ``true_cfg_scale``, its ``guidance_scale`` being the embedded guidance).
    """

    unet_feeds: UnetFeeds
    model_input: Callable[[dict, np.ndarray], np.ndarray] | None = None
    blend: Callable[[dict, np.ndarray, int], np.ndarray] | None = None
    keep_denoised: bool = False
    denoiser: Denoiser = UNET
    fixed_feeds: dict = dataclasses.field(default_factory=dict)
    guidance_scale: Callable[[], float] | None = None


def denoise(pipe, timesteps, state: dict, hooks: LoopHooks, step_kwargs: dict, callback=None,
            callback_inputs=("latents",)) -> dict:
    """Run the loop over ``timesteps`` from ``state["latents"]``; returns the final state."""
    scheduler = pipe.scheduler
    spec = hooks.denoiser
    unet = pipe.graph(spec.component)
    with pipe.progress_bar(total=len(timesteps) if hasattr(timesteps, "__len__") else None) as bar:
        for i, t in enumerate(timesteps):
            if pipe.interrupt:
                break  # diffusers skips the remaining steps; adaptive schedules must not spin
            doubled = pipe.do_classifier_free_guidance  # the state holds [uncond, cond] tensors
            latents = state["latents"]
            model_input = np.concatenate([latents, latents]) if doubled else latents
            if spec.scale_model_input:
                model_input = scheduler.scale_model_input(model_input, t)
            if hooks.model_input is not None:
                model_input = hooks.model_input(state, model_input)
            feeds = hooks.unet_feeds(state, doubled)
            guided = doubled and in_guidance_interval(pipe.guidance_interval, scheduler, t)
            if doubled and not guided:  # outside the interval: one conditional UNet call
                n = latents.shape[0]
                model_input = model_input[n:]
                feeds = {k: v[n:] if v.shape[0] == 2 * n else v for k, v in feeds.items()}
            prediction = _run_denoiser(pipe, unet, spec, model_input, t, feeds, hooks.fixed_feeds)
            if guided:
                uncond, cond = np.split(prediction, 2)
                scale = pipe.guidance_scale if hooks.guidance_scale is None else hooks.guidance_scale()
                prediction = classifier_free_guidance(uncond, cond, scale, pipe.guidance_rescale)
            out = scheduler.step(prediction, t, latents, **step_kwargs, return_dict=False)
            if hooks.keep_denoised:
                if len(out) < 2:
                    raise ValueError(f"{type(scheduler).__name__}.step returns no denoised sample; the "
                                     f"{type(pipe).__name__} decodes it: use LCMScheduler or TCDScheduler")
                state["denoised"] = out[1]
            latents = out[0]
            if hooks.blend is not None:
                latents = hooks.blend(state, latents, i)
            state["latents"] = latents
            check_finite(latents, i, t)
            if callback is not None:
                run_callback(callback, pipe, i, t, state, callback_inputs)
            bar.update()
    pipe.graphs.done_with(spec.component)
    return state


def _run_denoiser(pipe, graph, spec: Denoiser, sample: np.ndarray, t, extra: dict, fixed: dict) -> np.ndarray:
    timestep = t if spec.timestep is None else spec.timestep(t)

    def feeds(rows: slice, n: int) -> dict:
        return {spec.sample: sample[rows], "timestep": pipe.timestep_feed(graph, timestep, n),
                **{k: v[rows] for k, v in extra.items()}, **fixed}

    one_row = 1 if pipe.graphs.low_memory else None
    out = pipe.run_batched(graph, feeds, sample.shape[0], spec.sample, one_row)
    name = next((n for n in spec.outputs if n in out), None)
    if name is None:
        if len(out) != 1:
            raise ValueError(f"{graph.path}: the {spec.component} graph has none of the outputs {', '.join(spec.outputs)} "
                             f"(it has {', '.join(out)})")
        name = next(iter(out))
    return out[name].astype(np.float32, copy=False)


def noise_level(scheduler, t) -> float:
    """The current step's sigma in the scheduler's own terms: its ``sigmas`` entry where it keeps one
    (Euler, DPM-Solver, flow matching, ...), else sqrt((1 - alpha_bar) / alpha_bar) at ``t`` (DDIM, DDPM,
    PNDM, LCM: variance-preserving schedules)."""
    sigmas, index = getattr(scheduler, "sigmas", None), getattr(scheduler, "step_index", None)
    if sigmas is not None and index is not None and np.ndim(sigmas) == 1 and index < len(sigmas):
        return float(sigmas[index])
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None:
        raise ValueError(f"guidance_interval needs a noise level; {type(scheduler).__name__} keeps no sigmas "
                         "or alphas_cumprod")
    t = float(np.asarray(t).reshape(-1)[0])
    alpha = float(np.interp(t, np.arange(len(alphas)), np.asarray(alphas, dtype=np.float64)))
    return float(np.sqrt((1 - alpha) / alpha))


def in_guidance_interval(interval, scheduler, t) -> bool:
    """Guidance applies where sigma_low < sigma <= sigma_high (Kynkaanniemi et al. 2024); None: always."""
    if interval is None:
        return True
    low, high = interval
    return low < noise_level(scheduler, t) <= high


def check_guidance_interval(interval):
    """None, or (sigma_low, sigma_high) with 0 <= sigma_low <= sigma_high (inf allowed at the top)."""
    if interval is None:
        return None
    try:
        low, high = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"guidance_interval must be (sigma_low, sigma_high), got {interval!r}") from None
    if not (0 <= low <= high) or np.isnan(high):
        raise ValueError(f"guidance_interval must have 0 <= sigma_low <= sigma_high, got {interval!r}")
    return low, high


def check_finite(latents: np.ndarray, i: int, t) -> None:
    if not np.isfinite(latents).all():
        raise NonFiniteLatentsError(
            f"the latents became NaN/inf at step {i} (timestep {np.asarray(t).item()}); "
            "the graphs or their precision (fp16?) overflowed"
        )


def callback_names(pipe, callback, names) -> tuple[str, ...]:
    """The tensor names a callback gets, checked against the pipeline's ``_callback_tensor_inputs`` before the
    first step (diffusers' ``check_inputs``). Callback objects with ``tensor_inputs`` (diffusers'
    ``PipelineCallback`` idea) name their own."""
    names = tuple(getattr(callback, "tensor_inputs", None) or names or ())
    allowed = type(pipe)._callback_tensor_inputs
    unknown = [k for k in names if k not in allowed]
    if unknown:
        raise ValueError(f"callback_on_step_end_tensor_inputs {unknown} are not available in {type(pipe).__name__}; "
                         f"allowed: {', '.join(allowed)}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback_on_step_end must be callable, got {type(callback).__name__}")
    return names


def run_callback(callback, pipe, i: int, t, state: dict, names) -> None:
    out = callback(pipe, i, t, {k: state[k] for k in names})
    if out is None:
        return
    if not isinstance(out, dict):
        raise TypeError(f"callback_on_step_end must return a dict of tensors (or None), got {type(out).__name__}")
    allowed = type(pipe)._callback_tensor_inputs
    unknown = [k for k in out if k not in allowed]
    if unknown:
        raise ValueError(f"callback_on_step_end returned unknown tensors {unknown}; allowed: {', '.join(allowed)}")
    state.update(out)
