"""Session fixtures of the runtime tests; every module in this folder can ask for them by name.

``pipeline_folder(kind, how)``: a tiny random-weight diffusers pipeline (tests/export/tiny.py) of ``kind``
(see BUILDERS), as its diffusers folder (how="source"), exported by edge-sched's export/ ("edge-onnx",
"edge-openvino"; "edge-onnx-fused", "edge-onnx-int8", "edge-openvino-int8": EXPORT_OPTIONS) or by optimum's exporters ("optimum-onnx"; "optimum-openvino" for "sd"); each built
lazily, once a session. ``sd_folders(how)`` is ``pipeline_folder("sd", how)``, ``tiny_sd_source`` its source.
``reference_pipeline(name, kind)``: diffusers' pipeline class ``name`` on ``pipeline_folder(kind, "source")``,
loaded once (``reference_sd``: the StableDiffusionPipeline one). ``tokenizer_folders`` /
``reference_tokenizers``: tokenizer folders saved by transformers and transformers' tokenizers of them.
``flow_folder(kind, how)`` / ``flow_reference(kind)``: the SD3, FLUX and Sana ones (flow_folders.py).
"""

from __future__ import annotations

import collections
import functools
from pathlib import Path

import pytest

from tests.export.tiny import build_tiny_ddpm, build_tiny_inpaint, build_tiny_lcm, build_tiny_sd, build_tiny_sdxl

from .flow_folders import flow_folder, flow_reference  # noqa: F401  (fixtures of the flow pipelines)
from .pipeline_runs import load_reference
from .tokenizer_folders import save_tokenizer_folders, transformers_tokenizers

#: max-abs image differences per (pipeline, folder) measured by the parity tests, printed at the end
IMAGE_PARITY: dict[str, list] = collections.defaultdict(list)

# "sd": a plain 4-channel SD pipeline (also inpainting by latent masking); "inpaint": a 9-channel UNet
BUILDERS = {
    "sd": build_tiny_sd,
    "inpaint": build_tiny_inpaint,
    "lcm": build_tiny_lcm,
    "sdxl": build_tiny_sdxl,
    "ddpm": build_tiny_ddpm,
    "ddim": functools.partial(build_tiny_ddpm, ddim=True),
}
OPTIMUM_TASKS = {"sd": "text-to-image", "inpaint": "inpainting", "lcm": "text-to-image", "sdxl": "text-to-image"}
HOWS = ("source", "edge-onnx", "edge-openvino", "optimum-onnx", "optimum-openvino", "edge-onnx-fused", "edge-onnx-int8",
        "edge-openvino-int8")
#: export options of the small-memory folders: attention fused for ONNX Runtime, int8 weights
EXPORT_OPTIONS = {"edge-onnx-fused": dict(format="onnx", fuse_attention=True),
                  "edge-onnx-int8": dict(format="onnx", fuse_attention=True, weight_compression="int8"),
                  "edge-openvino-int8": dict(format="openvino", weight_compression="int8")}
SD_FOLDERS = ("edge-onnx", "edge-openvino", "optimum-onnx", "optimum-openvino")

#: diffusers' from_pretrained options per reference pipeline class
REFERENCE_OPTIONS = {
    "StableDiffusionInpaintPipeline": dict(safety_checker=None, requires_safety_checker=False),
    "LatentConsistencyModelPipeline": dict(safety_checker=None),
    # the invisible watermark is not part of the runtime (and its package is not installed)
    "StableDiffusionXLPipeline": dict(add_watermarker=False),
}


def _build(kind: str, how: str, source: Path | None, out: Path) -> Path:
    if how == "source":
        return BUILDERS[kind](out)
    if how.startswith("edge-"):
        import export

        options = EXPORT_OPTIONS.get(how, dict(format=how.removeprefix("edge-")))
        export.export_pipeline(source, out, progress=None, **options)
    elif how == "optimum-onnx" and kind in OPTIMUM_TASKS:
        from optimum.exporters.onnx import main_export

        main_export(str(source), str(out), task=OPTIMUM_TASKS[kind])
    elif how == "optimum-openvino" and kind == "sd":
        from optimum.intel import OVStableDiffusionPipeline

        OVStableDiffusionPipeline.from_pretrained(str(source), export=True, compile=False).save_pretrained(str(out))
    else:
        raise ValueError(f"no {how!r} folder of {kind!r}: optimum exports {sorted(OPTIMUM_TASKS)} to ONNX, "
                         "'sd' to OpenVINO")
    return out


@pytest.fixture(scope="session")
def pipeline_folder(tmp_path_factory):
    cache: dict[tuple[str, str], Path] = {}

    def get(kind: str, how: str) -> Path:
        if kind not in BUILDERS or how not in HOWS:
            raise ValueError(f"unknown folder ({kind!r}, {how!r}); kinds {sorted(BUILDERS)}, hows {HOWS}")
        if (kind, how) not in cache:
            source = None if how == "source" else get(kind, "source")
            cache[kind, how] = _build(kind, how, source, tmp_path_factory.mktemp(f"{kind}-{how}") / "model")
        return cache[kind, how]

    return get


@pytest.fixture(scope="session")
def tiny_sd_source(pipeline_folder) -> Path:
    """The tiny SD's diffusers folder."""
    return pipeline_folder("sd", "source")


@pytest.fixture(scope="session")
def sd_folders(pipeline_folder):
    """``sd_folders("optimum-onnx")`` -> the tiny SD exported by optimum to ONNX."""
    return functools.partial(pipeline_folder, "sd")


@pytest.fixture(scope="session")
def reference_pipeline(pipeline_folder):
    import diffusers

    cache = {}

    def get(name: str, kind: str):
        if (name, kind) not in cache:
            cls = getattr(diffusers, name)
            cache[name, kind] = load_reference(cls, pipeline_folder(kind, "source"), **REFERENCE_OPTIONS.get(name, {}))
        return cache[name, kind]

    return get


@pytest.fixture(scope="session")
def reference_sd(reference_pipeline):
    """diffusers' torch StableDiffusionPipeline on the tiny SD's weights."""
    return reference_pipeline("StableDiffusionPipeline", "sd")


@pytest.fixture(scope="session")
def tokenizer_folders(tmp_path_factory) -> dict[str, Path]:
    return save_tokenizer_folders(tmp_path_factory.mktemp("tokenizers"))


@pytest.fixture(scope="session")
def reference_tokenizers(tokenizer_folders) -> dict[str, tuple]:
    return transformers_tokenizers(tokenizer_folders)


def pytest_terminal_summary(terminalreporter):
    if not IMAGE_PARITY:
        return
    terminalreporter.write_sep("-", "runtime image parity vs diffusers (max abs pixel difference, images in [0, 1])")
    for key in sorted(IMAGE_PARITY):
        values = IMAGE_PARITY[key]
        terminalreporter.write_line(f"{key:45s} {len(values):3d} runs   worst {max(values):.3g}")
