"""What lands in OUTPUT, per format: layout, manifest, validation numbers, tokenizer, scheduler, interop."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np

import export

from .conftest import COMPONENTS, GRAPH_FILE


def test_layout_is_optimums(exported):
    f = exported.folder
    assert (f / "model_index.json").is_file()
    for c in COMPONENTS:
        assert exported.graph(c).is_file(), c
        assert (f / c / "config.json").is_file(), c
    if exported.format == "openvino":
        for c in COMPONENTS:
            assert exported.graph(c).with_suffix(".bin").is_file(), c
    assert (f / "tokenizer" / "tokenizer.json").is_file()
    assert (f / "scheduler" / "scheduler_config.json").is_file()
    assert (f / export.MANIFEST).is_file()
    index = json.loads((f / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["scheduler"] == ["diffusers", "PNDMScheduler"]
    # nothing else next to OUTPUT: the temporary build folder was renamed, not copied
    assert [p.name for p in f.parent.iterdir()] == [f.name]


def test_progress_per_component(exported):
    for i, c in enumerate(COMPONENTS, 1):
        assert any(m.startswith(f"[{i}/4] {c}: exported in") for m in exported.messages), exported.messages
        assert any(m.startswith(f"validate {c}: max abs") for m in exported.messages), exported.messages


def test_manifest_hashes_every_file(exported, tmp_path):
    f, manifest = exported.folder, exported.manifest
    on_disk = sorted(p.relative_to(f).as_posix() for p in f.rglob("*") if p.is_file() and p.name != export.MANIFEST)
    assert sorted(manifest["files"]) == on_disk
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((f / rel).read_bytes()).hexdigest() == digest, rel
    assert json.loads((f / export.MANIFEST).read_text()) == manifest
    assert export.verify_manifest(f) == []
    # a changed byte is caught
    copy = tmp_path / "copy"
    shutil.copytree(f, copy)
    target = copy / "unet" / GRAPH_FILE[exported.format]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    assert export.verify_manifest(copy) == [f"unet/{GRAPH_FILE[exported.format]}"]


def test_manifest_fields(exported, tiny_sd):
    m = exported.manifest
    assert m["format"] == exported.format and m["dtype"] == "fp32"
    assert m["pipeline"] == "StableDiffusionPipeline" and m["prediction_type"] == "epsilon"
    assert m["source"] == {"id": str(tiny_sd.resolve()), "kind": "local", "revision": None}
    for package in ("torch", "diffusers", "transformers", "optimum", exported.format):
        assert m["exporter"][package], package
    assert m["scheduler"] == {"class": "PNDMScheduler", "config": "scheduler/scheduler_config.json"}
    assert set(m["components"]) == set(COMPONENTS)
    io = {c: ([i["name"] for i in g["inputs"]], [o["name"] for o in g["outputs"]]) for c, g in m["components"].items()}
    assert io == {
        "text_encoder": (["input_ids"], ["last_hidden_state", "pooler_output"]),
        "unet": (["sample", "timestep", "encoder_hidden_states"], ["out_sample"]),
        "vae_encoder": (["sample"], ["latent_parameters"]),
        "vae_decoder": (["latent_sample"], ["sample"]),
    }
    unet = m["components"]["unet"]
    assert unet["file"] == f"unet/{GRAPH_FILE[exported.format]}"
    assert unet["inputs"][0]["shape"][1] == 4 and unet["inputs"][0]["dtype"] == "float32"
    assert unet["inputs"][2]["shape"][2] == 32  # cross_attention_dim
    assert m["components"]["vae_encoder"]["outputs"][0]["shape"][1] == 8  # mean and logvar of 4 latent channels


def test_manifest_io_matches_the_engine(exported):
    """The names and dtypes written down are what the engine itself reports for each graph."""
    for c in COMPONENTS:
        graph = exported.manifest["components"][c]
        if exported.format == "onnx":
            import onnxruntime as ort

            sess = ort.InferenceSession(str(exported.graph(c)), providers=["CPUExecutionProvider"])
            engine_in = [(i.name, i.type) for i in sess.get_inputs()]
            engine_out = [(o.name, o.type) for o in sess.get_outputs()]
            ours_in = [(i["name"], f"tensor({_ort_type(i['dtype'])})") for i in graph["inputs"]]
            ours_out = [(o["name"], f"tensor({_ort_type(o['dtype'])})") for o in graph["outputs"]]
        else:
            import openvino as ov

            model = ov.Core().read_model(str(exported.graph(c)))
            engine_in = [(p.get_any_name(), p.get_element_type().get_type_name()) for p in model.inputs]
            engine_out = [(p.get_any_name(), p.get_element_type().get_type_name()) for p in model.outputs]
            ours_in = [(i["name"], _ov_type(i["dtype"])) for i in graph["inputs"]]
            ours_out = [(o["name"], _ov_type(o["dtype"])) for o in graph["outputs"]]
        assert (ours_in, ours_out) == (engine_in, engine_out), c


def _ort_type(dtype):
    return {"float32": "float", "int64": "int64", "int32": "int32", "float16": "float16"}[dtype]


def _ov_type(dtype):
    return {"float32": "f32", "int64": "i64", "int32": "i32", "float16": "f16"}[dtype]


def test_validation_numbers_recorded(exported):
    v = exported.manifest["validation"]
    assert set(v) == set(COMPONENTS)
    for c, numbers in v.items():
        assert numbers["threshold_rel"] == 1e-3
        assert np.isfinite(numbers["max_abs"]) and 0 <= numbers["max_rel"] <= 1e-3, (c, numbers)


def test_graph_matches_torch_independently(exported, tiny_sd):
    """Our own check of the claim: the VAE decoder and UNet graphs vs the source's torch modules, on
    shapes other than the validation's (batch 3, 24x24 latents)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    rng = np.random.default_rng(123)
    latents = rng.standard_normal((3, 4, 24, 24)).astype(np.float32)
    hidden = rng.standard_normal((3, 77, 32)).astype(np.float32)
    vae = AutoencoderKL.from_pretrained(tiny_sd / "vae").eval()
    unet = UNet2DConditionModel.from_pretrained(tiny_sd / "unet").eval()
    with torch.inference_mode():
        ref_image = vae.decode(torch.from_numpy(latents)).sample.numpy()
        ref_noise = unet(torch.from_numpy(latents), 321, encoder_hidden_states=torch.from_numpy(hidden)).sample.numpy()
    unet_inputs = exported.manifest["components"]["unet"]["inputs"]
    t_spec = next(i for i in unet_inputs if i["name"] == "timestep")
    timestep = np.full([3] * len(t_spec["shape"]), 321, dtype=t_spec["dtype"])
    image = _run(exported, "vae_decoder", {"latent_sample": latents})["sample"]
    noise = _run(exported, "unet", {"sample": latents, "timestep": timestep, "encoder_hidden_states": hidden})["out_sample"]
    for got, ref in ((image, ref_image), (noise, ref_noise)):
        assert got.shape == ref.shape
        assert np.max(np.abs(got - ref)) <= 1e-3 * np.max(np.abs(ref))


def _run(exported, component, inputs):
    from export.backends import BACKENDS

    return BACKENDS[exported.format].runner(exported.graph(component))(inputs)


def test_fast_tokenizer_matches_the_original(exported, tiny_sd):
    """The device needs only `tokenizers`: tokenizer.json must encode as the source's CLIPTokenizer."""
    from tokenizers import Tokenizer
    from transformers import CLIPTokenizer

    fast = Tokenizer.from_file(str(exported.folder / "tokenizer" / "tokenizer.json"))
    slow = CLIPTokenizer.from_pretrained(tiny_sd / "tokenizer")
    for prompt in ("a cat and the dog", "The DOG, on ink!", "zebra 42"):
        assert fast.encode(prompt).ids == slow(prompt).input_ids, prompt


def test_scheduler_config_loads_in_diffusers_and_ours(exported, tiny_sd):
    import diffusers

    from edge_sched.schedulers import scheduler_class

    path = exported.folder / "scheduler"
    theirs = diffusers.PNDMScheduler.from_pretrained(path)
    ours = scheduler_class("PNDMScheduler").from_pretrained(path)
    source = diffusers.PNDMScheduler.from_pretrained(tiny_sd / "scheduler")
    for key, value in source.config.items():
        if not key.startswith("_"):
            assert theirs.config[key] == value, key
    theirs.set_timesteps(20)
    ours.set_timesteps(20)
    np.testing.assert_array_equal(ours.timesteps, theirs.timesteps.numpy())


def test_loads_and_runs_in_optimums_pipeline(exported, tiny_sd):
    """Interop: optimum's own ORT / OV pipeline loads the folder, and its image equals diffusers' torch
    pipeline's for the same prompt and latents."""
    import torch
    from diffusers import StableDiffusionPipeline

    if exported.format == "onnx":
        from optimum.onnxruntime import ORTStableDiffusionPipeline

        pipe = ORTStableDiffusionPipeline.from_pretrained(exported.folder)
    else:
        from optimum.intel import OVStableDiffusionPipeline

        pipe = OVStableDiffusionPipeline.from_pretrained(
            exported.folder, ov_config={"INFERENCE_PRECISION_HINT": "f32"}, compile=True
        )
    reference = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    latents = torch.from_numpy(np.random.default_rng(5).standard_normal((1, 4, 16, 16)).astype(np.float32))
    kwargs = dict(num_inference_steps=3, height=32, width=32, output_type="np", guidance_scale=7.5)
    got = np.asarray(pipe("a cat and the dog", latents=latents, **kwargs).images)
    want = reference("a cat and the dog", latents=latents, **kwargs).images
    assert got.shape == want.shape == (1, 32, 32, 3)
    assert np.max(np.abs(got - want)) <= 1e-3
