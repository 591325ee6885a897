"""``edge-sched generate``: run a pipeline from command-line arguments and write its images with the
parameters that made them, A1111-style: a PNG ``parameters`` text chunk in A1111 1.10's format (sampler
and schedule type apart, model hash and name), or EXIF for ``--out x.jpg`` / ``x.webp``.

``--images N`` makes N images with seeds SEED, SEED+1, ... (as A1111's batches do: each image is the one a
single run with its seed gives), one file each (``--out DIR/``: new numbered ``NNNNN-SEED-PROMPT.png``;
``--out x.png``: ``x-SEED.png``, refused where one exists unless ``--overwrite``) plus a grid of them (in
``x.png`` / ``DIR/grid-NNNNN-...png``; ``--no-grid`` skips it). They run as one batch, one generator per
image, where that gives each image its single run's noise (one image per prompt, no Brownian tree), else
one run per seed (a Brownian tree without ``noise_sampler_seed`` is seeded from the image's seed, as A1111
seeds it). ``--seed -1`` draws a seed (as A1111: below 2**32 - 2) and records it.

``--rng cpu|cuda`` picks the noise source: torch's CPU generator (the default) or torch's CUDA one
(the noise a PyTorch user gets on an NVIDIA GPU), recorded in the PNG as A1111 names them:
"RNG: CPU" and "RNG: NV".
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
import os
import random
from pathlib import Path

import numpy as np

from ..random import TorchGenerator
from .base import DiffusionPipeline
from .flow_base import FlowPipelineBase, flow_solver_options
from .memory import check_memory
from .image_io import (
    a1111_parameters, file_stem, image_file_targets, load_image, make_grid, output_target, save_image,
)
from .infotext import a1111_sampler_name, a1111_schedule_type, model_hash, model_name, schedule_infotext
from .unconditional import UnconditionalPipelineBase

#: --rng value -> A1111's name of that noise source (its "RNG" infotext field)
RNG_SOURCES = {"cpu": "CPU", "cuda": "NV"}
#: A1111's random seeds (--seed -1): random.randrange(4294967294)
SEED_RANGE = 4294967294


#: pipeline call keyword -> the option that sets it, for "X does not take --option"
_FLAGS = {"width": "--size", "height": "--size", "negative_prompt": "--negative", "guidance_scale": "--guidance",
          "num_inference_steps": "--steps", "num_images_per_prompt": "--images", "strength": "--strength",
          "guidance_interval": "--guidance-interval", "image": "--init-image", "mask_image": "--mask"}
#: schedulers the denoising loop cannot drive although their step looks like (model_output, timestep, sample)
_NOT_FOR_THE_LOOP = {"VQDiffusionScheduler": "it denoises discrete VQ-VAE tokens (diffusers' VQDiffusionPipeline), "
                                             "not latents"}


def check_text(args) -> None:
    """PROMPT and --negative as UTF-8 before any work (the image would be lost at the end otherwise: its
    parameters are written as UTF-8). Bytes that are not UTF-8 reach Python as lone surrogates."""
    for flag, text in (("PROMPT", getattr(args, "prompt", None)), ("--negative", getattr(args, "negative", None))):
        if text is None:
            continue
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            try:
                what = f"byte {text[e.start].encode('utf-8', 'surrogateescape')[0]:#04x}"
            except UnicodeEncodeError:
                what = f"U+{ord(text[e.start]):04X}"
            raise ValueError(f"{flag} is not valid UTF-8 text ({what} at character {e.start}); "
                             "give the text in UTF-8") from None


def check_scheduler_for_loop(cls, name: str) -> None:
    """The schedulers `generate` can run: a ``step(model_output, timestep, sample, ...)`` on latents. Score-SDE
    (predictor/corrector steps), RePaint (needs the original image and mask), Karras VE (its own two-sample
    step) and VQ-Diffusion (discrete tokens) belong to their own diffusers pipelines."""
    label = f"--scheduler {name!r} ({cls.__name__})"
    why = _NOT_FOR_THE_LOOP.get(cls.__name__)
    step = getattr(cls, "step", None)
    if why is None and step is None:
        others = [m for m in ("step_pred", "step_correct") if hasattr(cls, m)]
        why = "it has no step()" + (f" (it steps with {' and '.join(others)})" if others else "")
    elif why is None:
        params = list(inspect.signature(step).parameters.values())[1:]
        positional = [p.name for p in params if p.default is inspect.Parameter.empty
                      and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        extra = positional[3:]
        if positional[:1] != ["model_output"] or extra:
            why = f"its step() takes ({', '.join(positional)}), not (model_output, timestep, sample)"
    if why is not None:
        raise ValueError(f"{label} cannot drive the denoising loop of `generate`: {why}; "
                         "choose another scheduler (edge-sched schedulers lists them)")


def choose_scheduler(args):
    """--scheduler NAME, --schedule TYPE and --set KEY=VALUE checked before the model loads (names, the
    schedule type the sampler takes, the keys its class has); returns ``choose(pipe)``, which sets
    ``pipe.scheduler`` from the pipeline's own config and returns the schedule type label asked for."""
    from ..schedulers import resolve_sampler

    choice = None
    if args.scheduler is not None:
        choice = resolve_sampler(args.scheduler, args.schedule)
        check_scheduler_for_loop(choice.cls, args.scheduler)
        parse_overrides(getattr(args, "set", None), choice.cls)
    elif args.schedule is not None:
        from ..schedulers.schedule_types import schedule_label

        schedule_label(args.schedule)  # the name now; whether the folder's scheduler takes it, after loading

    def choose(pipe) -> str | None:
        chosen = choice or resolve_sampler(type(pipe.scheduler).__name__, args.schedule)
        overrides = parse_overrides(getattr(args, "set", None), chosen.cls)
        if choice is not None or chosen.options or overrides:
            # on a flow folder, DPM++ / UniPC / DEIS / SA-Solver get the flow options nobody can pass here
            flow = flow_solver_options(chosen.cls.__name__, pipe.scheduler.config) \
                if isinstance(pipe, FlowPipelineBase) else {}
            pipe.scheduler = chosen.cls.from_config(pipe.scheduler.config, **{**flow, **chosen.options, **overrides})
        return chosen.schedule

    return choose


def _check_accepted(pipe, kwargs: dict) -> None:
    params = inspect.signature(pipe.__call__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in kwargs if k not in params]
    if not unknown:
        return
    flags = sorted({_FLAGS.get(k, k) for k in unknown})
    hint = ""
    if "--size" in flags and "image" in params:
        hint = ("; image-to-image keeps the size of --init-image (rounded down to a multiple of 8): "
                "resize the image instead")
    raise ValueError(f"{type(pipe).__name__} does not take {', '.join(flags)}{hint}")


def call_arguments(pipe: DiffusionPipeline, args, seed: int | None = None) -> dict:
    """The pipeline call for these arguments; options a pipeline cannot use are an error, not ignored."""
    seed = args.seed if seed is None else seed
    kwargs: dict = {"generator": TorchGenerator(seed, device=_rng(args)), "output_type": "pil"}
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be at least 1, got {args.steps}")
        kwargs["num_inference_steps"] = args.steps
    if args.guidance is not None:
        kwargs["guidance_scale"] = args.guidance
    if getattr(args, "guidance_interval", None) is not None:
        kwargs["guidance_interval"] = args.guidance_interval
    check_images(args.images)
    kwargs["num_images_per_prompt"] = args.images
    if isinstance(pipe, UnconditionalPipelineBase):
        unsupported = [flag for flag, value in (("--negative", args.negative), ("--size", args.size),
                                                ("--init-image", args.init_image), ("--mask", args.mask),
                                                ("--strength", args.strength is not None)) if value]
        if unsupported:
            raise ValueError(f"{type(pipe).__name__} does not take {', '.join(unsupported)}")
        if args.prompt:
            kwargs["prompt"] = args.prompt
        return kwargs
    if not args.prompt:
        raise ValueError(f"{type(pipe).__name__} needs a PROMPT")
    kwargs["prompt"] = args.prompt
    if args.negative:
        kwargs["negative_prompt"] = args.negative
    if args.size:
        kwargs["width"], kwargs["height"] = args.size
    if args.init_image or args.mask or args.strength is not None:
        image_pipe = getattr(pipe, "image_to_image_arguments", None)
        if image_pipe is None:
            raise ValueError(f"{type(pipe).__name__} does not take --init-image / --mask / --strength")
        init = load_image(args.init_image) if args.init_image else None
        mask = load_image(args.mask, mode="L") if args.mask else None
        if init is not None and mask is not None and init.size != mask.size:
            # the Python API resizes the mask as diffusers does; on the command line a mismatch is a mistake
            raise ValueError(f"--mask is {mask.width}x{mask.height} but --init-image is {init.width}x{init.height}; "
                             "they must be the same size")
        kwargs.update(image_pipe(init, mask, args.strength))
    _check_accepted(pipe, kwargs)
    return kwargs


# ---------------------------------------------------------------------------- seeds, progress, overrides
def check_images(images: int) -> None:
    if images < 1:
        raise ValueError(f"--images must be at least 1, got {images}")


def draw_seed(seed: int) -> int:
    """``--seed``: -1 draws one (A1111's range), other values below 0 are an error."""
    if seed == -1:
        return random.SystemRandom().randrange(SEED_RANGE)
    if seed < -1:
        raise ValueError(f"--seed must be -1 (draw a random seed, recorded in the image) or at least 0, got {seed}")
    return seed


def progress_disabled(args) -> bool:
    """--quiet, or TQDM_DISABLE set to a true value (1, true, yes, on), as tqdm reads it."""
    env = os.environ.get("TQDM_DISABLE", "").strip().lower()
    return bool(getattr(args, "quiet", False)) or env in ("1", "true", "yes", "on")


def parse_overrides(items, cls) -> dict:
    """``--set KEY=VALUE`` (repeatable) for scheduler class ``cls``: the value read as JSON when it parses
    (``true``, ``0.5``, ``null``), else kept as text (``trailing``); a key ``cls`` does not take is an error."""
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
    overrides = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r} is not of the form KEY=VALUE (e.g. --set timestep_spacing=trailing)")
        if key not in params:
            close = difflib.get_close_matches(key, params, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"--set {key}: {cls.__name__} has no option {key!r}.{hint} Its options: {', '.join(params)}")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def _one_image_per_run(pipe, kwargs) -> bool:
    labels = getattr(pipe, "labels_from_prompt", None)
    if labels is not None and kwargs.get("prompt"):
        return len(np.atleast_1d(labels(kwargs["prompt"]))) == 1
    return True


# ---------------------------------------------------------------------------- the run and its files
def generate_to_file(pipe: DiffusionPipeline, args, schedule: str | None = None) -> list[Path]:
    """Run the generation ``args`` ask for and write its files; returns the paths written (per-image files
    first, then the grid). ``schedule``: the schedule type label asked for (``--schedule``), for the PNG."""
    target = output_target(args.out)  # before any work: a bad --out costs nothing
    check_text(args)
    check_images(args.images)
    first = draw_seed(args.seed)
    seeds = [first + i for i in range(args.images)]
    files = image_file_targets(target, seeds, getattr(args, "overwrite", False)) if len(seeds) > 1 else [target]
    pipe.set_progress_bar_config(disable=progress_disabled(args))
    kwargs = call_arguments(pipe, args, seed=first)
    brownian = "Brownian" in str(getattr(type(pipe.scheduler), "noise_kind", ""))
    device = _rng(args)
    if len(seeds) > 1 and not brownian and _one_image_per_run(pipe, kwargs):
        calls = [dict(kwargs, generator=[TorchGenerator(s, device=device) for s in seeds])]
    else:  # each seed its own run: the same images as one run per seed
        calls = [dict(kwargs, generator=TorchGenerator(s, device=device), num_images_per_prompt=1) for s in seeds]
    if not getattr(args, "no_memory_check", False):  # refuse before the first graph call
        chosen = [f"--size {args.size[0]}x{args.size[1]}" if args.size else "",
                  f"--images {args.images}" if calls[0]["num_images_per_prompt"] > 1 else ""]
        check_memory(pipe, calls[0], options=" with ".join(c for c in chosen if c))
    groups: list[list] = []
    # a Brownian tree without noise_sampler_seed is drawn from a fresh random seed (as in diffusers): seeded
    # here from each image's seed, as A1111 seeds it, so that --seed reproduces the image
    own_scheduler = pipe.scheduler
    seed_tree = brownian and own_scheduler.config.get("noise_sampler_seed", 0) is None
    for seed, call in zip(seeds, calls):
        if seed_tree:
            pipe.scheduler = type(own_scheduler).from_config(own_scheduler.config, noise_sampler_seed=seed)
        images = pipe(**call).images
        per_seed = len(images) // (len(seeds) if len(calls) == 1 else 1)
        groups += [images[i:i + per_seed] for i in range(0, len(images), per_seed)]
    pipe.scheduler = own_scheduler
    width, height = groups[0][0].size
    sampler = a1111_sampler_name(pipe.scheduler)
    schedule_type = a1111_schedule_type(pipe.scheduler, schedule) if sampler != type(pipe.scheduler).__name__ else None
    fields = dict(
        steps=kwargs.get("num_inference_steps", _default(pipe, "num_inference_steps")), sampler=sampler,
        schedule_type=schedule_type,
        cfg_scale=kwargs.get("guidance_scale", getattr(pipe, "default_guidance_scale", None)
                             or _default(pipe, "guidance_scale")),
        width=width, height=height, model=model_name(args.model), model_hash=_model_hash(pipe),
        denoising_strength=args.strength, rng=RNG_SOURCES[device],
        after_rng=schedule_infotext(schedule_type) if schedule_type else None,
    )

    def parameters(seed: int) -> str:
        return a1111_parameters(args.prompt or "", args.negative or "", seed=seed, **fields)

    written = []
    folder_numbers = []
    for seed, group, where in zip(seeds, groups, files):
        path = save_image(_tile(group), where, parameters(seed), stem=file_stem(seed, args.prompt or ""))
        written.append(path)
        folder_numbers.append(path.name.split("-", 1)[0])
    if len(seeds) > 1 and getattr(args, "grid", True):
        grid = _tile([image for group in groups for image in group])
        stem = file_stem(first, args.prompt or "")
        number = int(folder_numbers[0]) if target.folder is not None else None
        written.append(save_image(grid, target, parameters(first), stem=stem, prefix="grid-", number=number))
    return written


def _tile(images: list):
    """One image, or a grid of several (rows of ceil(sqrt(n)), the last row padded with black tiles)."""
    if len(images) == 1:
        return images[0]
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    if rows * cols != len(images):
        from PIL import Image

        images = images + [Image.new("RGB", images[0].size)] * (rows * cols - len(images))
    return make_grid(images, rows, cols)


def _model_hash(pipe) -> str | None:
    folder = getattr(pipe, "folder", None)
    try:
        return model_hash(folder) if folder is not None else None
    except OSError:  # an unreadable weights file is the engine's error to give, not the infotext's
        return None


def _rng(args) -> str:
    rng = getattr(args, "rng", "cpu")
    if rng not in RNG_SOURCES:
        raise ValueError(f"--rng must be one of {', '.join(RNG_SOURCES)}, got {rng!r}")
    return rng


def _default(pipe, name):
    param = inspect.signature(pipe.__call__).parameters.get(name)
    return None if param is None else param.default
