"""The ``edge-sched`` command line."""

from __future__ import annotations

import argparse
import inspect
import sys

from . import __version__


def scheduler_rows() -> list[dict]:
    """One row per scheduler, read off the classes themselves (nothing hand-maintained)."""
    from .schedulers import SCHEDULER_CLASSES

    rows = []
    for name in sorted(SCHEDULER_CLASSES):
        cls = SCHEDULER_CLASSES[name]
        set_params = inspect.signature(cls.set_timesteps).parameters
        step_params = inspect.signature(cls.step).parameters
        options = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        rows.append(
            {
                "scheduler": name,
                "order": cls.order,
                "noise": getattr(cls, "noise_kind", "stochastic" if "generator" in step_params else "deterministic"),
                "timesteps=": "yes" if "timesteps" in set_params else "-",
                "sigmas=": "yes" if "sigmas" in set_params else "-",
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
    )
    for name, numbers in manifest["validation"].items():
        print(f"{name}: max abs diff {numbers['max_abs']:.3g}, max rel diff {numbers['max_rel']:.3g}")
    print(f"exported {manifest['pipeline']} to {args.output} ({manifest['format']}, {manifest['dtype']}, "
          f"scheduler {manifest['scheduler']['class']}) in {manifest['export_seconds']:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-sched", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge-sched {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("schedulers", help="list every scheduler with its options")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.set_defaults(func=cmd_schedulers)

    p = sub.add_parser(
        "export",
        help="export a Stable Diffusion pipeline (local diffusers folder or Hub repo id) to ONNX or OpenVINO",
        description="Export a Stable Diffusion 1.x/2.x text-to-image pipeline to graphs the runtime loads "
        "(needs the export extra: torch, diffusers, optimum).",
    )
    p.add_argument("source", metavar="SOURCE", help="Hub repo id (owner/name) or local diffusers folder")
    p.add_argument("output", metavar="OUTPUT", help="folder to create")
    p.add_argument("--format", required=True, choices=["onnx", "openvino"])
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16"])
    p.add_argument("--scheduler", metavar="NAME", help="scheduler to ship, as a diffusers class name "
                   "(default: the pipeline's own); A1111 names are not supported yet")
    p.add_argument("--set", metavar="KEY=VALUE", action="append",
                   help="scheduler config override, e.g. timestep_spacing=trailing (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    p.add_argument("--cache-dir", help="Hugging Face cache folder")
    p.add_argument("--token", help="Hugging Face token for private or gated repos")
    p.add_argument("--local-files-only", action="store_true", help="use the cache only, no download")
    p.add_argument("--allow-pickle", action="store_true",
                   help="allow .bin/.ckpt pickle weights (they can run code: only for sources you trust)")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as e:  # one readable line unless --debug
        if args.debug:
            raise
        print(f"edge-sched: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
