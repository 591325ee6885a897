"""fp16 weights and OpenVINO int8 weight compression against fp32, on the SD1.5-architecture pipeline:
size on disk, steady image, peak RSS and the image difference (same seed, same backend, fp32 compute).

    python benchmarks/weight_variants.py     # adds "variants" to benchmarks/results/performance.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from performance import folder_size_mb, machine, run_child  # noqa: E402

# variant -> (runner, fp32 variant it is compared with)
VARIANTS = {
    "onnx": ("edge_sched-ort", "onnx"),
    "onnx-fp16": ("edge_sched-ort", "onnx"),
    "openvino": ("edge_sched-ov", "openvino"),
    "openvino-fp16": ("edge_sched-ov", "openvino"),
    "openvino-int8": ("edge_sched-ov", "openvino"),
}


def main(argv=None) -> int:
    import numpy as np

    from sd15_random import build

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args(argv)

    def say(message):
        print(message, file=sys.stderr, flush=True)

    folders = build(args.cache / "sd15", list(VARIANTS), say=say)
    settings = dict(height=args.height, width=args.width, steps=args.steps, guidance_scale=7.5,
                    repeats=args.repeats, precision="f32")
    rows, images = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant, (runner, _) in VARIANTS.items():
            say(f"{variant}: {runner}")
            image = Path(tmp) / f"{variant}.npy"
            static = runner.startswith("edge_sched-ov")  # load-time reshape is OpenVINO's
            result = run_child(runner, folders[variant], {**settings, "static": static, "save_image": str(image)},
                               timeout=1800)
            rows[variant] = {"runner": runner, "size_mb": round(folder_size_mb(folders[variant]), 1), **result}
            if "error" not in result:
                images[variant] = np.load(image)
    for variant, (_, reference) in VARIANTS.items():
        if variant in images and reference in images and variant != reference:
            rows[variant]["max_abs_image_diff"] = float(np.abs(images[variant] - images[reference]).max())
            rows[variant]["mean_abs_image_diff"] = float(np.abs(images[variant] - images[reference]).mean())
    path = args.out / "results" / "performance.json"
    results = json.loads(path.read_text())
    results["variants"] = {"settings": settings, "rows": rows, "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    from report import write_report

    write_report(results, args.out)
    say(json.dumps(rows, indent=1)[:3000])
    return 1 if any("error" in r for r in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
