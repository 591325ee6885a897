"""The ``edge-sched`` command line."""

from __future__ import annotations

import argparse
import inspect
import math
import sys

from . import __version__
from .interrupt import exit_status


def scheduler_rows() -> list[dict]:
    """One row per scheduler, read off the classes themselves (nothing hand-maintained)."""
    from .schedulers import A1111_SAMPLERS, SCHEDULER_CLASSES

    a1111: dict[str, list[str]] = {}
    for sampler in A1111_SAMPLERS.values():
        a1111.setdefault(sampler.scheduler, []).append(sampler.name)
    rows = []
    for name in sorted(SCHEDULER_CLASSES):
        cls = SCHEDULER_CLASSES[name]
        set_params = inspect.signature(cls.set_timesteps).parameters
        # score-SDE schedulers have step_pred / step_correct instead of step
        step = getattr(cls, "step", None) or getattr(cls, "step_pred")
        step_params = inspect.signature(step).parameters
        options = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        in_diffusers = all(s.in_diffusers for s in A1111_SAMPLERS.values() if s.scheduler == name)
        rows.append(
            {
                "scheduler": name,
                "A1111": "; ".join(a1111.get(name, [])) or "-",
                "order": cls.order,
                "noise": getattr(cls, "noise_kind", "stochastic" if "generator" in step_params else "deterministic"),
                "timesteps=": "yes" if "timesteps" in set_params else "-",
                "sigmas=": "yes" if "sigmas" in set_params else "-",
                "parity vs": "diffusers" if in_diffusers else "k-diffusion",
                "options": ", ".join(options),
            }
        )
    return rows


def format_table(rows: list[dict], markdown: bool = False) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    if markdown:
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
        return "\n".join(lines)
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols[:-1]}
    fmt = lambda r: "  ".join(str(r[c]).ljust(widths[c]) for c in cols[:-1]) + "  " + str(r[cols[-1]])
    header = {c: c for c in cols}
    return "\n".join([fmt(header), *(fmt(r) for r in rows)])


def cmd_schedulers(args) -> int:
    print(format_table(scheduler_rows(), markdown=args.markdown))
    return 0


def cmd_export(args) -> int:
    # the workstation side (torch, diffusers, optimum) is imported only when this command runs
    try:
        import export
    except ImportError as e:
        raise RuntimeError(
            f"`edge-sched export` needs the export extra (torch, diffusers, optimum): "
            f"pip install 'edge-sched[export]' ({e})"
        ) from e

    overrides = dict(export.parse_override(item) for item in args.set or [])
    manifest = export.export_pipeline(
        args.source,
        args.output,
        format=args.format,
        dtype=args.dtype,
        scheduler=args.scheduler,
        scheduler_overrides=overrides,
        overwrite=args.overwrite,
        revision=args.revision,
        token=args.token,
        cache_dir=args.cache_dir,
        local_files_only=args.local_files_only,
        allow_pickle=args.allow_pickle,
        static_shapes=export.parse_static_shapes(args.static_shapes) if args.static_shapes else None,
        weight_compression=args.weight_compression,
        fuse_attention=args.fuse_attention,
        config=args.config,
    )
    for name, numbers in manifest["validation"].items():
        print(f"{name}: max abs diff {numbers['max_abs']:.3g}, max rel diff {numbers['max_rel']:.3g}")
    print(f"exported {manifest['pipeline']} to {args.output} ({manifest['format']}, {manifest['dtype']}, "
          f"scheduler {manifest['scheduler']['class']}) in {manifest['export_seconds']:.1f} s")
    return 0


def _interval(text: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (two sigmas, e.g. 0.28,5.42), got {text!r}") from None
    return low, high


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x512 (width x height), got {text!r}") from None
    if w < 1 or h < 1:  # the pipelines read 0 as "the model's default", so 0x0 would run at another size
        raise argparse.ArgumentTypeError(f"width and height must be positive, got {text!r}")
    return w, h


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _scheduler_name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a diffusers class name or an A1111 name "
                                         "(edge-sched schedulers lists them)")
    return text


def cmd_generate(args) -> int:
    from .pipelines import DiffusionPipeline, StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline
    from .pipelines.generate import check_images, check_text, choose_scheduler, draw_seed, generate_to_file
    from .pipelines.image_io import output_target

    # what can be checked without the model is checked before loading it
    output_target(args.out)
    check_text(args)
    check_images(args.images)
    draw_seed(args.seed)  # a --seed below -1 is refused before loading (the seed itself is drawn later)
    choose = choose_scheduler(args)  # names, schedule type and --set keys, before loading
    index_class = _model_index_class(args.model)
    if _unconditional(index_class):
        cls = DiffusionPipeline  # no image-to-image class for it: the pipeline refuses --init-image / --mask itself
    elif args.mask:  # an inpainting folder keeps its class; a plain SD folder inpaints by latent masking
        cls = DiffusionPipeline if "Inpaint" in index_class else StableDiffusionInpaintPipeline
    elif args.init_image:
        from .pipelines.base import PIPELINE_CLASSES

        # a family's own image-to-image class where there is one (SD3, FLUX: <Name>Img2ImgPipeline), else SD's
        cls = PIPELINE_CLASSES.get(index_class.replace("Pipeline", "Img2ImgPipeline"), StableDiffusionImg2ImgPipeline)
    else:
        cls = DiffusionPipeline
    pipe = cls.from_pretrained(args.model, backend=args.backend, device=args.device, providers=args.provider,
                               allow_cpu_fallback=args.allow_cpu_fallback, low_memory=args.low_memory,
                               precision=args.precision)
    schedule = choose(pipe)
    for path in generate_to_file(pipe, args, schedule=schedule):
        print(path)
    return 0


def _unconditional(index_class: str) -> bool:
    from .pipelines.base import PIPELINE_CLASSES
    from .pipelines.unconditional import UnconditionalPipelineBase

    cls = PIPELINE_CLASSES.get(index_class)
    return cls is not None and issubclass(cls, UnconditionalPipelineBase)


def _model_index_class(model) -> str:
    from .pipelines.loading import read_model_index, resolve_folder

    return str(read_model_index(resolve_folder(model)).get("_class_name", ""))


def cmd_set_scheduler(args) -> int:
    try:
        import export
    except ImportError as e:
        raise RuntimeError(f"`edge-sched set-scheduler` needs the export extra: pip install 'edge-sched[export]' ({e})") from e
    overrides = dict(export.parse_override(item) for item in args.set or [])
    manifest = export.set_scheduler(args.folder, args.scheduler, **overrides)
    print(f"{args.folder}: scheduler {manifest['scheduler']['class']}")
    return 0


def cmd_export_loop(args) -> int:
    try:
        import export
    except ImportError as e:
        raise RuntimeError(f"`edge-sched export-loop` needs the export extra: pip install 'edge-sched[export]' ({e})") from e
    settings = dict(export.parse_override(item) for item in args.set or [])
    manifest = export.export_loop(args.source, args.output, steps=args.steps, size=export.parse_size(args.size),
                                  scheduler=args.scheduler, overrides=settings, batch=args.batch, rng=args.rng,
                                  format=args.format, overwrite=args.overwrite)
    loop = manifest["loop"]
    print(f"exported the {loop['scheduler']['class']} loop ({loop['num_model_calls']} model calls, rng {loop['rng']}) "
          f"to {args.output}/{loop['graph']}")
    return 0


def cmd_export_step(args) -> int:
    try:
        import export
        from export.scheduler import resolve_target
        from export.step_graph import split_settings
    except ImportError as e:
        raise RuntimeError(f"`edge-sched export-step` needs the export extra: pip install 'edge-sched[export]' ({e})") from e
    settings = dict(export.parse_override(item) for item in args.set or [])
    cls, _ = resolve_target(args.scheduler)
    overrides, step_options = split_settings(cls, settings)
    scheduler = export.convert_scheduler(args.config if args.config is not None else {}, args.scheduler, **overrides)
    plan = export.export_step(scheduler, args.output, num_inference_steps=args.steps, timesteps=args.timesteps,
                              sigmas=args.sigmas, step_options=step_options, layout=args.layout,
                              overwrite=args.overwrite)
    files = len(plan["graphs"]["steps"])
    buffers = f", {len(plan['buffers']['arrays'])} buffers" if "buffers" in plan else ""
    print(f"exported the {plan['scheduler']['class']} step ({plan['num_model_calls']} model calls; layout "
          f"{plan['layout']}: {files} step graph{'s' if files != 1 else ''}{buffers}) to {args.output}")
    return 0


def _number_list(kind):
    def parse(text: str) -> list:
        try:
            values = [kind(v) for v in text.replace(" ", "").split(",") if v]
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be comma-separated {kind.__name__} values, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError("is empty")
        return values

    return parse


def cmd_compare(args) -> int:
    from .compare import cmd_compare as run

    return run(args)


def cmd_info(args) -> int:
    from .pipelines.info import describe

    print(describe(args.model, backend=args.backend))
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (the option and what is wrong), exit status 2, as the other errors."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edge-sched", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge-sched {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_parser = sub.add_parser

    def add_parser(*a, **k):  # every subcommand also takes --debug after its name
        p = _add_parser(*a, **k)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        return p

    sub.add_parser = add_parser
    p = sub.add_parser("schedulers", help="list every scheduler with its options")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.set_defaults(func=cmd_schedulers)

    p = sub.add_parser(
        "export",
        help="export a Stable Diffusion pipeline (local diffusers folder or Hub repo id) to ONNX or OpenVINO",
        description="Export a diffusers pipeline (Stable Diffusion 1.x/2.x, SDXL, LCM, DDPM/DDIM, Stable Diffusion 3, "
        "FLUX) to graphs the runtime loads (needs the export extra: torch, diffusers, optimum).",
    )
    p.add_argument("source", metavar="SOURCE",
                   help="Hub repo id (owner/name), local diffusers folder, or a .safetensors file (with --config)")
    p.add_argument("output", metavar="OUTPUT", help="folder to create")
    p.add_argument("--format", required=True, choices=["onnx", "openvino"])
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16"])
    p.add_argument("--scheduler", metavar="NAME", type=_scheduler_name, help="scheduler to ship, as a diffusers class name "
                   "or A1111 name (default: the pipeline's own)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append",
                   help="scheduler config override, e.g. timestep_spacing=trailing (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    p.add_argument("--cache-dir", help="Hugging Face cache folder")
    p.add_argument("--token", help="Hugging Face token for private or gated repos")
    p.add_argument("--local-files-only", action="store_true", help="use the cache only, no download")
    p.add_argument("--allow-pickle", action="store_true",
                   help="allow .bin/.ckpt pickle weights (they can run code: only for sources you trust)")
    p.add_argument("--static-shapes", metavar="BxHxW",
                   help="fix every graph input for NPU-style devices: batch x height x width, e.g. 1x512x512")
    p.add_argument("--weight-compression", choices=["int8", "int4"],
                   help="OpenVINO weights through nncf (int4: the UNet, the rest int8; needs nncf); onnx: int8 "
                   "weight-only, kept int8 in memory by ONNX Runtime")
    p.add_argument("--fuse-attention", action="store_true",
                   help="onnx, fp32: attention as ONNX Runtime's MultiHeadAttention (tiled on the CPU: no score "
                   "matrix in memory, faster); the graphs then need ONNX Runtime")
    p.add_argument("--config", metavar="FOLDER",
                   help="for a single-file .safetensors SOURCE: local diffusers folder with the pipeline's configs")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("set-scheduler", help="swap the scheduler shipped in an exported folder (no re-export)")
    p.add_argument("folder", metavar="FOLDER", help="a folder made by `edge-sched export`")
    p.add_argument("scheduler", metavar="NAME", type=_scheduler_name, help="diffusers class name or A1111 sampler name")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", help="scheduler config override (repeatable)")
    p.set_defaults(func=cmd_set_scheduler)

    p = sub.add_parser("export-loop", help="write an exported ONNX folder plus denoise/model.onnx: the whole denoising "
                       "loop (UNet, guidance, scheduler step) as one graph, for apps without Python")
    p.add_argument("source", metavar="SOURCE", help="a folder made by `edge-sched export --format onnx` or optimum")
    p.add_argument("output", metavar="OUTPUT", help="folder to create")
    p.add_argument("--steps", type=int, required=True, help="inference steps")
    p.add_argument("--size", required=True, metavar="HxW", help="image height x width, e.g. 512x512")
    p.add_argument("--scheduler", metavar="NAME", help="diffusers class name or A1111 name (default: the folder's)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append",
                   help="scheduler config key or step option, e.g. use_karras_sigmas=true, eta=0.5 (repeatable)")
    p.add_argument("--batch", type=int, default=1, help="images per call (default 1)")
    p.add_argument("--rng", default="input", choices=["input", "cuda", "cpu"],
                   help="noise: graph inputs, or drawn in the graph from a seed as torch's CUDA / CPU generator")
    p.add_argument("--format", default="onnx", choices=["onnx", "openvino"],
                   help="denoise/ as ONNX (model.onnx) or OpenVINO IR (openvino_model.xml; --rng input only)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it is an earlier export")
    p.set_defaults(func=cmd_export_loop)

    p = sub.add_parser("export-step", help="write one scheduler step as ONNX graphs plus plan.json (timesteps, state "
                       "hand-over, buffer plan), for apps that call their own UNet")
    p.add_argument("scheduler", metavar="NAME", type=_scheduler_name, help="diffusers class name or A1111 sampler name")
    p.add_argument("output", metavar="OUTPUT", help="folder to create")
    schedule = p.add_mutually_exclusive_group(required=True)
    schedule.add_argument("--steps", type=int, help="inference steps")
    schedule.add_argument("--timesteps", type=_number_list(int), metavar="T,T,...", help="custom timesteps")
    schedule.add_argument("--sigmas", type=_number_list(float), metavar="S,S,...", help="custom sigmas")
    p.add_argument("--config", metavar="PATH", help="a scheduler_config.json, or a folder holding one (directly or "
                   "in scheduler/, as a pipeline folder does); default: the scheduler's own defaults")
    p.add_argument("--set", metavar="KEY=VALUE", action="append",
                   help="scheduler config key or step option, e.g. use_karras_sigmas=true, eta=0.5 (repeatable)")
    p.add_argument("--layout", default="indexed", choices=["indexed", "per_call"],
                   help="one step.onnx taking the call's index, or a graph per call with plan.json's buffer plan "
                   "(fewer nodes per call; see the README's 'Apps without Python')")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it is an earlier export")
    p.set_defaults(func=cmd_export_step)

    p = sub.add_parser("generate", help="generate images from an exported pipeline folder, Hub repo or built-in model")
    p.add_argument("prompt", metavar="PROMPT", nargs="?", help="the prompt (class names for class-conditional models)")
    p.add_argument("--model", required=True, help="pipeline folder, Hub repo id, or built-in model name")
    p.add_argument("--negative", metavar="PROMPT", help="negative prompt")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the pipeline's)")
    p.add_argument("--scheduler", metavar="NAME", type=_scheduler_name,
                   help='sampler: diffusers class name, A1111 name ("DPM++ 2M", legacy "DPM++ 2M Karras") or '
                        'ComfyUI name ("dpmpp_2m"); case-insensitive')
    p.add_argument("--schedule", metavar="TYPE", help="A1111 schedule type / ComfyUI scheduler: automatic, uniform, "
                   "normal, karras, exponential, beta, sgm_uniform, simple, ddim (default: the name's own)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append",
                   help="scheduler config override, e.g. timestep_spacing=trailing (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="torch-compatible seed (default 0; -1: a random one, recorded)")
    p.add_argument("--rng", default="cpu", choices=["cpu", "cuda"],
                   help="noise of torch's CPU or CUDA generator for that seed (PNG: 'RNG: CPU' / 'RNG: NV', as A1111)")
    p.add_argument("--size", type=_size, metavar="WxH", help="image size, e.g. 512x512")
    p.add_argument("--guidance", type=_finite, default=None, help="classifier-free guidance scale")
    p.add_argument("--guidance-interval", type=_interval, default=None, metavar="LOW,HIGH",
                   help="guide only where LOW < sigma <= HIGH (one UNet call on the other steps)")
    p.add_argument("--images", type=int, default=1, metavar="N",
                   help="images with seeds SEED..SEED+N-1, one file each plus a grid (as A1111)")
    p.add_argument("--no-grid", dest="grid", action="store_false", help="with --images N: no grid file")
    p.add_argument("--overwrite", action="store_true",
                   help="with --images N and --out x.png: replace existing x-SEED.png files")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "openvino"])
    p.add_argument("--device", help="OpenVINO device (CPU, GPU, NPU, AUTO, ...)")
    p.add_argument("--provider", action="append", help="onnxruntime execution provider (repeatable, in order)")
    p.add_argument("--allow-cpu-fallback", action="store_true",
                   help="run on the CPU (with a warning) when a --provider is not in this onnxruntime build")
    p.add_argument("--init-image", metavar="FILE", help="image-to-image: the starting image")
    p.add_argument("--strength", type=_finite, default=None, help="image-to-image / inpainting strength in [0, 1]")
    p.add_argument("--mask", metavar="FILE", help="inpainting: white = repaint, black = keep")
    p.add_argument("--low-memory", action="store_true", help="keep one graph in memory at a time")
    p.add_argument("--precision", choices=["exact", "fast", "f32", "bf16", "f16"], default=None,
                   help="exact: float32, the parity default; fast: the device's default (bf16 on OpenVINO CPUs that "
                        "have it); or a precision by name")
    p.add_argument("--no-memory-check", action="store_true",
                   help="run even when the memory estimate for --size / --images exceeds the available memory")
    p.add_argument("--out", default="out.png",
                   help="image to write: .png, .jpg or .webp (parameters in the PNG text or EXIF; with --images N the grid, "
                        "each image in x-SEED.png), or a folder ending in / for new numbered NNNNN-SEED-PROMPT.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar (also TQDM_DISABLE=1)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("compare", help="compare schedulers by measured quality on the built-in digits model")
    from .compare import add_arguments as add_compare_arguments

    add_compare_arguments(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("info", help="show a pipeline folder's components, graph inputs/outputs, and this machine's devices")
    p.add_argument("model", help="pipeline folder, Hub repo id, or built-in model name")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "openvino"])
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt as e:  # Ctrl-C (SIGTERM too, where a guard turns it into one): one line, the shell's status
        if args.debug:
            raise
        print(f"edge-sched {args.command}: {_interrupted(args)}", file=sys.stderr)
        return exit_status(e)
    except Exception as e:  # one readable line unless --debug
        if args.debug:
            raise
        print(f"edge-sched: error: {_one_line(e)}", file=sys.stderr)
        return 1


def _interrupted(args) -> str:
    if args.command in ("export", "export-loop", "export-step"):
        return f"interrupted; {args.output} was left as it was"
    if args.command == "generate":
        return "interrupted; no image was written"
    return "interrupted"


def _one_line(error: Exception) -> str:
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
