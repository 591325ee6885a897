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
                "noise": "stochastic" if getattr(cls, "stochastic", "generator" in step_params) else "deterministic",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-sched", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge-sched {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("schedulers", help="list every scheduler with its options")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.set_defaults(func=cmd_schedulers)
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
