"""The performance suite: edge_sched against optimum and openvino-genai on the same exported graphs.

    python benchmarks/performance.py            # SD1.5 architecture, 256x256, 10 steps, guidance 7.5

Builds (once, cached in benchmarks/.cache/) an SD1.5-architecture pipeline with random weights and
exports it with our ``export/`` (ONNX and OpenVINO IR, fp32); then runs every runner in its own
process (benchmarks/runners.py), its folder read into the page cache first: import+load, first
image, steady image (median), peak RSS; the floors (each graph alone, timed with the engines
directly); the install footprints. Writes
benchmarks/RESULTS.md, benchmarks/results/performance.json and benchmarks/results/performance.png.

``--rounds N`` runs the chosen runners and floors N times, round-robin, and keeps each figure's
median over the rounds (and every round's steady image): on a noisy machine that separates a real
difference from the machine's drift, which a single pass cannot.

Matched settings: fp32 compute (OpenVINO's CPU default on this machine is bf16: the OpenVINO peers
also run with their default precision, and ours with precision="fast", reported apart with each image's
difference from the same runner's f32 image), all cores, same prompt, steps, size and
scheduler (Euler). Static shapes: our OpenVINO runners reshape to the known size (pipe.reshape);
the OpenVINO peers run as they load (dynamic), and reshaped where they offer it, reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# runner -> (what benchmarks/runners.py runs, folder variant, settings overrides)
RUNNERS = {
    "edge_sched-ort": ("edge_sched-ort", "onnx", {}),
    "edge_sched-ort-lowmem": ("edge_sched-ort-lowmem", "onnx", {}),
    "edge_sched-ort-noarena": ("edge_sched-ort", "onnx", {"engine": {"cpu_memory_arena": False}}),
    # precision="fast" on ONNX Runtime's CPU provider: float32 (its fp16 graphs do not help there)
    "edge_sched-ort-fast": ("edge_sched-ort", "onnx", {"precision": "default"}),
    "optimum-ort": ("optimum-ort", "onnx", {}),
    "edge_sched-ov": ("edge_sched-ov", "openvino", {"static": True}),
    "edge_sched-ov-cache": ("edge_sched-ov", "openvino", {"static": True, "compile_cache": True}),
    "edge_sched-ov-dynamic": ("edge_sched-ov", "openvino", {"static": False}),
    "edge_sched-ov-lowmem": ("edge_sched-ov-lowmem", "openvino", {"static": True}),
    # precision="fast": the device's default precision, as the peers' "default" rows (bf16 on this CPU)
    "edge_sched-ov-fast": ("edge_sched-ov", "openvino", {"static": True, "precision": "default"}),
    "edge_sched-ov-dynamic-fast": ("edge_sched-ov", "openvino", {"static": False, "precision": "default"}),
    # guidance only where 0.28 < sigma <= 5.42 (the paper's interval, as on the digits model): the other steps
    # run the UNet once, at batch 1 (dynamic shapes)
    "edge_sched-ov-dynamic-gi": ("edge_sched-ov", "openvino", {"static": False, "guidance_interval": [0.28, 5.42]}),
    "optimum-ov": ("optimum-ov", "openvino", {}),
    "optimum-ov-static": ("optimum-ov", "openvino", {"static": True}),
    "optimum-ov-bf16": ("optimum-ov", "openvino", {"precision": "default"}),
    "genai": ("genai", "openvino", {}),
    "genai-static": ("genai", "openvino", {"static": True}),
    "genai-bf16": ("genai", "openvino", {"precision": "default"}),
}
FLOORS = {
    "floor-ort": ("floor-ort", "onnx", {}),
    "floor-ov": ("floor-ov", "openvino", {"static": False}),
    "floor-ov-static": ("floor-ov", "openvino", {"static": True}),
    "floor-ov-fast": ("floor-ov", "openvino", {"static": False, "precision": "default"}),
    "floor-ov-static-fast": ("floor-ov", "openvino", {"static": True, "precision": "default"}),
}
# a runner in the device's default precision -> the same runner in f32, whose image it is compared with
F32_PEERS = {"edge_sched-ov-fast": "edge_sched-ov", "edge_sched-ov-dynamic-fast": "edge_sched-ov-dynamic",
             "edge_sched-ort-fast": "edge_sched-ort", "optimum-ov-bf16": "optimum-ov", "genai-bf16": "genai"}
# a runner guiding only inside a sigma interval -> the same runner guiding every step
GUIDANCE_PEERS = {"edge_sched-ov-dynamic-gi": "edge_sched-ov-dynamic"}


def warm_page_cache(folder: Path) -> None:
    """Read every file of the folder once, so each runner starts with its graphs in the page cache:
    the runners before it read other multi-GB folders, and a load that waits on the disk measures
    the order of the runners, not the runner."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with open(path, "rb", buffering=0) as f:
            while f.read(1 << 23):
                pass


def run_child(kind: str, folder: Path, settings: dict, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "runners.py"), kind, str(folder),
                               json.dumps(settings)], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def image_differences(images: dict, runners: dict) -> None:
    """Each default-precision runner's image against its f32 peer's (same pipeline, same seed; images
    in [0, 1], openvino-genai's 8-bit), into the runner's result as ``image_diff_vs_f32``; each
    guidance-interval runner's against full guidance, as ``image_diff_vs_full_guidance``."""
    import numpy as np

    for peers, key in ((F32_PEERS, "image_diff_vs_f32"), (GUIDANCE_PEERS, "image_diff_vs_full_guidance")):
        for runner, peer in peers.items():
            if runner in images and peer in images and runner in runners:
                a, b = (np.load(images[n]).astype(np.float64) for n in (runner, peer))
                diff = np.abs(a - b)
                runners[runner][key] = {"peer": peer, "max_abs": float(diff.max()), "mean_abs": float(diff.mean())}


def combine_rounds(results: list[dict]) -> dict:
    """One result from several rounds of the same runner: the median of each number (per graph for
    the floors' graph times), every round's steady image, and the first round's memory profile."""
    if len(results) == 1 or any("error" in r for r in results):
        return next((r for r in results if "error" in r), results[0])
    merged = dict(results[0])
    for key, value in results[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            merged[key] = statistics.median(r[key] for r in results)
        elif isinstance(value, dict) and key in ("graphs_s", "per_graph_s") and all(
                isinstance(v, (int, float)) for v in value.values()):
            merged[key] = {g: statistics.median(r[key][g] for r in results) for g in value}
    if "steady_s" in merged:
        merged["rounds_steady_s"] = [r["steady_s"] for r in results]
    if "floor_s" in merged:  # the image floor from the per-graph medians
        merged["floor_s"] = sum(merged["graphs_s"][g] * n for g, n in merged["calls"].items())
        merged["rounds_floor_s"] = [r["floor_s"] for r in results]
    merged["rounds"] = len(results)
    return merged


def build_folders(model: str, cache: Path, say, formats=("onnx", "openvino")) -> dict:
    if model == "sd15":
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from sd15_random import build

        return build(cache / "sd15", tuple(formats), say=say)
    # tiny: the tests' random-weight pipeline, for a quick check of the suite itself
    sys.path.insert(0, str(ROOT))
    import export
    from tests.export.tiny import build_tiny_sd

    base = cache / "tiny"
    folders = {"source": base / "source"}
    if not folders["source"].exists():
        build_tiny_sd(folders["source"])
    for fmt in ("onnx", "openvino"):
        folders[fmt] = base / fmt
        if not folders[fmt].exists():
            export.export_pipeline(folders["source"], folders[fmt], format=fmt, progress=None)
    return folders


def folder_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def footprint(say) -> dict:
    """Install sizes in fresh virtual environments: the runtime with each engine, against optimum's ORT
    pipeline with its torch stack (all pinned by constraints.txt; torch is the local CPU build)."""
    constraints = str(ROOT / "constraints.txt")
    setups = {
        "edge_sched[onnx]": [[f"{ROOT}[onnx]"]],
        "edge_sched[openvino]": [[f"{ROOT}[openvino]"]],
        # the floors under our installs (RESULTS.md's Targets: at most numpy + the engine + 10%)
        "numpy + onnxruntime": [["numpy", "onnxruntime"]],
        "numpy + openvino": [["numpy", "openvino"]],
        "optimum-onnx + torch": [["torch==2.13.0"], ["optimum-onnx[onnxruntime]", "diffusers"]],
        "optimum-intel + torch": [["torch==2.13.0"], ["optimum-intel[openvino]", "diffusers"]],
    }
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, steps in setups.items():
            venv = Path(tmp) / name.replace(" ", "_").replace("+", "").replace("[", "_").replace("]", "")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            empty = folder_size_mb(venv)
            say(f"  footprint: installing {name}")
            for packages in steps:
                subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                                "-c", constraints, *packages], check=True, capture_output=True)
            sizes[name] = round(folder_size_mb(venv) - empty, 1)
    return sizes


def versions() -> dict:
    from importlib import metadata

    out = {}
    for pkg in ("edge-sched", "numpy", "onnxruntime", "openvino", "openvino-genai", "optimum", "optimum-onnx",
                "optimum-intel", "diffusers", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.machine())
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")) / 2**20
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Linux {platform.release()}, Python {platform.python_version()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("sd15", "tiny"), default="sd15")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--guidance-scale", type=float, default=7.5)
    parser.add_argument("--repeats", type=int, default=3, help="steady images per runner (after the first)")
    parser.add_argument("--floor-repeats", type=int, default=5)
    parser.add_argument("--runners", nargs="*", default=list(RUNNERS), choices=list(RUNNERS))
    parser.add_argument("--no-floors", action="store_true")
    parser.add_argument("--floors", nargs="*", default=list(FLOORS), choices=list(FLOORS), help="the floors to run")
    parser.add_argument("--note", action="append", default=[], help="a line for RESULTS.md (kept by --update)")
    parser.add_argument("--no-footprint", action="store_true")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/, "
                        "benchmarks/results/ for the RESULTS.md, JSON and chart)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per runner")
    parser.add_argument("--rounds", type=int, default=1, help="run the runners and floors this many times, "
                        "round-robin, and keep the medians")
    parser.add_argument("--update", action="store_true", help="re-run only the given runners (and floors and "
                        "footprint unless excluded) and keep the other entries of the existing results")
    args = parser.parse_args(argv)

    def say(message):
        print(message, file=sys.stderr, flush=True)

    floors = [] if args.no_floors else args.floors
    formats = sorted({RUNNERS[n][1] for n in args.runners} | {FLOORS[n][1] for n in floors})
    folders = build_folders(args.model, args.cache, say, formats)  # only the formats the chosen jobs run
    base = dict(height=args.height, width=args.width, steps=args.steps, guidance_scale=args.guidance_scale,
                repeats=args.repeats, floor_repeats=args.floor_repeats, precision="f32")
    results: dict = {"settings": base, "model": args.model, "machine": machine(), "versions": versions(),
                     "date": time.strftime("%Y-%m-%d %H:%M"), "runners": {}, "floors": {}}
    previous = (args.out or ROOT / "benchmarks") / "results" / "performance.json"
    if args.update and previous.is_file():
        old = json.loads(previous.read_text())
        if old.get("settings") != base or old.get("model") != args.model:
            parser.error(f"--update: {previous} was made with other settings ({old.get('settings')})")
        if old.get("machine") != results["machine"]:  # a table mixing machines would compare their CPUs
            parser.error(f"--update: {previous} was measured on {old.get('machine')}, this is {results['machine']}: "
                         "run the whole suite here (without --update)")
        results.update(runners=old["runners"], floors=old["floors"],
                       **{k: old[k] for k in ("footprint_mb", "variants", "notes", "sizes_mb", "component_mb")
                          if k in old})
        results["date"] = f"{old['date']}, updated {results['date']}"
    results["notes"] = results.get("notes", []) + args.note
    results["sizes_mb"] = {**results.get("sizes_mb", {}),
                           **{fmt: round(folder_size_mb(folders[fmt]), 1) for fmt in formats}}
    fmt = "openvino" if "openvino" in formats else formats[0]
    results["component_mb"] = {n: round(folder_size_mb(folders[fmt] / n), 1)
                               for n in ("text_encoder", "unet", "vae_decoder")}
    jobs = [(n, *RUNNERS[n], "runners") for n in args.runners]
    jobs += [(n, *FLOORS[n], "floors") for n in floors]
    order = list(RUNNERS) + list(FLOORS)  # keep the table's order when updating
    rounds: dict = {}
    images_dir = Path(tempfile.mkdtemp(prefix="edge_sched-images-"))
    images = {}  # runner -> its last round's image, for the precision comparisons
    for round_no, (name, kind, variant, overrides, table) in ((r, j) for r in range(args.rounds) for j in jobs):
        say(f"{name} ({variant}){f' round {round_no + 1} of {args.rounds}' if args.rounds > 1 else ''} ...")
        settings = {**base, **overrides}
        if table == "runners" and name in {*F32_PEERS, *F32_PEERS.values(), *GUIDANCE_PEERS, *GUIDANCE_PEERS.values()}:
            settings["save_image"] = str(images_dir / f"{name}.npy")
        warm_page_cache(folders[variant])
        if overrides.get("compile_cache"):  # cold compile cache first, then warm
            with tempfile.TemporaryDirectory() as cache_dir:
                cold = run_child(kind, folders[variant], {**settings, "cache_dir": cache_dir}, args.timeout)
                result = run_child(kind, folders[variant], {**settings, "cache_dir": cache_dir}, args.timeout)
                result["cold_cache_load_s"] = cold.get("load_s")
                result["cold_cache_first_s"] = cold.get("first_s")
        else:
            result = run_child(kind, folders[variant], settings, args.timeout)
        if settings.get("save_image") and "error" not in result:
            images[name] = settings["save_image"]
        rounds.setdefault((table, name), []).append(result)
        results[table][name] = {"settings": overrides, **combine_rounds(rounds[(table, name)])}
        say(f"  {json.dumps(result)[:300]}")
    image_differences(images, results["runners"])
    shutil.rmtree(images_dir, ignore_errors=True)
    for table in ("runners", "floors"):
        results[table] = dict(sorted(results[table].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))
    if not args.no_footprint:
        results["footprint_mb"] = footprint(say)

    from report import write_report

    out = args.out or ROOT / "benchmarks"
    write_report(results, out)
    say(f"wrote {out / 'RESULTS.md'}")
    return 1 if any("error" in r for t in ("runners", "floors") for r in results[t].values()) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
