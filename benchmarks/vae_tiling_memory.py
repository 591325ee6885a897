"""Peak RSS of VAE decoding at 512x512, with and without tiled decoding (pipe.enable_vae_tiling()).

The SD1.5-size VAE decoder (random weights, sd15_random.VAE's config) is exported once to ONNX into
benchmarks/.cache/vae-sd15/vae_decoder/ (torch needed for that step only). Each setting then runs in a
fresh child process without torch: load the graph (onnxruntime, CPU), decode one 1x4x64x64 latent, and
report the process's VmHWM (peak RSS) and the decode time; VmHWM is also read after loading, so the
decode's own peak shows. Settings: untiled; tiling with diffusers' default tiles (the config's
sample_size 512: at 512x512 nothing is tiled, as in diffusers); tiling with 256-pixel tiles (32-latent,
diffusers' overlap 0.25: 3x3 tiles) and with 128-pixel tiles (5x5 tiles).

    python benchmarks/vae_tiling_memory.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache" / "vae-sd15"
SETTINGS = {"untiled": None, "tiled, default tiles (512)": (512, 64), "tiled, 256-pixel tiles": (256, 32),
            "tiled, 128-pixel tiles": (128, 16)}

CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

folder, setting = Path(sys.argv[1]), json.loads(sys.argv[2])
from edge_sched.pipelines.graphs import Graphs
from edge_sched.pipelines.loading import engine_options
from edge_sched.pipelines.models import AutoencoderKL
graphs = Graphs(folder, ["vae_decoder"], "onnxruntime", engine_options("onnxruntime"))
vae = AutoencoderKL(graphs)
vae.graph  # load
loaded = hwm()
if setting is not None:
    vae.enable_tiling()
    vae.tile_sample_min_size, vae.tile_latent_min_size = setting
z = np.random.default_rng(0).standard_normal((1, 4, 64, 64)).astype(np.float32)
start = time.perf_counter()
image = vae.decode(z).sample
seconds = time.perf_counter() - start
assert image.shape == (1, 3, 512, 512)
print(json.dumps({"peak_mb": hwm(), "after_load_mb": loaded, "seconds": seconds,
                  "torch": "torch" in sys.modules}))
"""


def build(folder: Path) -> Path:
    """Export the SD1.5-size VAE decoder (random weights) once."""
    target = folder / "vae_decoder" / "model.onnx"
    if target.is_file():
        return folder
    import torch
    from diffusers import AutoencoderKL

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from sd15_random import VAE

    torch.manual_seed(0)
    vae = AutoencoderKL(**VAE).eval()

    class Decoder(torch.nn.Module):
        def __init__(self, vae):
            super().__init__()
            self.vae = vae

        def forward(self, latent_sample):
            return self.vae.decode(latent_sample).sample

    target.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(Decoder(vae), (torch.zeros(1, 4, 64, 64),), str(target), input_names=["latent_sample"],
                          output_names=["sample"], dynamic_axes={"latent_sample": {0: "b", 2: "h", 3: "w"},
                                                                 "sample": {0: "b", 2: "H", 3: "W"}},
                          opset_version=17, dynamo=False)
    vae.save_config(target.parent)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = build(CACHE)
    rows = []
    for name, setting in SETTINGS.items():
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, "-c", CHILD, str(folder), json.dumps(setting)], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        assert not any(r["torch"] for r in runs)
        rows.append((name, statistics.median(r["peak_mb"] for r in runs),
                     statistics.median(r["after_load_mb"] for r in runs),
                     statistics.median(r["seconds"] for r in runs)))
    print("VAE decode at 512x512 (SD1.5-size decoder, onnxruntime CPU, fp32), medians of", args.repeats, "runs")
    print(f"{'setting':32s} {'peak RSS MB':>12s} {'after load MB':>14s} {'decode s':>9s}")
    for name, peak, loaded, seconds in rows:
        print(f"{name:32s} {peak:12.0f} {loaded:14.0f} {seconds:9.2f}")


if __name__ == "__main__":
    main()
