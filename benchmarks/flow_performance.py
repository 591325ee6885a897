"""The performance suite's flow-matching row: edge_sched against optimum-intel and openvino-genai on one
OpenVINO folder of an SD3-Medium-architecture pipeline (random weights, no T5, int8 weights; built by
benchmarks/sd3_random.py).

    python benchmarks/flow_performance.py [--rounds 2] [--runners ...]   # writes results/flow_performance.{json,md}

Same method as benchmarks/performance.py (whose helpers it uses): each runner in its own process
(benchmarks/runners.py) with the folder read into the page cache first, runners interleaved round by
round, figures the medians over rounds (each round in brackets). Matched settings: same prompt, size,
steps, guidance (classifier-free: transformer batch 2), FlowMatchEuler (the folder's scheduler, which every
peer runs), dynamic shapes, all cores; f32 compute, and each runner again in the device's default precision
(bf16 on this CPU; ours: precision="fast"), with its image difference against its own f32 image.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from performance import (combine_rounds, folder_size_mb, image_differences, machine, run_child,  # noqa: E402
                         versions, warm_page_cache)

RESULTS = ROOT / "benchmarks" / "results"
# runner -> (what benchmarks/runners.py runs, settings overrides)
RUNNERS = {
    "edge_sched-ov": ("edge_sched-ov", {"static": False}),
    "optimum-ov": ("optimum-ov", {}),
    "genai": ("genai", {}),
    "edge_sched-ov-fast": ("edge_sched-ov", {"static": False, "precision": "default"}),
    "optimum-ov-bf16": ("optimum-ov", {"precision": "default"}),
    "genai-bf16": ("genai", {"precision": "default"}),
    "floor-ov": ("floor-ov", {"static": False}),
    "floor-ov-fast": ("floor-ov", {"static": False, "precision": "default"}),
    # openvino-genai pads a missing T5 with 77 zero tokens where diffusers pads max_sequence_length (256): these
    # run ours with max_sequence_length=77, the same transformer work as genai (154 text tokens, not 333)
    "edge_sched-ov-77": ("edge_sched-ov", {"static": False, "max_sequence_length": 77}),
    "edge_sched-ov-fast-77": ("edge_sched-ov", {"static": False, "precision": "default", "max_sequence_length": 77}),
    "floor-ov-77": ("floor-ov", {"static": False, "max_sequence_length": 77}),
    "floor-ov-fast-77": ("floor-ov", {"static": False, "precision": "default", "max_sequence_length": 77}),
}
LABELS = {
    "edge_sched-ov": "edge_sched StableDiffusion3Pipeline, OpenVINO",
    "optimum-ov": "optimum OVStableDiffusion3Pipeline",
    "genai": "openvino-genai Text2ImagePipeline (C++)",
    "edge_sched-ov-fast": 'edge_sched, precision="fast" (device default)',
    "optimum-ov-bf16": "optimum OVStableDiffusion3Pipeline, device default precision",
    "genai-bf16": "openvino-genai Text2ImagePipeline, device default precision",
    "floor-ov": "floor: each graph alone, f32",
    "floor-ov-fast": "floor: each graph alone, device default precision",
    "edge_sched-ov-77": "edge_sched, max_sequence_length=77 (genai's text length)",
    "edge_sched-ov-fast-77": 'edge_sched, precision="fast", max_sequence_length=77',
    "floor-ov-77": "floor: each graph alone, f32, 77 + 77 text tokens",
    "floor-ov-fast-77": "floor: each graph alone, device default precision, 77 + 77 text tokens",
}
FLOOR_OF = {"edge_sched-ov": "floor-ov", "optimum-ov": "floor-ov", "genai": "floor-ov",
            "edge_sched-ov-fast": "floor-ov-fast", "optimum-ov-bf16": "floor-ov-fast", "genai-bf16": "floor-ov-fast",
            "edge_sched-ov-77": "floor-ov-77", "edge_sched-ov-fast-77": "floor-ov-fast-77"}
F32_OF = {"edge_sched-ov-fast": "edge_sched-ov", "optimum-ov-bf16": "optimum-ov", "genai-bf16": "genai",
          "edge_sched-ov-fast-77": "edge_sched-ov-77"}


MODELS = {"sd3-medium": "SD3-Medium architecture (MMDiT 2.03B, CLIP-L + CLIP-G, 16-channel VAE), random weights, "
                         "no T5",
          "tiny": "the tests' tiny SD3 without T5 (a check of the script, not a measurement)"}


def build_folder(model: str, cache: Path, say) -> Path:
    if model == "sd3-medium":
        from sd3_random import build

        return build(cache / "sd3", ("openvino-int8",), say=say)["openvino-int8"]
    sys.path.insert(0, str(ROOT))
    import export
    from tests.export.tiny_flow import build_tiny_sd3

    source, folder = cache / "tiny-sd3" / "source", cache / "tiny-sd3" / "openvino-int8"
    if not source.exists():
        build_tiny_sd3(source, with_t5=False, seed=1)
    if not folder.exists():
        export.export_pipeline(source, folder, format="openvino", weight_compression="int8", progress=None)
    return folder


def _fmt_rounds(result: dict, key: str) -> str:
    value = result.get(key)
    if value is None:
        return "-"
    rounds = result.get("rounds_" + key)
    return f"{value:.2f}" + (f" ({', '.join(f'{v:.2f}' for v in rounds)})" if rounds and len(rounds) > 1 else "")


def write_markdown(results: dict, path: Path) -> None:
    s = results["settings"]
    rows = results["runners"]
    lines = [
        "# Flow matching: SD3-Medium architecture (`python benchmarks/flow_performance.py`)", "",
        f"Measured {results['date']} on {results['machine']}. Model: {results['model']}; OpenVINO IR with int8 weights, "
        f"{results['size_mb']:.0f} MB on disk ({', '.join(f'{k} {v:.0f}' for k, v in results['component_mb'].items())} MB). "
        f"{s['height']}x{s['width']}, {s['steps']} steps (FlowMatchEuler, shift 3.0), guidance {s['guidance_scale']} "
        f"(classifier-free: transformer batch 2), one image, all cores, dynamic shapes, one process per runner, "
        f"{results['rounds']} interleaved round(s) (each round in brackets). Steady image: median of "
        f"{s['repeats']} image(s) after the first.", "",
        "| runner | import+load s | first image s | steady image s | steady / floor | steady / openvino-genai "
        "| peak RSS MB | image diff vs own f32 (max / mean) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        if name.startswith("floor"):
            continue
        if "error" in r:
            lines.append(f"| {LABELS[name]} | error: {r['error'].splitlines()[-1][:120]} | | | | | | |")
            continue
        floor = results["runners"].get(FLOOR_OF[name], {}).get("floor_s")
        genai = rows.get("genai-bf16" if name in F32_OF else "genai", {}).get("steady_s")
        diff = r.get("image_diff_vs_f32")
        steady = r["steady_s"]
        cells = [LABELS[name], f"{r['load_s']:.2f}", f"{r['first_s']:.2f}", _fmt_rounds(r, "steady_s"),
                 f"{steady / floor:.3f}x" if floor else "-", f"{steady / genai:.3f}x" if genai else "-",
                 f"{r['peak_rss_mb']:.0f}", f"{diff['max_abs']:.4f} / {diff['mean_abs']:.5f}" if diff else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| floor | " + " | ".join(f"{g} s" for g in ("text_encoder", "text_encoder_2", "transformer",
                                                                   "vae_decoder")) + " | image floor s |",
              "|---|---|---|---|---|---|"]
    for name in ("floor-ov", "floor-ov-fast", "floor-ov-77", "floor-ov-fast-77"):
        r = rows.get(name)
        if not r or "error" in r:
            continue
        g = r["graphs_s"]
        lines.append(f"| {LABELS[name]} | " + " | ".join(f"{g.get(n, 0):.3f}" for n in (
            "text_encoder", "text_encoder_2", "transformer", "vae_decoder")) + f" | {_fmt_rounds(r, 'floor_s')} |")
    lines += ["", "Floors: each graph through OpenVINO's own API (median of repeats), times the calls one image makes "
              "(each text encoder x2, transformer x steps, VAE decoder x1).", ""]
    lines += [f"Note: {n}" for n in results.get("notes", [])]
    path.write_text("\n".join(lines).rstrip() + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--guidance-scale", type=float, default=7.0)
    parser.add_argument("--repeats", type=int, default=1, help="steady images per runner (after the first)")
    parser.add_argument("--floor-repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--runners", nargs="*", default=list(RUNNERS))
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--model", choices=("sd3-medium", "tiny"), default="sd3-medium",
                        help="tiny: the tests' SD3 without T5, for a quick check of this script")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per runner")
    parser.add_argument("--update", action="store_true", help="re-run only the given runners; keep the other rows "
                        "and the notes of the previous flow_performance.json in --out (same settings)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.runners) - set(RUNNERS))
    if unknown:
        parser.error(f"unknown runners {unknown}; choose from {list(RUNNERS)}")

    def say(message):
        print(message, file=sys.stderr, flush=True)

    folder = build_folder(args.model, args.cache, say)
    base = dict(height=args.height, width=args.width, steps=args.steps, guidance_scale=args.guidance_scale,
                repeats=args.repeats, floor_repeats=args.floor_repeats, precision="f32")
    results = {"settings": base, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
               "versions": versions(), "rounds": args.rounds, "notes": args.note, "runners": {},
               "model": MODELS[args.model],
               "size_mb": folder_size_mb(folder),
               "component_mb": {p.name: round(folder_size_mb(p), 1) for p in sorted(folder.iterdir())
                                if p.is_dir() and any(p.glob("*.bin"))}}
    previous = args.out / "flow_performance.json"
    if args.update and previous.is_file():
        old = json.loads(previous.read_text())
        if old["settings"] != base:
            parser.error(f"--update: {previous} was made with other settings ({old['settings']})")
        results["runners"] = {k: v for k, v in old["runners"].items() if k not in args.runners}
        results["notes"] = old.get("notes", []) + args.note
        results["date"] = f"{old['date']}, updated {results['date']}"
        results["rounds"] = old["rounds"] if old["rounds"] == args.rounds else f"{old['rounds']} / {args.rounds}"
    images_dir = Path(tempfile.mkdtemp(prefix="edge_sched-flow-images-"))
    images, rounds = {}, {}
    try:
        for round_no in range(args.rounds):
            for name in args.runners:
                kind, overrides = RUNNERS[name]
                settings = {**base, **overrides}
                if not name.startswith("floor"):
                    settings["save_image"] = str(images_dir / f"{name}.npy")
                say(f"{name} round {round_no + 1} of {args.rounds} ...")
                warm_page_cache(folder)
                result = run_child(kind, folder, settings, args.timeout)
                if settings.get("save_image") and "error" not in result:
                    images[name] = settings["save_image"]
                rounds.setdefault(name, []).append(result)
                results["runners"][name] = {"settings": overrides, **combine_rounds(rounds[name])}
                say(f"  {json.dumps(result)[:300]}")
        # each default-precision runner against the same runner in f32
        import performance

        performance.F32_PEERS.clear()
        performance.F32_PEERS.update(F32_OF)
        image_differences(images, results["runners"])
    finally:
        shutil.rmtree(images_dir, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flow_performance.json").write_text(json.dumps(results, indent=1))
    write_markdown(results, args.out / "flow_performance.md")
    say(f"wrote {args.out / 'flow_performance.md'}")
    return 1 if any("error" in r for r in results["runners"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
