"""Session fixtures: one tiny random-weight SD pipeline, exported by edge-sched's export/ and by
optimum's own exporters, to ONNX and OpenVINO (each built once per test session)."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from tests.export.tiny import build_tiny_sd

#: worst max-abs image difference per (pipeline, folder) measured by the parity tests
IMAGE_PARITY: dict[str, list] = collections.defaultdict(list)


@pytest.fixture(scope="session")
def tiny_sd_source(tmp_path_factory) -> Path:
    return build_tiny_sd(tmp_path_factory.mktemp("rt_src") / "tiny-sd")


def _ours(source: Path, out: Path, fmt: str) -> Path:
    import export

    export.export_pipeline(source, out, format=fmt, progress=None)
    return out


def _optimum_onnx(source: Path, out: Path) -> Path:
    from optimum.exporters.onnx import main_export

    main_export(str(source), str(out), task="text-to-image")
    return out


def _optimum_openvino(source: Path, out: Path) -> Path:
    from optimum.intel import OVStableDiffusionPipeline

    OVStableDiffusionPipeline.from_pretrained(str(source), export=True, compile=False).save_pretrained(str(out))
    return out


SD_FOLDERS = ("edge-onnx", "edge-openvino", "optimum-onnx", "optimum-openvino")


@pytest.fixture(scope="session")
def sd_folders(tiny_sd_source, tmp_path_factory):
    """Built lazily, once each: ``sd_folders("optimum-onnx")`` -> folder."""
    cache: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in cache:
            out = tmp_path_factory.mktemp(kind) / "model"
            cache[kind] = {
                "edge-onnx": lambda: _ours(tiny_sd_source, out, "onnx"),
                "edge-openvino": lambda: _ours(tiny_sd_source, out, "openvino"),
                "optimum-onnx": lambda: _optimum_onnx(tiny_sd_source, out),
                "optimum-openvino": lambda: _optimum_openvino(tiny_sd_source, out),
            }[kind]()
        return cache[kind]

    return get


@pytest.fixture(scope="session")
def reference_sd(tiny_sd_source):
    """diffusers' torch pipeline on the same weights."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_source)
    pipe.set_progress_bar_config(disable=True)
    pipe.base_scheduler_config = pipe.scheduler.config
    return pipe


def pytest_terminal_summary(terminalreporter):
    if not IMAGE_PARITY:
        return
    terminalreporter.write_sep("-", "runtime image parity vs diffusers (max abs pixel difference, images in [0, 1])")
    for key in sorted(IMAGE_PARITY):
        values = IMAGE_PARITY[key]
        terminalreporter.write_line(f"{key:45s} {len(values):3d} runs   worst {max(values):.3g}")
