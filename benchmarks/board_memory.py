"""SD1.5 at 512x512 on a small board: peak RSS per mode, and which graph holds the peak.

The SD1.5-architecture pipeline with random weights (sd15_random.py; same sizes as the real model) runs one
512x512 image in a fresh child process per mode (no torch there), OpenVINO on the CPU, float32 compute
(``precision="exact"``: the parity setting) except in the "fast" modes (``precision="fast"``: the
device's own precision, bf16 on CPUs that have it, which halves activations and expanded weights). Memory
does not depend on the step count, so each image takes ``--steps`` (default 2) Euler steps with
classifier-free guidance (UNet batch 2). For each mode: VmHWM of the process (the peak RSS), RSS after the
imports and after loading, and the peak inside each graph call (VmHWM reset before each call:
runners.GraphClock), next to the graph's weights on disk, so the rest is activations and engine buffers.

Modes: default (every graph compiled at load, as most users run it), low-memory (one graph in memory at
a time: ``low_memory=True``, diffusers' ``enable_model_cpu_offload``), low-memory + VAE tiling
(``enable_vae_tiling()`` with 256-pixel tiles: at 512x512 the config's 512-pixel tiles would not tile
at all), the same three on int8 weights (``export --weight-compression int8``), the low-memory tiled
modes in the fast precision, and ONNX Runtime on the ``onnx-int8`` folder (``--weight-compression int8
--fuse-attention``: weights kept int8 in memory, attention without a score matrix; low-memory mode runs the
UNet one row at a time) and on the fp32 ONNX folder. Each int8 mode's image is compared with the fp32 one.

    python benchmarks/board_memory.py [--steps 2] [--modes ...]   # writes benchmarks/results/board_memory.md
    python benchmarks/board_memory.py --model tiny --size 32 --out /tmp/x.md  # a quick check of the script
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"
RESULT = ROOT / "benchmarks" / "results" / "board_memory.md"
#: mode -> (export variant, low_memory, VAE tile size in pixels or None, precision); the variant's format
#: picks the engine (onnx: ONNX Runtime, openvino: OpenVINO)
MODES = {
    "fp32": ("openvino", False, None, "exact"),
    "fp32, low-memory": ("openvino", True, None, "exact"),
    "fp32, low-memory, VAE tiling": ("openvino", True, 256, "exact"),
    "int8": ("openvino-int8", False, None, "exact"),
    "int8, low-memory": ("openvino-int8", True, None, "exact"),
    "int8, low-memory, VAE tiling": ("openvino-int8", True, 256, "exact"),
    "fp32, low-memory, VAE tiling, fast": ("openvino", True, 256, "fast"),
    "int8, low-memory, VAE tiling, fast": ("openvino-int8", True, 256, "fast"),
    # ONNX Runtime: int8 weights kept int8 in memory (DequantizeLinear per layer), fused attention
    "ORT int8, low-memory, VAE tiling": ("onnx-int8", True, 256, "exact"),
    "ORT int8, VAE tiling": ("onnx-int8", False, 256, "exact"),
    "ORT fp32, low-memory, VAE tiling": ("onnx", True, 256, "exact"),
}
#: board sizes the README speaks of, and what the OS and a desktop-less system keep for themselves (MB)
BOARDS_MB = (2048, 4096, 8192)
SYSTEM_RESERVE_MB = 400

CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import runners
from runners import GraphClock, peak_rss_mb, status_mb
# the process's true peak: VmHWM is read before each per-graph reset (and at the end)
overall = [0.0]
_reset = runners.reset_peak
def reset_peak():
    overall[0] = max(overall[0], peak_rss_mb())
    return _reset()
runners.reset_peak = reset_peak
folder, low_memory, tile, size, steps = sys.argv[2], sys.argv[3] == "1", json.loads(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
precision, backend, image_path = sys.argv[7], sys.argv[8], sys.argv[9]
from edge_sched.pipelines import DiffusionPipeline
after_imports = status_mb("VmRSS")
clock = GraphClock()
pipe = DiffusionPipeline.from_pretrained(folder, backend=backend, precision=precision, low_memory=low_memory)
pipe.set_progress_bar_config(disable=True)
if tile:
    pipe.enable_vae_tiling()
    pipe.vae.tile_sample_min_size, pipe.vae.tile_latent_min_size = tile, tile // pipe.vae.scale_factor
after_load = status_mb("VmRSS")
peak_before_image = peak_rss_mb()
clock.peaks = {}
image = pipe("a photo of a cat", height=size, width=size, num_inference_steps=steps, guidance_scale=7.5,
             generator=0, output_type="np").images
import numpy as np
np.save(image_path, image)
print(json.dumps({"after_imports": after_imports, "after_load": after_load, "peak_load": peak_before_image,
                  "graph_peaks": clock.peaks, "shape": list(image.shape),
                  "peak": max(overall[0], peak_rss_mb(), *clock.peaks.values())}))  # every reading is a lower bound
"""


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def build_folders(model: str, cache: Path, variants) -> dict:
    """{export variant: folder}: the SD1.5-size pipeline (sd15_random.py), or for a quick check of this
    script the tests' tiny pipeline, exported the same ways."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT))
    from sd15_random import VARIANTS, build

    if model == "sd15":
        return build(cache / "sd15", sorted(variants))
    import export
    from tests.export.tiny import build_tiny_sd

    base = cache / "tiny"
    folders = {"source": base / "source"}
    if not folders["source"].exists():
        build_tiny_sd(folders["source"])
    for variant in variants:
        folders[variant] = base / variant
        if not folders[variant].exists():
            export.export_pipeline(folders["source"], folders[variant], progress=None, **VARIANTS[variant])
    return folders


def engine(mode: str) -> str:
    return "onnxruntime" if MODES[mode][0].startswith("onnx") else "openvino"


def run_mode(mode: str, folder: Path, size: int, steps: int, image: Path) -> dict:
    _, low_memory, tile, precision = MODES[mode]
    done = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "benchmarks"), str(folder), "1" if low_memory else "0",
                           json.dumps(tile), str(size), str(steps), precision, engine(mode), str(image)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"{mode}: the child failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["weights_mb"] = {name: folder_mb(folder / name) for name in ("text_encoder", "unet", "vae_decoder")}
    return result


def image_differences(results: dict, images: Path) -> None:
    """Each int8 mode's image against the fp32 image of the same engine and tiling (same seed): what the int8
    weights change (``results[mode]["image_vs_fp32"]``: max, mean abs, images in [0, 1])."""
    import numpy as np

    names = list(results)
    for i, mode in enumerate(names):
        variant, _, tile, precision = MODES[mode]
        if "int8" not in variant:
            continue
        fp32 = next((j for j, m in enumerate(names) if MODES[m][0] == variant.replace("-int8", "") and MODES[m][2] == tile
                     and MODES[m][3] == precision), None)
        if fp32 is not None:
            a, b = np.load(images / f"{i}.npy"), np.load(images / f"{fp32}.npy")
            results[mode]["image_vs_fp32"] = [float(np.abs(a - b).max()), float(np.abs(a - b).mean())]


def boards_that_fit(peak_mb: float) -> str:
    fits = [f"{b // 1024} GB" for b in BOARDS_MB if peak_mb + SYSTEM_RESERVE_MB <= b]
    return ", ".join(fits) if fits else "none of 2/4/8 GB"


def _difference(r: dict) -> str:
    d = r.get("image_vs_fp32")
    return f"{d[0]:.3f} / {d[1]:.4f}" if d else ""


def report(results: dict, size: int, steps: int) -> str:
    lines = [f"# SD1.5 at {size}x{size} on small boards (`python benchmarks/board_memory.py`)", "",
             f"SD1.5-architecture pipeline, random weights, OpenVINO CPU (rows marked ORT: ONNX Runtime CPU), float32 compute (the fast modes: the device's "
             f"default precision), {steps} Euler steps with "
             "guidance (UNet batch 2), one image, one fresh process per mode. Peak = VmHWM. Per graph: the peak "
             "inside its calls (VmHWM reset before each call) / its weights on disk. A board fits when peak + "
             f"{SYSTEM_RESERVE_MB} MB (kernel and a desktop-less OS) is at most its memory.", "",
             "| mode | after imports MB | after load MB | text encoder peak / weights | UNet peak / weights "
             "| VAE decoder peak / weights | peak RSS MB | held by | boards | image vs fp32 max / mean |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for mode, r in results.items():
        peaks, weights = r["graph_peaks"], r["weights_mb"]
        cells = [f"{peaks.get(g, 0):.0f} / {weights[g]:.0f}" for g in ("text_encoder", "unet", "vae_decoder")]
        holder = max(peaks, key=peaks.get) if max(peaks.values()) >= r["peak_load"] else "loading"
        lines.append(f"| {mode} | {r['after_imports']:.0f} | {r['after_load']:.0f} | {' | '.join(cells)} | "
                     f"{r['peak']:.0f} | {holder} | {boards_that_fit(r['peak'])} | {_difference(r)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("sd15", "tiny"), default="sd15")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    folders = build_folders(args.model, args.cache, {MODES[m][0] for m in args.modes})
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            results[mode] = run_mode(mode, folders[MODES[mode][0]], args.size, args.steps, Path(tmp) / f"{len(results)}.npy")
            print(mode, json.dumps(results[mode]), flush=True)
        image_differences(results, Path(tmp))
    text = report(results, args.size, args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    (args.out.with_suffix(".json")).write_text(json.dumps(results, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
