"""Export options: ONNX fp16, static shapes for NPU-style devices, OpenVINO int8/int4 weight compression
(nncf), and a full disk."""

from __future__ import annotations

import errno
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import export
from export.backends import BACKENDS, OnnxBackend
from export.errors import ExportError
from export.static import plan_static_shapes

from .conftest import COMPONENTS


@pytest.fixture(scope="session")
def onnx_fp16(tiny_sd, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp16_onnx") / "model"
    return out, export.export_pipeline(tiny_sd, out, format="onnx", dtype="fp16", progress=None)


@pytest.mark.parametrize("exported", ["onnx"], indirect=True)  # compared with the fp32 ONNX export
def test_onnx_fp16(onnx_fp16, exported):
    out, m = onnx_fp16
    assert m["dtype"] == "fp16"
    for c in COMPONENTS:
        numbers = m["validation"][c]
        assert numbers["threshold_rel"] == 2e-2 and numbers["max_rel"] <= 2e-2, (c, numbers)
        # float32 in and out (the runtime feeds it like the fp32 graph), fp16 weights inside
        assert all(i["dtype"] in ("float32", "int64") for i in m["components"][c]["inputs"] + m["components"][c]["outputs"])
    import onnx

    unet = onnx.load(str(out / "unet" / "model.onnx"))
    kinds = {onnx.TensorProto.DataType.Name(t.data_type) for t in unet.graph.initializer if len(t.dims) > 1}
    assert kinds == {"FLOAT16"}, kinds
    half, full = (out / "unet" / "model.onnx").stat().st_size, exported.graph("unet").stat().st_size
    assert 0.4 * full < half < 0.65 * full, (half, full)
    assert export.verify_manifest(out) == []


@pytest.fixture(scope="session")
def onnx_static(tiny_sd, tmp_path_factory):
    out = tmp_path_factory.mktemp("static_onnx") / "model"
    return out, export.export_pipeline(tiny_sd, out, format="onnx", progress=None,
                                       static_shapes={"batch": 1, "height": 32, "width": 48})


def test_static_shapes_onnx_sd(onnx_static):
    out, m = onnx_static
    assert m["static_shapes"] == {"batch": 1, "height": 32, "width": 48, "latent_height": 16, "latent_width": 24,
                                  "classifier_free_guidance": True, "unet_batch": 2, "sequence_length": 77}
    shapes = {c: {i["name"]: i["shape"] for i in g["inputs"] + g["outputs"]} for c, g in m["components"].items()}
    assert shapes["text_encoder"] == {"input_ids": [1, 77], "last_hidden_state": [1, 77, 32], "pooler_output": [1, 32]}
    assert shapes["unet"]["sample"] == [2, 4, 16, 24] and shapes["unet"]["out_sample"] == [2, 4, 16, 24]
    assert shapes["unet"]["encoder_hidden_states"] == [2, 77, 32]
    assert shapes["vae_encoder"] == {"sample": [1, 3, 32, 48], "latent_parameters": [1, 8, 16, 24]}
    assert shapes["vae_decoder"] == {"latent_sample": [1, 4, 16, 24], "sample": [1, 3, 32, 48]}
    for c, numbers in m["validation"].items():
        assert numbers["max_rel"] <= 1e-3, (c, numbers)
    # onnxruntime holds the graph to them
    run = OnnxBackend.runner(out / "vae_decoder" / "model.onnx")
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        run({"latent_sample": np.zeros((1, 4, 16, 16), np.float32)})
    assert export.verify_manifest(out) == []


def test_static_shapes_openvino_unet2d_matches_torch(tiny_ddim_cls, tmp_path):
    """OpenVINO static reshape (what NPUs need) on a class-conditional UNet2DModel; the static graph
    still equals torch."""
    import openvino as ov
    import torch
    from diffusers import UNet2DModel

    out = tmp_path / "model"
    m = export.export_pipeline(tiny_ddim_cls, out, format="openvino", progress=None,
                               static_shapes={"batch": 2, "height": 24, "width": 32})
    plan = m["static_shapes"]
    assert plan["classifier_free_guidance"] is False and plan["unet_batch"] == 2
    assert (plan["latent_height"], plan["latent_width"]) == (24, 32) and plan["sequence_length"] is None
    model = ov.Core().read_model(str(out / "unet" / "openvino_model.xml"))
    assert {p.get_any_name(): list(p.get_shape()) for p in model.inputs} == {
        "sample": [2, 3, 24, 32], "timestep": [2], "class_labels": [2]}
    assert m["validation"]["unet"]["max_rel"] <= 1e-3
    rng = np.random.default_rng(0)
    inputs = {"sample": rng.standard_normal((2, 3, 24, 32)).astype(np.float32),
              "timestep": np.array([10, 900]), "class_labels": np.array([3, 7])}
    got = BACKENDS["openvino"].runner(out / "unet" / "openvino_model.xml")(inputs)["out_sample"]
    unet = UNet2DModel.from_pretrained(tiny_ddim_cls / "unet").eval()
    with torch.inference_mode():
        ref = unet(*(torch.from_numpy(inputs[k]) for k in ("sample", "timestep", "class_labels"))).sample.numpy()
    assert np.max(np.abs(got - ref)) <= 1e-3 * np.max(np.abs(ref))


def _fake_pipe(time_cond=None, vae_blocks=4, unet_blocks=4):
    unet = SimpleNamespace(config=SimpleNamespace(block_out_channels=(1,) * unet_blocks, time_cond_proj_dim=time_cond))
    vae = SimpleNamespace(config=SimpleNamespace(block_out_channels=(1,) * vae_blocks))
    return SimpleNamespace(unet=unet, vae=vae, tokenizer=SimpleNamespace(model_max_length=77))


def test_static_plan_rules():
    """SD at 512x768: latents /8, UNet batch doubled for CFG; an LCM UNet (guidance embedding) is not."""
    sd = plan_static_shapes(_fake_pipe(), "sd", {"batch": 2, "height": 512, "width": 768})
    assert (sd["latent_height"], sd["latent_width"], sd["unet_batch"]) == (64, 96, 4)
    lcm = plan_static_shapes(_fake_pipe(time_cond=256), "sd", {"batch": 2, "height": 512, "width": 512})
    assert lcm["classifier_free_guidance"] is False and lcm["unet_batch"] == 2
    with pytest.raises(ExportError, match="static width 516 is not divisible by the VAE scale factor 8"):
        plan_static_shapes(_fake_pipe(), "sd", {"batch": 1, "height": 512, "width": 516})
    with pytest.raises(ExportError, match="static height 520 gives a latent size 65 not divisible by the UNet's "
                                          "downsampling factor 8; use a multiple of 64"):
        plan_static_shapes(_fake_pipe(), "sd", {"batch": 1, "height": 520, "width": 512})
    with pytest.raises(ExportError, match="static batch must be a positive integer; got 0"):
        plan_static_shapes(_fake_pipe(), "sd", {"batch": 0, "height": 512, "width": 512})
    with pytest.raises(ExportError, match="static shapes must give exactly batch, height, width"):
        plan_static_shapes(_fake_pipe(), "sd", {"height": 512, "width": 512})


def test_parse_static_shapes():
    assert export.parse_static_shapes("1x512x768") == {"batch": 1, "height": 512, "width": 768}
    assert export.parse_static_shapes(" 2 X 64 x 64") == {"batch": 2, "height": 64, "width": 64}
    for bad in ("512x512", "1x512x512x3", "axbxc", ""):
        with pytest.raises(ExportError, match="static shapes must look like 1x512x512 \\(batch x height x width\\)"):
            export.parse_static_shapes(bad)


def test_static_shape_not_divisible_by_vae_leaves_nothing(tiny_sd, tmp_path):
    with pytest.raises(ExportError, match="static height 35 is not divisible by the VAE scale factor 2"):
        export.export_pipeline(tiny_sd, tmp_path / "out", format="onnx", progress=None,
                               static_shapes={"batch": 1, "height": 35, "width": 32})
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="session")
def compressed(tiny_ddpm, tmp_path_factory):
    """The tiny DDPM UNet, OpenVINO fp32 and nncf int8 / int4."""
    pytest.importorskip("nncf", reason="weight compression needs nncf")
    outs = {}
    for mode in (None, "int8", "int4"):
        out = tmp_path_factory.mktemp(f"ov_{mode}") / "model"
        outs[mode] = (out, export.export_pipeline(tiny_ddpm, out, format="openvino", progress=None,
                                                  weight_compression=mode))
    return outs


@pytest.mark.parametrize("mode, bound, shrink", [("int8", 5e-2, (0.2, 0.35)), ("int4", 1e-1, (0.1, 0.3))])
def test_openvino_weight_compression(compressed, mode, bound, shrink):
    import openvino as ov

    out, m = compressed[mode]
    assert m["weight_compression"] == mode and m["dtype"] == "fp32"
    numbers = m["validation"]["unet"]
    assert numbers["threshold_rel"] == bound and 0 < numbers["max_rel"] <= bound, numbers
    size = (out / "unet" / "openvino_model.bin").stat().st_size
    full = (compressed[None][0] / "unet" / "openvino_model.bin").stat().st_size
    assert shrink[0] * full < size < shrink[1] * full, (size, full)
    model = ov.Core().read_model(str(out / "unet" / "openvino_model.xml"))
    weight_types = {op.get_output_element_type(0).get_type_name() for op in model.get_ops() if op.get_type_name() == "Constant"}
    assert ("u8" if mode == "int8" else "u4") in weight_types, weight_types
    assert export.verify_manifest(out) == []


def test_weight_compression_without_nncf(tiny_ddpm, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nncf", None)  # import nncf -> ImportError
    with pytest.raises(ExportError, match="weight compression int8 needs nncf, which is not installed: pip install nncf"):
        export.export_pipeline(tiny_ddpm, tmp_path / "out", format="openvino", weight_compression="int8", progress=None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("wrapped", [False, True])
def test_disk_full_is_a_clear_error_and_leaves_nothing(tiny_ddpm, tmp_path, monkeypatch, wrapped):
    """ENOSPC while writing a graph (simulated after part of the file is written), raised directly or
    wrapped by the exporter: one clear message, OUTPUT as it was, no temporary folder left."""
    real = OnnxBackend.export_component

    def export_component(self, name, model, config, path):
        real(self, name, model, config, path)
        with open(path, "ab") as f:
            f.write(b"\0" * 1024)
        error = OSError(errno.ENOSPC, "No space left on device", str(path))
        if wrapped:
            raise RuntimeError("onnx save failed") from error
        raise error

    monkeypatch.setattr(OnnxBackend, "export_component", export_component)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous")
    (out / "edge_sched.json").write_text('{"edge_sched_manifest": 1, "files": {"keep.txt": "0"}}')  # an earlier export
    with pytest.raises(ExportError, match=r"out: no space left on the device while exporting \(\d+ MiB free now\); "
                                          "nothing was written"):
        export.export_pipeline(tiny_ddpm, out, format="onnx", overwrite=True, progress=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["edge_sched.json", "keep.txt"]


@pytest.mark.parametrize("exported_unet2d", [("uncond", "onnx")], indirect=True)
def test_set_scheduler_on_an_exported_folder(exported_unet2d, tmp_path):
    """Swap the shipped scheduler without re-exporting: config, model_index and manifest follow."""
    import shutil

    import diffusers

    folder = tmp_path / "copy"
    shutil.copytree(exported_unet2d.folder, folder)
    m = export.set_scheduler(folder, "DDIMScheduler", timestep_spacing="trailing")
    assert m["scheduler"]["class"] == "DDIMScheduler"
    assert export.verify_manifest(folder) == []
    assert json.loads((folder / "model_index.json").read_text())["scheduler"] == ["diffusers", "DDIMScheduler"]
    assert json.loads((folder / export.MANIFEST).read_text()) == m
    theirs = diffusers.DDIMScheduler.from_pretrained(folder / "scheduler")
    assert theirs.config.timestep_spacing == "trailing"
    source = getattr(diffusers, exported_unet2d.manifest["scheduler"]["class"]).from_pretrained(
        exported_unet2d.folder / "scheduler")
    assert theirs.config.num_train_timesteps == source.config.num_train_timesteps
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in exported_unet2d.folder.iterdir())
    # a tampered folder is refused, and left alone
    (folder / "unet" / "config.json").write_text("{}")
    with pytest.raises(ExportError, match="files differ from the manifest \\(unet/config.json\\)"):
        export.set_scheduler(folder, "EulerDiscreteScheduler")
    with pytest.raises(ExportError, match="no edge_sched.json"):
        export.set_scheduler(tmp_path, "EulerDiscreteScheduler")


def test_onnx_fp16_with_external_weights(tiny_ddpm, tmp_path, monkeypatch):
    """Big models keep their weights outside model.onnx (protobuf's 2 GB limit): the fp16 conversion
    writes them back outside, in one file, and the graph still validates. (The size limit is lowered
    here so that a tiny UNet takes that path.)"""
    import onnx

    from export import backends

    monkeypatch.setattr(backends, "EXTERNAL_DATA_BYTES", 0)
    out = tmp_path / "out"
    m = export.export_pipeline(tiny_ddpm, out, format="onnx", dtype="fp16", progress=None)
    assert sorted(p.name for p in (out / "unet").iterdir()) == ["config.json", "model.onnx", "model.onnx_data"]
    assert "unet/model.onnx_data" in m["files"]
    # the weights went out (tensors under 1 kB stay inline)
    assert (out / "unet" / "model.onnx").stat().st_size < 0.3 * (out / "unet" / "model.onnx_data").stat().st_size
    header = onnx.load(str(out / "unet" / "model.onnx"), load_external_data=False)
    assert any(onnx.external_data_helper.uses_external_data(t) for t in header.graph.initializer)
    assert 0 < m["validation"]["unet"]["max_rel"] <= 2e-2
    assert export.verify_manifest(out) == []
