"""Session fixtures: tiny random-weight SD pipelines saved with save_pretrained, each exported once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("optimum.exporters.onnx", reason="the export extra is not installed")

from .tiny import build_tiny_sd  # noqa: E402

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


def populate_hf_cache(cache_dir: Path, source: Path, repo_id: str = HUB_REPO, commit: str = HUB_COMMIT) -> Path:
    """Lay a pipeline out as huggingface_hub's cache does (refs/main -> snapshots/<commit>/...)."""
    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    shutil.copytree(source, repo_dir / "snapshots" / commit)
    return repo_dir
