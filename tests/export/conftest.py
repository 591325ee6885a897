"""Session fixtures: tiny random-weight SD pipelines saved with save_pretrained, each exported once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("optimum.exporters.onnx", reason="the export extra is not installed")

import torch

# tiny models on a shared 2-core machine: torch's second thread only waits on the other tenants
# (a 32-channel conv measured 28 ms with 2 threads, 0.8 ms with 1)
torch.set_num_threads(1)

from .tiny import (
    build_tiny_ddpm,
    build_tiny_inpaint,
    build_tiny_lcm,
    build_tiny_sd,
    build_tiny_sdxl,
)

from tests.runtime.flow_folders import flow_folder  # noqa: E402,F401  (the flow pipelines' fixture, shared)

GRAPH_FILE = {"onnx": "model.onnx", "openvino": "openvino_model.xml"}
COMPONENTS = ("text_encoder", "unet", "vae_encoder", "vae_decoder")
HUB_REPO = "tiny-org/tiny-sd"
HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> Path:
    """SD 1.x style: epsilon prediction, PNDM scheduler."""
    return build_tiny_sd(tmp_path_factory.mktemp("src") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_sd_v(tmp_path_factory) -> Path:
    """SD 2.x style: v-prediction, linear projections, DDIM scheduler."""
    return build_tiny_sd(tmp_path_factory.mktemp("src_v") / "tiny-sd-v", v_prediction=True, seed=1)


@pytest.fixture(scope="session")
def tiny_ddpm(tmp_path_factory) -> Path:
    """Unconditional UNet2DModel, DDPMPipeline."""
    return build_tiny_ddpm(tmp_path_factory.mktemp("src_ddpm") / "tiny-ddpm")


@pytest.fixture(scope="session")
def tiny_ddim_cls(tmp_path_factory) -> Path:
    """Class-conditional UNet2DModel (10 classes), DDIMPipeline."""
    return build_tiny_ddpm(tmp_path_factory.mktemp("src_ddim_cls") / "tiny-ddim-cls", ddim=True,
                           class_conditional=True, seed=2)


class Exported:
    def __init__(self, folder: Path, manifest: dict, messages: list[str], fmt: str):
        self.folder, self.manifest, self.messages, self.format = folder, manifest, messages, fmt

    def graph(self, component: str) -> Path:
        return self.folder / component / GRAPH_FILE[self.format]


def _export(source, out: Path, fmt: str, **kwargs) -> Exported:
    import export

    messages: list[str] = []
    manifest = export.export_pipeline(source, out, format=fmt, progress=messages.append, **kwargs)
    return Exported(out, manifest, messages, fmt)


@pytest.fixture(scope="session", params=["onnx", "openvino"])
def exported(request, tiny_sd, tmp_path_factory) -> Exported:
    """The tiny epsilon pipeline exported once per format per session."""
    return _export(tiny_sd, tmp_path_factory.mktemp(f"out_{request.param}") / "model", request.param)


@pytest.fixture(scope="session")
def exported_v(tiny_sd_v, tmp_path_factory) -> Exported:
    """The v-prediction pipeline, to OpenVINO, shipping Euler with trailing spacing."""
    return _export(
        tiny_sd_v,
        tmp_path_factory.mktemp("out_v") / "model",
        "openvino",
        scheduler="EulerDiscreteScheduler",
        scheduler_overrides={"timestep_spacing": "trailing"},
    )


@pytest.fixture(scope="session", params=[("uncond", "onnx"), ("class", "onnx"), ("class", "openvino")],
                ids=lambda p: "-".join(p))
def exported_unet2d(request, tiny_ddpm, tiny_ddim_cls, tmp_path_factory) -> Exported:
    """UNet2DModel pipelines, exported directly (no optimum exporter for them)."""
    kind, fmt = request.param
    source = tiny_ddpm if kind == "uncond" else tiny_ddim_cls
    out = tmp_path_factory.mktemp(f"out_unet2d_{kind}_{fmt}") / "model"
    result = _export(source, out, fmt)
    result.source, result.kind = source, kind
    return result


KIND_BUILDERS = {"inpaint": build_tiny_inpaint, "lcm": build_tiny_lcm, "sdxl": build_tiny_sdxl}


@pytest.fixture(scope="session")
def tiny_kind(tmp_path_factory):
    """Tiny inpainting / LCM / SDXL pipelines, each built once per session on first use."""
    built = {}

    def get(kind: str) -> Path:
        if kind not in built:
            built[kind] = KIND_BUILDERS[kind](tmp_path_factory.mktemp(f"src_{kind}") / f"tiny-{kind}")
        return built[kind]

    return get


# inpainting differs from SD only by the UNet's 9 input channels: ONNX only, to keep the folder's time down
# (OpenVINO SD-family export is covered by SD, v-prediction, LCM and SDXL)
KIND_EXPORTS = [("inpaint", "onnx"), ("inpaint", "openvino"), ("lcm", "onnx"), ("lcm", "openvino"), ("sdxl", "onnx"), ("sdxl", "openvino")]


@pytest.fixture(scope="session", params=KIND_EXPORTS, ids=lambda p: "-".join(p))
def exported_kind(request, tiny_kind, tmp_path_factory) -> Exported:
    """Inpainting (9-channel UNet), LCM (timestep_cond) and SDXL (two text encoders, text_embeds, time_ids)
    pipelines, each exported once per format."""
    kind, fmt = request.param
    source = tiny_kind(kind)
    result = _export(source, tmp_path_factory.mktemp(f"out_{kind}_{fmt}") / "model", fmt)
    result.source, result.kind = source, kind
    return result


def populate_hf_cache(cache_dir: Path, source: Path, repo_id: str = HUB_REPO, commit: str = HUB_COMMIT) -> Path:
    """Lay a pipeline out as huggingface_hub's cache does (refs/main -> snapshots/<commit>/...)."""
    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    shutil.copytree(source, repo_dir / "snapshots" / commit)
    return repo_dir
