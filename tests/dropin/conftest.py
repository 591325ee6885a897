"""The catalogue's two runs, once a session: a local Hugging Face cache per side holding the tiny
pipelines under the Hub ids the scripts use (diffusers folders for the reference run, their edge-sched
ONNX exports for the ported run), then tests.dropin.runner in a subprocess per side, offline."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Hub id -> tiny pipeline kind (tests/runtime/conftest.py BUILDERS)
REPOS = {
    "runwayml/stable-diffusion-v1-5": "sd", "stabilityai/stable-diffusion-2": "sd", "ptx0/pseudo-journey-v2": "sd",
    "runwayml/stable-diffusion-inpainting": "inpaint", "stabilityai/stable-diffusion-xl-base-1.0": "sdxl",
    "SG161222/RealVisXL_V4.0": "sdxl", "SimianLuo/LCM_Dreamshaper_v7": "lcm", "google/ddpm-cifar10-32": "ddpm",
}
#: "float" / "levels" -> case -> the largest difference found between the two runs (printed at the end)
CATALOGUE_DIFFS: dict[str, dict[str, float]] = {"float": {}, "levels": {}, "equal": {}}
OUTCOMES: dict[str, str] = collections.OrderedDict()


def _pictures(folder: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:32, 0:32] / 31.0
    pixels = np.stack([x, y, 0.5 + 0.3 * np.sin(6 * x * y)], axis=-1) + 0.05 * rng.standard_normal((32, 32, 3))
    Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(folder / "init.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    Image.fromarray(mask).save(folder / "mask.png")


def _run(side: str, cache: Path, out: Path) -> dict:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("HF_HOME", None)
    proc = subprocess.run([sys.executable, "-m", "tests.dropin.runner", side, str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3000)
    if proc.returncode != 0:
        raise RuntimeError(f"the {side} run failed as a whole:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="session")
def catalogue_runs(tmp_path_factory):
    from tests.export.conftest import populate_hf_cache
    from tests.runtime.conftest import _build

    root = tmp_path_factory.mktemp("dropin")
    built: dict[tuple[str, str], Path] = {}

    def folder(kind: str, how: str) -> Path:
        if (kind, how) not in built:
            source = None if how == "source" else folder(kind, "source")
            built[kind, how] = _build(kind, how, source, root / "models" / f"{kind}-{how}")
        return built[kind, how]

    for side, how in (("reference", "source"), ("ours", "edge-onnx")):
        for repo, kind in REPOS.items():
            populate_hf_cache(root / f"hub-{side}", folder(kind, how), repo_id=repo)
    runs = root / "runs"
    runs.mkdir()
    _pictures(runs)
    return {side: dict(_run(side, root / f"hub-{side}", runs / side), folder=runs / side)
            for side in ("ours", "reference")}


def pytest_terminal_summary(terminalreporter):
    if not OUTCOMES:
        return
    counts = collections.Counter(OUTCOMES.values())
    terminalreporter.write_sep("-", "drop-in catalogue (tests/dropin): cases by outcome")
    for outcome, n in sorted(counts.items()):
        terminalreporter.write_line(f"{outcome:55s} {n:3d}")
    if CATALOGUE_DIFFS["equal"]:
        terminalreporter.write_line(f"compared with diffusers/optimum, configs and names: "
                                    f"{len(CATALOGUE_DIFFS['equal'])} cases, all equal")
    for kind, unit in (("float", "max abs difference"), ("levels", "8-bit levels")):
        diffs = CATALOGUE_DIFFS[kind]
        if diffs:
            case, worst = max(diffs.items(), key=lambda kv: kv[1])
            terminalreporter.write_line(f"compared with diffusers/optimum, {kind} outputs: {len(diffs)} cases, "
                                        f"worst {unit} {worst:.3g} ({case})")
