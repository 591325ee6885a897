"""Tiny flow-matching pipelines (tests/export/tiny_flow.py) for the runtime tests, each built once a session:
``flow_folder(kind, how)`` with kind in FLOW_BUILDERS and how in "source" (the diffusers folder),
"edge-onnx" / "edge-openvino" (our export/), "optimum-onnx" / "optimum-openvino" (optimum's own exporters,
each in a subprocess: importing optimum-intel's exporter breaks optimum-onnx's FLUX export in the same
process). ``flow_reference(kind)``: diffusers' pipeline on the source folder, loaded once.
The fixtures are defined here and made visible by tests/runtime/conftest.py and tests/export/conftest.py;
the caches are module-level, so both folders share one build. Running and comparing pipelines:
tests/runtime/pipeline_runs.py."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.export.tiny_flow import build_tiny_flux, build_tiny_sana, build_tiny_sd3

FLOW_BUILDERS = {
    "sd3": build_tiny_sd3,
    "sd3-no-t5": functools.partial(build_tiny_sd3, with_t5=False, seed=1),
    "flux": build_tiny_flux,
    "flux-schnell": functools.partial(build_tiny_flux, guidance_embeds=False, seed=1),
    "sana": build_tiny_sana,
}
REFERENCE_CLASSES = {"sd3": "StableDiffusion3Pipeline", "sd3-no-t5": "StableDiffusion3Pipeline",
                     "flux": "FluxPipeline", "flux-schnell": "FluxPipeline", "sana": "SanaPipeline"}
OPTIMUM_OPENVINO = {"StableDiffusion3Pipeline": "OVStableDiffusion3Pipeline", "FluxPipeline": "OVFluxPipeline"}
HOWS = ("source", "edge-onnx", "edge-openvino", "optimum-onnx", "optimum-openvino")
#: seconds each build / export took, printed by test_flow_export's summary test
BUILD_SECONDS: dict[tuple[str, str], float] = {}

_FOLDERS: dict[tuple[str, str], Path] = {}
_REFERENCES: dict[str, object] = {}

_OPTIMUM_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
how, source, out, cls = sys.argv[1:5]
if how == "optimum-onnx":
    from optimum.exporters.onnx import main_export
    main_export(source, out, task="text-to-image")
else:
    import optimum.intel
    getattr(optimum.intel, cls).from_pretrained(source, export=True, compile=False).save_pretrained(out)
"""


@contextlib.contextmanager
def no_openvino_telemetry():
    """openvino-telemetry's own switch (``disable_in_ci``): on a machine without network its sends make each
    OpenVINO conversion about twice as slow (measured: tiny Sana 55 s -> 28 s). Only around our exports."""
    before = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = before


def _optimum_export(how: str, kind: str, source: Path, out: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "CI": "true"}
    cls = OPTIMUM_OPENVINO.get(REFERENCE_CLASSES[kind], "")
    done = subprocess.run([sys.executable, "-c", _OPTIMUM_SCRIPT, how, str(source), str(out), cls],
                          capture_output=True, text=True, env=env, timeout=900)
    if done.returncode:
        raise RuntimeError(f"{how} export of {kind} failed:\n{done.stderr[-3000:]}")


def build_folder(kind: str, how: str, tmp_root: Path) -> Path:
    if kind not in FLOW_BUILDERS or how not in HOWS:
        raise ValueError(f"unknown flow folder ({kind!r}, {how!r}); kinds {sorted(FLOW_BUILDERS)}, hows {HOWS}")
    if (kind, how) in _FOLDERS:
        return _FOLDERS[kind, how]
    source = None if how == "source" else build_folder(kind, "source", tmp_root)
    out = tmp_root / f"{kind}-{how}" / "model"
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if how == "source":
        import torch

        torch.set_num_threads(1)
        FLOW_BUILDERS[kind](out)
    elif how.startswith("edge-"):
        import export

        with no_openvino_telemetry():
            export.export_pipeline(source, out, format=how.removeprefix("edge-"), progress=None)
    else:
        _optimum_export(how, kind, source, out)
    BUILD_SECONDS[kind, how] = time.perf_counter() - start
    _FOLDERS[kind, how] = out
    return out


@pytest.fixture(scope="session")
def flow_folder(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "flow"
    root.mkdir(exist_ok=True)
    return lambda kind, how: build_folder(kind, how, root)


@pytest.fixture(scope="session")
def flow_reference(flow_folder):
    def get(kind: str):
        if kind not in _REFERENCES:
            import diffusers

            options = dict(text_encoder_3=None, tokenizer_3=None) if kind == "sd3-no-t5" else {}
            pipe = getattr(diffusers, REFERENCE_CLASSES[kind]).from_pretrained(flow_folder(kind, "source"), **options)
            pipe.set_progress_bar_config(disable=True)
            pipe.base_scheduler_config = pipe.scheduler.config
            _REFERENCES[kind] = pipe
        return _REFERENCES[kind]

    return get


# flow-capable schedulers, as (id, class, config overrides, call arguments)
FLOW_SIGMAS = {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": 3.0}
