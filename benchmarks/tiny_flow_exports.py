"""Export time and size of the tests' tiny flow-matching pipelines (issue 17): SD3 (with T5), FLUX (dev-style,
guidance embedding) and Sana, each built with random weights (tests/export/tiny_flow.py) and exported by our
``export/`` to ONNX and to OpenVINO IR, fp32, with the per-component validation against torch included.

Each export runs in its own child process: optimum-intel's exporter, once imported, removes patches
optimum-onnx's ONNX export of these transformers needs (see DEVELOPERS.md), so the formats never share a
process. Time: the child's wall time for ``export_pipeline`` (imports excluded). Size: the output folder on disk.

    python benchmarks/tiny_flow_exports.py [--only sd3 flux sana] [--formats onnx openvino] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BUILDERS = {"sd3": "build_tiny_sd3", "flux": "build_tiny_flux", "sana": "build_tiny_sana"}
FORMATS = ("onnx", "openvino")

CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import export
source, output, fmt = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
start = time.perf_counter()
export.export_pipeline(source, output, format=fmt, progress=None)
print(json.dumps({"export_s": time.perf_counter() - start}))
"""


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def build(kind: str, folder: Path) -> None:
    code = (f"import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
            f"from tests.export.tiny_flow import {BUILDERS[kind]}; {BUILDERS[kind]}(Path(sys.argv[2]))")
    subprocess.run([sys.executable, "-c", code, str(ROOT), str(folder)], check=True, capture_output=True, text=True)


def export_one(source: Path, output: Path, fmt: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(source), str(output), fmt],
                          capture_output=True, text=True, env={**__import__("os").environ, "CI": "true"})
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["size_mb"] = folder_mb(output)
    result["components_mb"] = {p.name: round(folder_mb(p), 3) for p in sorted(output.iterdir()) if p.is_dir()}
    return result


def markdown(results: dict) -> str:
    lines = ["# Tiny flow-matching pipelines: export time and size (`python benchmarks/tiny_flow_exports.py`)", "",
             f"Measured {results['date']}. Our `export/`, fp32, validation against torch included; each export in its "
             "own process (imports excluded from the time). The tests' tiny random-weight pipelines "
             "(tests/export/tiny_flow.py).", "",
             "| pipeline | format | export s | folder MB | components (MB) |", "|---|---|---|---|---|"]
    for kind, formats in results["pipelines"].items():
        for fmt, r in formats.items():
            if "error" in r:
                lines.append(f"| {kind} | {fmt} | error: {r['error'][:120]} | | |")
                continue
            parts = ", ".join(f"{k} {v:.2f}" for k, v in r["components_mb"].items() if v >= 0.005)
            lines.append(f"| {kind} | {fmt} | {r['export_s']:.1f} | {r['size_mb']:.2f} | {parts} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(BUILDERS), default=list(BUILDERS))
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "pipelines": {}}
    with tempfile.TemporaryDirectory(prefix="edge_sched-tiny-flow-") as tmp:
        for kind in args.only:
            source = Path(tmp) / kind / "source"
            print(f"{kind}: building", file=sys.stderr, flush=True)
            build(kind, source)
            results["pipelines"][kind] = {}
            for fmt in args.formats:
                print(f"{kind}: exporting {fmt}", file=sys.stderr, flush=True)
                results["pipelines"][kind][fmt] = export_one(source, Path(tmp) / kind / fmt, fmt)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tiny_flow_exports.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results)
    (args.out / "tiny_flow_exports.md").write_text(text)
    print(text)
    return 1 if any("error" in r for f in results["pipelines"].values() for r in f.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
