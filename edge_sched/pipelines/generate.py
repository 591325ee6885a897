"""``edge-sched generate``: run a pipeline from command-line arguments and write one image (a grid when
there are several) whose parameters record how it was made, A1111-style: a PNG ``parameters`` text
chunk, or EXIF for ``--out x.jpg`` / ``x.webp``; ``--out DIR/`` writes ``NNNNN-SEED-PROMPT.png`` there.

``--rng cpu|cuda`` picks the noise source: torch's CPU generator (the default) or torch's CUDA one
(the noise a PyTorch user gets on an NVIDIA GPU), recorded in the PNG as A1111 names them:
"RNG: CPU" and "RNG: NV".
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path

from ..random import TorchGenerator
from .base import DiffusionPipeline
from .memory import check_memory
from .image_io import a1111_parameters, file_stem, load_image, make_grid, output_target, save_image
from .unconditional import UnconditionalPipelineBase

#: --rng value -> A1111's name of that noise source (its "RNG" infotext field)
RNG_SOURCES = {"cpu": "CPU", "cuda": "NV"}


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


def call_arguments(pipe: DiffusionPipeline, args) -> dict:
    """The pipeline call for these arguments; options a pipeline cannot use are an error, not ignored."""
    kwargs: dict = {"generator": TorchGenerator(args.seed, device=_rng(args)), "output_type": "pil"}
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be at least 1, got {args.steps}")
        kwargs["num_inference_steps"] = args.steps
    if args.guidance is not None:
        kwargs["guidance_scale"] = args.guidance
    if getattr(args, "guidance_interval", None) is not None:
        kwargs["guidance_interval"] = args.guidance_interval
    if args.images < 1:
        raise ValueError(f"--images must be at least 1, got {args.images}")
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


def generate_to_file(pipe: DiffusionPipeline, args) -> Path:
    target = output_target(args.out)  # before any work: a bad --out costs nothing
    check_text(args)
    pipe.set_progress_bar_config(disable=args.quiet)
    kwargs = call_arguments(pipe, args)
    if not getattr(args, "no_memory_check", False):  # refuse before the first graph call
        chosen = [f"--size {args.size[0]}x{args.size[1]}" if args.size else "",
                  f"--images {args.images}" if args.images > 1 else ""]
        check_memory(pipe, kwargs, options=" with ".join(c for c in chosen if c))
    images = pipe(**kwargs).images
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    if rows * cols != len(images):  # pad the last row with black tiles
        from PIL import Image

        images = images + [Image.new("RGB", images[0].size)] * (rows * cols - len(images))
    picture = images[0] if len(images) == 1 else make_grid(images, rows, cols)
    width, height = images[0].size
    parameters = a1111_parameters(
        args.prompt or "", args.negative or "",
        steps=kwargs.get("num_inference_steps", _default(pipe, "num_inference_steps")),
        sampler=args.scheduler or type(pipe.scheduler).__name__,
        cfg_scale=kwargs.get("guidance_scale", getattr(pipe, "default_guidance_scale", None)
                             or _default(pipe, "guidance_scale")),
        seed=args.seed, width=width, height=height, model=str(args.model),
        denoising_strength=args.strength, rng=RNG_SOURCES[_rng(args)],
    )
    return save_image(picture, target, parameters, stem=file_stem(args.seed, args.prompt or ""))


def _rng(args) -> str:
    rng = getattr(args, "rng", "cpu")
    if rng not in RNG_SOURCES:
        raise ValueError(f"--rng must be one of {', '.join(RNG_SOURCES)}, got {rng!r}")
    return rng


def _default(pipe, name):
    param = inspect.signature(pipe.__call__).parameters.get(name)
    return None if param is None else param.default
