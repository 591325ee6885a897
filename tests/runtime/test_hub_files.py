"""Hub downloads (issue 16 item 4): the allow-list follows the backend chosen and the files each ONNX
graph references. A fake Hub (huggingface_hub's snapshot_download and list_repo_files replaced) serves
a local "remote" folder and records every allow-list; the pipelines loaded from it must give the image
the local folder gives."""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_sched.pipelines import StableDiffusionPipeline
from edge_sched.pipelines.hub_files import graph_files_for, onnx_external_data

REPO = "tiny-org/tiny-sd"


class FakeHub:
    def __init__(self, remote: Path, local: Path):
        self.remote, self.local, self.calls = remote, local, []

    def files(self) -> list[str]:
        return sorted(p.relative_to(self.remote).as_posix() for p in self.remote.rglob("*") if p.is_file())

    def snapshot_download(self, repo_id, allow_patterns=None, **kwargs):
        assert repo_id == REPO
        self.calls.append(list(allow_patterns))
        for name in self.files():
            if any(fnmatch.fnmatch(name, p) for p in allow_patterns):
                target = self.local / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(self.remote / name, target)
        return str(self.local)

    def downloaded(self) -> set[str]:
        return {p.relative_to(self.local).as_posix() for p in self.local.rglob("*") if p.is_file()}


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    import huggingface_hub

    def make(remote: Path) -> FakeHub:
        hub = FakeHub(remote, tmp_path / "downloaded")
        monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
        monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda api, repo_id, **kw: hub.files())
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        try:  # the offline probe (edge_sched.hub) would find no network here: the fake Hub is "online"
            import edge_sched.hub

            monkeypatch.setattr(edge_sched.hub, "resolves", lambda *a, **k: True)
        except ImportError:
            pass
        return hub

    return make


@pytest.fixture(scope="module")
def both_formats(sd_folders, tmp_path_factory) -> Path:
    """One repository holding the ONNX graphs, the OpenVINO IR and torch weights of every component."""
    remote = tmp_path_factory.mktemp("remote") / "repo"
    shutil.copytree(sd_folders("edge-onnx"), remote)
    ir = sd_folders("edge-openvino")
    for xml in ir.glob("*/openvino_model.xml"):
        shutil.copy(xml, remote / xml.parent.name / xml.name)
        shutil.copy(xml.with_suffix(".bin"), remote / xml.parent.name / "openvino_model.bin")
    (remote / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"torch weights")
    return remote


def _image(pipe):
    pipe.set_progress_bar_config(disable=True)
    return pipe("a cat", num_inference_steps=2, generator=1, output_type="np").images


@pytest.mark.parametrize("backend, graph, other", [("onnxruntime", "model.onnx", "openvino_model"),
                                                   ("openvino", "openvino_model.xml", "model.onnx")])
def test_one_backend_is_downloaded(fake_hub, both_formats, sd_folders, backend, graph, other):
    hub = fake_hub(both_formats)
    pipe = StableDiffusionPipeline.from_pretrained(REPO, backend=backend)
    got = hub.downloaded()
    assert pipe.backend == backend
    assert all(f"{c}/{graph}" in got for c in ("unet", "text_encoder", "vae_decoder"))
    assert not [f for f in got if other in f], f"{backend}: downloaded the other format too"
    assert not [f for f in got if f.endswith(".safetensors")], "torch weights downloaded"
    assert "model_index.json" in got and "tokenizer/vocab.json" in got and "scheduler/scheduler_config.json" in got
    local = StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx" if backend == "onnxruntime"
                                                               else "edge-openvino"), backend=backend)
    np.testing.assert_array_equal(_image(pipe), _image(local))


def _with_external_data(folder: Path, component: str, location: str) -> None:
    import onnx

    path = folder / component / "model.onnx"
    model = onnx.load(str(path))
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=location,
                    size_threshold=0)


def test_external_data_of_any_name_is_downloaded(fake_hub, sd_folders, tmp_path):
    """Older exports keep the UNet's weights in unet/weights.pb, others in model.onnx_data or model.onnx.data."""
    remote = tmp_path / "remote"
    shutil.copytree(sd_folders("edge-onnx"), remote)
    for component, location in (("unet", "weights.pb"), ("text_encoder", "model.onnx_data"),
                                ("vae_decoder", "model.onnx.data")):
        _with_external_data(remote, component, location)
        assert onnx_external_data(remote / component / "model.onnx") == [location]
    (remote / "unet" / "unrelated.bin").write_bytes(b"not referenced")
    hub = fake_hub(remote)
    pipe = StableDiffusionPipeline.from_pretrained(REPO, backend="onnxruntime")
    got = hub.downloaded()
    assert {"unet/weights.pb", "text_encoder/model.onnx_data", "vae_decoder/model.onnx.data"} <= got
    assert "unet/unrelated.bin" not in got
    assert any("unet/weights.pb" in call for call in hub.calls)  # asked for by name, from the graph
    local = StableDiffusionPipeline.from_pretrained(sd_folders("edge-onnx"))
    np.testing.assert_array_equal(_image(pipe), _image(local))


def test_graph_files_for_the_backend_and_variant():
    files = ["model_index.json", "unet/model.onnx", "unet/model.fp16.onnx", "unet/openvino_model.xml",
             "unet/openvino_model.bin", "vae_decoder/model.onnx", "vae_decoder/openvino_model.xml",
             "vae_decoder/openvino_model.bin"]
    assert graph_files_for(files, "auto", ["onnxruntime", "openvino"]) == (
        "openvino", ["unet/openvino_model.xml", "unet/openvino_model.bin", "vae_decoder/openvino_model.xml",
                     "vae_decoder/openvino_model.bin"])
    assert graph_files_for(files, "auto", ["onnxruntime"]) == ("onnxruntime", ["unet/model.onnx",
                                                                              "vae_decoder/model.onnx"])
    assert graph_files_for(files, "onnxruntime", ["onnxruntime"], variant="fp16")[1] == [
        "unet/model.fp16.onnx", "vae_decoder/model.onnx"]
    onnx_only = [f for f in files if "openvino" not in f]
    assert graph_files_for(onnx_only, "openvino", ["openvino"])[1] == ["unet/model.onnx", "vae_decoder/model.onnx"]
