"""The whole denoising loop as one ONNX graph (export/loop_graph.py) against diffusers' torch pipeline.

Each case exports a tiny random-weight pipeline (tests/export/tiny.py through the runtime tests'
``pipeline_folder``: our export and optimum's), builds its loop graph for one scheduler, runs it in ONNX
Runtime and in OpenVINO (f32, reading the same ONNX) with ``initial_latents`` and ``noise`` drawn by our
TorchGenerator in the order diffusers draws them from one generator, decodes with our VAE decoder, and
compares the image with diffusers' pipeline (``output_type="np"``, ``torch.Generator().manual_seed``).
Bound (issue 19): max abs pixel difference 1e-3, images in [0, 1].

``rng="cuda"`` graphs draw the noise themselves: their Philox words are held to our numpy
``cuda_random`` (uniforms bit for bit), their images to the GPU's in shared/fixtures/cuda_rng.
The summary at the end lists every case's worst difference per runner and the graph sizes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

import diffusers  # noqa: E402
import torch  # noqa: E402

import export  # noqa: E402
from edge_sched.cli import main  # noqa: E402
from edge_sched.cuda_random import PhiloxCudaGenerator  # noqa: E402
from edge_sched.denoise_graph import DenoiseLoop  # noqa: E402
from edge_sched.pipelines import DiffusionPipeline  # noqa: E402
from edge_sched.pipelines.guidance import guidance_scale_embedding  # noqa: E402
from edge_sched.pipelines.image_io import image_processor  # noqa: E402
from edge_sched.random import TorchGenerator  # noqa: E402
from edge_sched.runtime import EngineError  # noqa: E402
from export.loop_graph import LOOP_FOLDER, LoopExportError  # noqa: E402
from export.onnx_nodes import Nodes  # noqa: E402
from export.mt19937_graph import cpu_draws  # noqa: E402
from export.philox_graph import cuda_draws  # noqa: E402
from export.step_graph import StepExportError  # noqa: E402
from tests.runtime.conftest import pipeline_folder, reference_pipeline  # noqa: E402,F401  (session fixtures)
from tests.shared_fixtures import load_meta, require  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BOUND = 1e-3
SIZE = (32, 32)
PROMPT, SEED = "a cat and a dog", 7
REFERENCES = {"sd": "StableDiffusionPipeline", "lcm": "LatentConsistencyModelPipeline"}
REPORT: dict[str, dict] = {}


class Case:
    """``scheduler`` / ``settings``: what export_loop gets (a class or A1111 name; config keys and step
    options); ``reference`` / ``config``: the diffusers scheduler built independently of our resolution;
    ``call``: diffusers' call arguments (steps or a custom schedule, step options such as eta)."""

    def __init__(self, kind, how, scheduler, settings, reference, config, call, batch=1, guidance=7.5,
                 openvino=True):  # OpenVINO (f32, the same ONNX) runs 8 of the cases, to keep CI short
        self.kind, self.how, self.scheduler, self.settings = kind, how, scheduler, settings
        self.reference, self.config, self.call, self.batch, self.guidance = reference, config, call, batch, guidance
        self.openvino = openvino


E, O = "edge-onnx", "optimum-onnx"
CASES = {
    "euler-a": Case("sd", E, "Euler a", {}, "EulerAncestralDiscreteScheduler", {}, dict(num_inference_steps=5)),
    "dpmpp-2m-karras": Case("sd", E, "DPM++ 2M Karras", {}, "DPMSolverMultistepScheduler",
                            {"use_karras_sigmas": True}, dict(num_inference_steps=6)),
    "dpmpp-2m-sde": Case("sd", E, "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"},
                         "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"},
                         dict(num_inference_steps=5)),
    # Brownian-tree noise (torchsde's, seeded by the config), drawn by the scheduler's own noise sampler
    "dpmpp-sde-karras": Case("sd", E, "DPMSolverSDEScheduler", {"use_karras_sigmas": True, "noise_sampler_seed": 3},
                             "DPMSolverSDEScheduler", {"use_karras_sigmas": True, "noise_sampler_seed": 3},
                             dict(num_inference_steps=4), openvino=False),
    "ddim-eta": Case("sd", E, "DDIMScheduler", {"eta": 0.7}, "DDIMScheduler", {}, dict(num_inference_steps=5, eta=0.7)),
    # Heun and LMS with their diffusers default spacing (the folder's PNDM config has "leading")
    "heun": Case("sd", E, "HeunDiscreteScheduler", {"timestep_spacing": "linspace"}, "HeunDiscreteScheduler",
                 {"timestep_spacing": "linspace"}, dict(num_inference_steps=3)),
    "unipc-3": Case("sd", E, "UniPCMultistepScheduler", {"solver_order": 3}, "UniPCMultistepScheduler",
                    {"solver_order": 3}, dict(num_inference_steps=6)),
    "lms": Case("sd", E, "LMSDiscreteScheduler", {"timestep_spacing": "linspace"}, "LMSDiscreteScheduler",
                {"timestep_spacing": "linspace"}, dict(num_inference_steps=5), openvino=False),
    "ddpm": Case("sd", E, "DDPMScheduler", {}, "DDPMScheduler", {}, dict(num_inference_steps=6), openvino=False),
    "euler-custom-sigmas": Case("sd", E, "EulerDiscreteScheduler", {}, "EulerDiscreteScheduler", {},
                                dict(sigmas=[14.6, 7.0, 3.0, 1.2, 0.4]), openvino=False),
    "dpm-custom-timesteps": Case("sd", E, "DPMSolverMultistepScheduler", {}, "DPMSolverMultistepScheduler", {},
                                 dict(timesteps=[999, 800, 600, 400, 200, 50]), openvino=False),
    "lcm": Case("lcm", E, None, {}, "LCMScheduler", {}, dict(num_inference_steps=4), guidance=8.0),
    # two images, one generator, no guidance: prompt_embeds holds the positive rows only
    "euler-batch2-unguided": Case("sd", E, "EulerDiscreteScheduler", {}, "EulerDiscreteScheduler", {},
                                  dict(num_inference_steps=4), batch=2, guidance=1.0, openvino=False),
    # optimum's ONNX export of the same weights
    "optimum-euler-a": Case("sd", O, "Euler a", {}, "EulerAncestralDiscreteScheduler", {},
                            dict(num_inference_steps=5)),
    "optimum-dpmpp-2m-karras": Case("sd", O, "DPM++ 2M Karras", {}, "DPMSolverMultistepScheduler",
                                    {"use_karras_sigmas": True}, dict(num_inference_steps=6), openvino=False),
}
SCHEDULE_KEYS = {"num_inference_steps": "steps", "timesteps": "timesteps", "sigmas": "sigmas"}


def _schedule(call: dict) -> dict:
    return {SCHEDULE_KEYS[k]: v for k, v in call.items() if k in SCHEDULE_KEYS}


def _prompts(case: Case) -> list[str]:
    return [PROMPT, "the dog"][: case.batch]


_REFERENCE_IMAGES: dict[int, np.ndarray] = {}


def _reference_image(reference_pipeline, case: Case) -> np.ndarray:
    """diffusers' image for the case (made once: the rng 'input' and 'cpu' tests share it)."""
    if id(case) not in _REFERENCE_IMAGES:
        _REFERENCE_IMAGES[id(case)] = _diffusers_image(reference_pipeline, case)
    return _REFERENCE_IMAGES[id(case)]


def _diffusers_image(reference_pipeline, case: Case) -> np.ndarray:
    ref = reference_pipeline(REFERENCES[case.kind], case.kind)
    ref.scheduler = getattr(diffusers, case.reference).from_config(ref.base_scheduler_config, **case.config)
    return np.asarray(ref(prompt=_prompts(case), height=SIZE[0], width=SIZE[1], guidance_scale=case.guidance,
                          generator=torch.Generator().manual_seed(SEED), output_type="np", **case.call).images)


def _conditioning(pipe, case: Case, guided: bool) -> dict:
    """The graph's conditioning inputs, from our pipeline's text encoder (as an app would compute them)."""
    positive, negative = pipe.encode_prompt(_prompts(case), do_classifier_free_guidance=guided)
    feeds = {"prompt_embeds": np.concatenate([negative, positive]) if guided else positive,
             "guidance_scale": np.array(case.guidance, np.float32)}
    if pipe.time_cond_proj_dim is not None:  # LCM: w = guidance_scale - 1, one row per image
        feeds["timestep_cond"] = guidance_scale_embedding(np.full(case.batch, np.float32(case.guidance - 1)),
                                                          int(pipe.time_cond_proj_dim))
    return feeds


def _decode(pipe, latents: np.ndarray) -> np.ndarray:
    return np.asarray(image_processor(pipe.vae_scale_factor).postprocess(pipe.decode_latents(latents), "np"))


def _graph_sizes(folder) -> dict:
    return {p.name: p.stat().st_size for p in sorted((folder / LOOP_FOLDER).iterdir())}


@pytest.fixture(scope="module")
def exported_loops(tmp_path_factory, pipeline_folder):  # noqa: F811
    cache = {}

    def get(case_id: str):
        if case_id not in cache:
            case = CASES[case_id]
            out = tmp_path_factory.mktemp(f"loop-{case_id}") / "model"
            manifest = export.export_loop(pipeline_folder(case.kind, case.how), out, size=SIZE,
                                          scheduler=case.scheduler, overrides=case.settings, batch=case.batch,
                                          **_schedule(case.call))
            cache[case_id] = out, manifest
        return cache[case_id]

    return get


@pytest.fixture(scope="module", autouse=True)
def report(request):
    yield
    if not REPORT:
        return
    writer = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if writer is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        writer.write_line("")
        writer.write_sep("-", "loop graphs vs diffusers: max abs pixel difference per runner (images in [0, 1])")
        for case, r in sorted(REPORT.items()):
            runners = "   ".join(f"{k} {v:.3g}" for k, v in sorted(r["runners"].items()))
            writer.write_line(f"{case:28s} {r['scheduler']:34s} calls {r['calls']:3d}  {r['bytes'] / 1e6:6.2f} MB   "
                              f"{runners}")


def _record(case_id, manifest, folder, runner, diff):
    entry = REPORT.setdefault(case_id, {"scheduler": manifest["loop"]["scheduler"]["class"], "runners": {},
                                        "calls": manifest["loop"]["num_model_calls"],
                                        "bytes": sum(_graph_sizes(folder).values())})
    entry["runners"][runner] = diff


@pytest.mark.parametrize("case_id", list(CASES))
def test_loop_graph_image_matches_diffusers(case_id, exported_loops, reference_pipeline):  # noqa: F811
    case = CASES[case_id]
    folder, manifest = exported_loops(case_id)
    want = _reference_image(reference_pipeline, case)
    assert want.std() > 0.01, "the reference image is flat: the test would prove nothing"
    pipe = DiffusionPipeline.from_pretrained(folder)
    guided = case.guidance > 1 and case.kind != "lcm"
    feeds = _conditioning(pipe, case, guided)
    runners = ["onnxruntime"] + (["openvino"] if case.openvino else [])
    for backend in runners:
        loop = DenoiseLoop(folder, backend=backend)
        latents = loop(**feeds, **loop.draw_noise(TorchGenerator(SEED)))
        got = _decode(pipe, latents)
        assert got.shape == want.shape
        diff = float(np.abs(got.astype(np.float64) - want).max())
        _record(case_id, manifest, folder, backend, diff)
        assert diff <= BOUND, f"{case_id} on {backend}: max abs pixel difference {diff:.3g} > {BOUND}"


def test_sdxl_loop_with_added_conditioning(pipeline_folder, reference_pipeline, tmp_path):  # noqa: F811
    """SDXL: text_embeds and time_ids are inputs beside prompt_embeds (taken here from our pipeline's
    callback state, as an app computes them); the image against diffusers', the latents against ours."""
    folder = tmp_path / "sdxl-loop"
    manifest = export.export_loop(pipeline_folder("sdxl", E), folder, steps=4, size=SIZE, scheduler="Euler a")
    assert [i["name"] for i in manifest["loop"]["inputs"]] == ["prompt_embeds", "guidance_scale", "text_embeds",
                                                               "time_ids", "initial_latents", "noise"]
    pipe = DiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    state = {}

    def keep_first(p, i, t, tensors):
        if i == 0:
            state.update({k: v.copy() for k, v in tensors.items()})
        return tensors

    call = dict(prompt=PROMPT, height=SIZE[0], width=SIZE[1], num_inference_steps=4, guidance_scale=5.0)
    ours = pipe(**call, generator=SEED, output_type="latent", callback_on_step_end=keep_first,
                callback_on_step_end_tensor_inputs=["prompt_embeds", "add_text_embeds", "add_time_ids"]).images
    loop = DenoiseLoop(folder)
    latents = loop(prompt_embeds=state["prompt_embeds"], text_embeds=state["add_text_embeds"],
                   time_ids=state["add_time_ids"], guidance_scale=np.array(5.0, np.float32), **loop.draw_noise(SEED))
    np.testing.assert_array_equal(latents, ours)
    ref = reference_pipeline("StableDiffusionXLPipeline", "sdxl")
    ref.scheduler = diffusers.EulerAncestralDiscreteScheduler.from_config(ref.base_scheduler_config)
    want = np.asarray(ref(**call, generator=torch.Generator().manual_seed(SEED), output_type="np").images)
    got = np.asarray(image_processor(pipe.vae_scale_factor).postprocess(pipe.decode_latents_xl(latents), "np"))
    diff = float(np.abs(got.astype(np.float64) - want).max())
    _record("sdxl-euler-a", manifest, folder, "onnxruntime", diff)
    assert diff <= BOUND, f"SDXL: max abs pixel difference {diff:.3g}"


def test_loop_graph_is_our_numpy_loop_bit_for_bit(exported_loops):
    """ONNX Runtime's loop graph repeats our Python pipeline (numpy scheduler, same graphs) exactly."""
    folder, _ = exported_loops("dpmpp-2m-sde")
    case = CASES["dpmpp-2m-sde"]
    pipe = DiffusionPipeline.from_pretrained(folder, backend="onnxruntime")
    pipe.set_progress_bar_config(disable=True)
    latents = pipe(prompt=_prompts(case), height=SIZE[0], width=SIZE[1], guidance_scale=case.guidance,
                   generator=SEED, output_type="latent", **case.call).images
    loop = DenoiseLoop(folder)
    got = loop(**_conditioning(pipe, case, True), **loop.draw_noise(SEED))
    np.testing.assert_array_equal(got, latents)


# ---------------------------------------------------------------------------- the folder and its manifest
def test_folder_manifest_and_cli(exported_loops, pipeline_folder, tmp_path, capsys):  # noqa: F811
    folder, manifest = exported_loops("euler-a")
    source = pipeline_folder("sd", E)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*(p.name for p in source.iterdir()), LOOP_FOLDER])
    assert json.loads((folder / "edge_sched.json").read_text()) == manifest
    assert set(manifest["files"]) == {p.relative_to(folder).as_posix() for p in folder.rglob("*")
                                      if p.is_file() and p.name != "edge_sched.json"}
    loop = manifest["loop"]
    assert loop["graph"] == "denoise/model.onnx" and loop["rng"] == "input" and loop["steps"] == 5
    assert [i["name"] for i in loop["inputs"]] == ["prompt_embeds", "guidance_scale", "initial_latents", "noise"]
    assert loop["latent_shape"] == [1, 4, 16, 16]
    assert next(i for i in loop["inputs"] if i["name"] == "noise")["shape"] == [5, 1, 4, 16, 16]
    assert [d["call"] for d in loop["noise"]["draws"]] == [0, 1, 2, 3, 4]
    assert loop["scheduler"]["class"] == "EulerAncestralDiscreteScheduler"
    graph = onnx.load(str(folder / "denoise" / "model.onnx"))
    assert [n.op_type for n in graph.graph.node].count("Loop") == 1
    assert [o.name for o in graph.graph.output] == ["latents"]
    # the CLI writes the same graph
    out = tmp_path / "cli"
    args = ["export-loop", str(source), str(out), "--steps", "5", "--size", "32x32", "--scheduler", "Euler a"]
    assert main(args) == 0
    assert "EulerAncestralDiscreteScheduler loop (5 model calls, rng input)" in capsys.readouterr().out
    assert (out / "denoise" / "model.onnx").read_bytes() == (folder / "denoise" / "model.onnx").read_bytes()
    assert main(args) == 1  # exists
    assert "already exists" in capsys.readouterr().err
    ddim = ["export-loop", str(source), str(out), "--steps", "5", "--size", "32x32", "--scheduler", "DDIMScheduler"]
    assert main([*ddim, "--overwrite", "--set", "eta=0.5", "--set", "timestep_spacing=trailing", "--batch", "2"]) == 0
    again = json.loads((out / "edge_sched.json").read_text())["loop"]
    assert again["batch"] == 2 and again["scheduler"]["step_options"] == {"eta": 0.5}
    assert again["scheduler"]["config"]["timestep_spacing"] == "trailing"


def test_keep_unet_false_stores_the_unet_once(pipeline_folder, tmp_path):  # noqa: F811
    out = tmp_path / "lean"
    manifest = export.export_loop(pipeline_folder("sd", E), out, steps=3, size=SIZE, scheduler="DDIMScheduler",
                                  keep_unet=False)
    assert not (out / "unet" / "model.onnx").exists() and (out / "unet" / "config.json").is_file()
    assert "unet" not in manifest["components"] and "denoise" in manifest["components"]


def test_weights_in_external_data(pipeline_folder, exported_loops, monkeypatch, tmp_path):  # noqa: F811
    """Past the embedding limit (1 GB; 0 here) the weights go to denoise/model.onnx_data; both engines read it."""
    import export.loop_graph as loop_graph

    monkeypatch.setattr(loop_graph, "_EMBED_LIMIT", 0)
    case = CASES["euler-a"]
    folder = tmp_path / "external"
    manifest = export.export_loop(pipeline_folder("sd", E), folder, size=SIZE, scheduler=case.scheduler,
                                  **_schedule(case.call))
    assert sorted(manifest["loop"]["graph_bytes"]) == ["model.onnx", "model.onnx_data"]
    assert manifest["loop"]["graph_bytes"]["model.onnx"] < 10**6 < manifest["loop"]["graph_bytes"]["model.onnx_data"]
    embedded, _ = exported_loops("euler-a")
    feeds = {"prompt_embeds": np.random.default_rng(0).standard_normal((2, 77, 32)).astype(np.float32),
             "guidance_scale": np.array(7.5, np.float32)}
    for backend in ("onnxruntime", "openvino"):
        a, b = DenoiseLoop(folder, backend=backend), DenoiseLoop(embedded, backend=backend)
        noise = a.draw_noise(3)
        np.testing.assert_array_equal(a(**feeds, **noise), b(**feeds, **noise))


def test_source_unet_with_external_data(pipeline_folder, exported_loops, monkeypatch, tmp_path):  # noqa: F811
    """A UNet keeping its weights in external data (every SD-size export: 3.4 GB cannot be one protobuf) is
    referenced, not read into the loop graph: denoise/ gets a copy of its data file under the same name, and
    the loop's own large tensors (embedding limit 0 here; the UNet's tensors under 40 kB stayed embedded in
    its graph) go to a file of another name."""
    import shutil

    import export.loop_graph as loop_graph

    source = tmp_path / "source"
    shutil.copytree(pipeline_folder("sd", E), source)
    unet = onnx.load(str(source / "unet" / "model.onnx"))
    onnx.save_model(unet, str(source / "unet" / "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="model.onnx_data", size_threshold=40_000)
    case = CASES["euler-a"]
    embedded, _ = exported_loops("euler-a")
    feeds = {"prompt_embeds": np.random.default_rng(0).standard_normal((2, 77, 32)).astype(np.float32),
             "guidance_scale": np.array(7.5, np.float32)}
    noise = DenoiseLoop(embedded).draw_noise(3)
    want = {backend: DenoiseLoop(embedded, backend=backend)(**feeds, **noise) for backend in ("onnxruntime", "openvino")}
    for limit, files in ((1 << 30, ["model.onnx", "model.onnx_data"]),
                         (0, ["loop_model.onnx_data", "model.onnx", "model.onnx_data"])):
        monkeypatch.setattr(loop_graph, "_EMBED_LIMIT", limit)
        folder = tmp_path / f"loop-{limit}"
        manifest = export.export_loop(source, folder, size=SIZE, scheduler=case.scheduler, **_schedule(case.call))
        assert sorted(manifest["loop"]["graph_bytes"]) == files
        assert (folder / "denoise" / "model.onnx_data").read_bytes() == (source / "unet" / "model.onnx_data").read_bytes()
        for backend in ("onnxruntime", "openvino"):
            np.testing.assert_array_equal(DenoiseLoop(folder, backend=backend)(**feeds, **noise), want[backend])
    with pytest.raises(export.ExportError, match="not a file next to the graph"):
        (source / "unet" / "model.onnx_data").unlink()
        export.export_loop(source, tmp_path / "broken", size=SIZE, scheduler=case.scheduler, **_schedule(case.call))


@pytest.mark.parametrize("case_id", ["euler-a", "dpmpp-2m-karras", "lcm"])
def test_openvino_ir_loop(case_id, exported_loops, pipeline_folder, reference_pipeline, tmp_path):  # noqa: F811
    """--format openvino: denoise/ holds the loop as OpenVINO IR (float32 weights). In our OpenVINO engine (f32
    precision hint) its image is diffusers' within the bound, and the ONNX loop graph's (read by OpenVINO, run by
    ONNX Runtime) within the bound too: convert_model and read_model of the ONNX file compile differently, so the
    latents are not bit for bit those of OpenVINO reading the ONNX (measured: 9e-5 apart at most, Euler a)."""
    case = CASES[case_id]
    onnx_folder, _ = exported_loops(case_id)
    folder = tmp_path / "ir"
    manifest = export.export_loop(pipeline_folder(case.kind, case.how), folder, size=SIZE, scheduler=case.scheduler,
                                  overrides=case.settings, batch=case.batch, format="openvino", **_schedule(case.call))
    assert sorted(p.name for p in (folder / LOOP_FOLDER).iterdir()) == ["openvino_model.bin", "openvino_model.xml"]
    loop = manifest["loop"]
    assert (loop["graph"], loop["graph_format"], loop["engines"]) == ("denoise/openvino_model.xml", "openvino",
                                                                      ["openvino"])
    assert manifest["components"]["denoise"]["file"] == loop["graph"]
    assert sorted(loop["graph_bytes"]) == ["openvino_model.bin", "openvino_model.xml"]
    pipe = DiffusionPipeline.from_pretrained(folder)
    feeds = _conditioning(pipe, case, case.guidance > 1 and case.kind != "lcm")
    ir = DenoiseLoop(folder, backend="openvino")
    assert ir.graph.inference_precision == "f32"
    noise = ir.draw_noise(TorchGenerator(SEED))
    latents = ir(**feeds, **noise)
    got = _decode(pipe, latents)
    want = _reference_image(reference_pipeline, case)
    diff = float(np.abs(got.astype(np.float64) - want).max())
    _record(case_id, manifest, onnx_folder, "openvino-ir", diff)
    assert diff <= BOUND, f"{case_id}, OpenVINO IR loop: max abs pixel difference {diff:.3g} > {BOUND}"
    for backend in ("onnxruntime", "openvino"):
        onnx_latents = DenoiseLoop(onnx_folder, backend=backend)(**feeds, **noise)
        same_graph = float(np.abs(got.astype(np.float64) - _decode(pipe, onnx_latents)).max())
        _record(case_id, manifest, onnx_folder, f"openvino-ir-vs-onnx-{backend}", same_graph)
        assert same_graph <= BOUND, f"{case_id}: IR vs the ONNX loop on {backend}: {same_graph:.3g} > {BOUND}"
    with pytest.raises(EngineError, match="the loop graph is OpenVINO IR .* run it with backend='openvino'"):
        DenoiseLoop(folder, backend="onnxruntime")


@pytest.mark.parametrize("rng", ["cuda", "cpu"])
def test_openvino_format_refuses_seeded_rng(rng, pipeline_folder, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "out"
    with pytest.raises(LoopExportError, match=f"format 'openvino' needs rng 'input'.*rng '{rng}'.*OpenVINO's CPU plugin"):
        export.export_loop(pipeline_folder("sd", E), out, steps=3, size=SIZE, rng=rng, format="openvino")
    args = ["export-loop", str(pipeline_folder("sd", E)), str(out), "--steps", "3", "--size", "32x32", "--rng", rng,
            "--format", "openvino"]
    assert main(args) == 1
    assert "format 'openvino' needs rng 'input'" in capsys.readouterr().err
    with pytest.raises(LoopExportError, match="format must be one of onnx, openvino, got 'ir'"):
        export.export_loop(pipeline_folder("sd", E), out, steps=3, size=SIZE, format="ir")
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


def test_bad_input(pipeline_folder, tmp_path, exported_loops):  # noqa: F811
    source = pipeline_folder("sd", E)
    out = tmp_path / "out"
    with pytest.raises(StepExportError, match="DPMAdaptiveScheduler cannot be exported as a step graph: it chooses"):
        export.export_loop(source, out, steps=5, size=SIZE, scheduler="DPM adaptive")
    with pytest.raises(LoopExportError, match=r"size 30x32: height and width must be positive multiples of 8"):
        export.export_loop(source, out, steps=5, size=(30, 32))
    with pytest.raises(LoopExportError, match="EulerDiscreteScheduler has no option 'etta'"):
        export.export_loop(source, out, steps=5, size=SIZE, scheduler="EulerDiscreteScheduler", overrides={"etta": 1})
    with pytest.raises(LoopExportError, match="rng='cpu' builds torch.randn / torch.rand draws only"):
        export.export_loop(source, out, steps=3, size=SIZE, scheduler="DPMSolverSDEScheduler", rng="cpu")
    with pytest.raises(LoopExportError, match="rng must be one of input, cuda, cpu"):
        export.export_loop(source, out, steps=5, size=SIZE, rng="gpu")
    with pytest.raises(export.SourceError, match="no ONNX UNet graph unet/model.onnx"):
        export.export_loop(pipeline_folder("sd", "source"), out, steps=5, size=SIZE)
    with pytest.raises(export.SourceError, match="no model_index.json"):
        export.export_loop(tmp_path, out, steps=5, size=SIZE)
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))
    # a UNet with static 16x16 latents (as `--static-shapes 1x32x32` exports it) refuses another size
    static = tmp_path / "static"
    shutil.copytree(source, static)
    unet = onnx.load(str(static / "unet" / "model.onnx"))
    for dim, size in zip(unet.graph.input[0].type.tensor_type.shape.dim, (2, 4, 16, 16)):
        dim.dim_value = size
    onnx.save(unet, str(static / "unet" / "model.onnx"))
    with pytest.raises(LoopExportError, match="static latent height of 16, the loop needs 24"):
        export.export_loop(static, out, steps=5, size=(48, 32))
    with pytest.raises(LoopExportError, match="the UNet's batch is static at 2; batch 3 needs 3"):
        export.export_loop(static, out, steps=5, size=SIZE, batch=3)
    # an interrupted export leaves nothing behind
    import export.loop_graph as loop_graph

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    original, loop_graph._save_model = loop_graph._save_model, interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            export.export_loop(source, out, steps=5, size=SIZE)
    finally:
        loop_graph._save_model = original
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))
    # wrong-shaped prompt_embeds: 3 rows for a batch of 1 is neither unguided (1) nor guided (2)
    folder, manifest = exported_loops("euler-a")
    session = ort.InferenceSession(str(folder / "denoise" / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = DenoiseLoop(folder).draw_noise(SEED)
    for rows in (3, 4):
        with pytest.raises(Exception, match="indices element out of data bounds|cannot be reshaped"):
            session.run(None, {**feeds, "prompt_embeds": np.zeros((rows, 77, 32), np.float32),
                               "guidance_scale": np.array(7.5, np.float32)})
    seeded = tmp_path / "seeded"
    export.export_loop(source, seeded, steps=2, size=SIZE, scheduler="Euler a", rng="cpu")
    seeded_session = ort.InferenceSession(str(seeded / "denoise" / "model.onnx"), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match=r"Unexpected input data type. Actual: \(tensor\(double\)\) , expected: "
                                        r"\(tensor\(int64\)\)"):
        seeded_session.run(None, {"prompt_embeds": np.zeros((2, 77, 32), np.float32), "seed": np.array(5.0),
                                  "guidance_scale": np.array(7.5, np.float32)})
    with pytest.raises(Exception, match="Got invalid dimensions for input: initial_latents"):
        session.run(None, {**feeds, "initial_latents": np.zeros((1, 4, 8, 8), np.float32),
                           "prompt_embeds": np.zeros((2, 77, 32), np.float32),
                           "guidance_scale": np.array(7.5, np.float32)})


# ---------------------------------------------------------------------------- rng="cuda"
def _draws_model(numel, kinds):
    b = Nodes("p/")
    out = cuda_draws(b, "seed", numel, kinds)
    graph = onnx.helper.make_graph(b.nodes, "draws", [onnx.helper.make_tensor_value_info("seed", onnx.TensorProto.INT64, [])],
                                   [onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, [len(kinds), numel])],
                                   b.initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("numel", [1, 77, 4096, 16384])
def test_cuda_draws_match_our_numpy_cuda_generator(numel):
    kinds = ["normal", "uniform", "normal", "uniform", "normal"]
    session = _draws_model(numel, kinds)
    for seed in (0, 5, 2**40 + 3, -1, 2**63 - 1):
        got = session.run(None, {"seed": np.array(seed, np.int64)})[0]
        gen = PhiloxCudaGenerator(seed)
        want = np.stack([gen.randn(numel, "float32") if k == "normal" else gen.rand(numel, "float32") for k in kinds])
        uniform = [i for i, k in enumerate(kinds) if k == "uniform"]
        normal = [i for i, k in enumerate(kinds) if k == "normal"]
        np.testing.assert_array_equal(got[uniform].view(np.uint32), want[uniform].view(np.uint32))
        differing = int((got[normal].view(np.uint32) != want[normal].view(np.uint32)).sum())
        # the normals take float64 log / sin of the same inputs in both: equal but for a last-bit rounding
        assert float(np.abs(got[normal] - want[normal]).max()) <= 1e-6 and differing <= got[normal].size // 10000, \
            f"seed {seed}: {differing} normals differ"


def _cpu_draws_model(numel, kinds):
    b = Nodes("m/")
    out = cpu_draws(b, "seed", numel, kinds)
    graph = onnx.helper.make_graph(b.nodes, "draws", [onnx.helper.make_tensor_value_info("seed", onnx.TensorProto.INT64, [])],
                                   [onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, [len(kinds), numel])],
                                   b.initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("numel", [16, 324, 4096])  # 324: torch redraws the last block of 16
def test_cpu_draws_are_torchs_bit_for_bit(numel):
    kinds = ["normal", "uniform", "normal", "normal"]
    session = _cpu_draws_model(numel, kinds)
    for seed in (0, 7, 2**40 + 3, -1):
        got = session.run(None, {"seed": np.array(seed, np.int64)})[0]
        gen = torch.Generator().manual_seed(seed + 2**64 if seed < 0 else seed)
        want = np.stack([(torch.randn(numel, generator=gen) if k == "normal" else torch.rand(numel, generator=gen)).numpy()
                         for k in kinds])
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


CPU_RNG_CASES = ["euler-a", "dpmpp-2m-sde", "ddim-eta", "lcm"]


@pytest.mark.parametrize("case_id", CPU_RNG_CASES)
def test_cpu_rng_loop_matches_diffusers(case_id, pipeline_folder, reference_pipeline, exported_loops,  # noqa: F811
                                        tmp_path):
    """rng='cpu': the graph draws torch's CPU noise for the seed; the same image as diffusers with
    torch.Generator().manual_seed(seed), and the input graph's latents (fed TorchGenerator's draws) bit for bit."""
    case = CASES[case_id]
    folder = tmp_path / "cpu"
    manifest = export.export_loop(pipeline_folder(case.kind, case.how), folder, size=SIZE, scheduler=case.scheduler,
                                  overrides=case.settings, batch=case.batch, rng="cpu", **_schedule(case.call))
    assert manifest["loop"]["inputs"][-1]["name"] == "seed" and manifest["loop"]["engines"] == ["onnxruntime"]
    pipe = DiffusionPipeline.from_pretrained(folder)
    feeds = _conditioning(pipe, case, case.guidance > 1 and case.kind != "lcm")
    latents = DenoiseLoop(folder)(**feeds, seed=np.array(SEED, np.int64))
    fed_folder, _ = exported_loops(case_id)
    fed = DenoiseLoop(fed_folder)
    np.testing.assert_array_equal(latents, fed(**feeds, **fed.draw_noise(TorchGenerator(SEED))))
    diff = float(np.abs(_decode(pipe, latents).astype(np.float64) - _reference_image(reference_pipeline, case)).max())
    _record(f"cpu-rng {case_id}", manifest, folder, "onnxruntime (seed)", diff)
    assert diff <= BOUND, f"{case_id} with rng cpu: max abs pixel difference {diff:.3g}"
    if case_id == CPU_RNG_CASES[0]:
        with pytest.raises(EngineError, match="cannot run on OpenVINO: its Mersenne Twister works on uint32 words"):
            DenoiseLoop(folder, backend="openvino")


CUDA_META = load_meta("cuda_rng")


def _gpu_cases():
    if CUDA_META is None:  # fails in the test, with the reason (an empty list would skip)
        return [pytest.param(None, id="fixture-missing")]
    return [pytest.param(c, id=f"{c['key']}-{c['scheduler']}") for c in CUDA_META["pipeline"]["cases"]]


@pytest.fixture(scope="module")
def gpu_fixture(tmp_path_factory):
    folder = require("cuda_rng")
    out = tmp_path_factory.mktemp("cuda-fixture") / "model"
    export.export_pipeline(folder / "tiny_sd_diffusers", out, format="onnx", progress=None)
    pipe = DiffusionPipeline.from_pretrained(out)
    return out, pipe, np.load(folder / "pipeline.npz")


@pytest.mark.parametrize("case", _gpu_cases())
def test_cuda_loop_matches_gpu_images(case, gpu_fixture, tmp_path):
    require("cuda_rng")
    source, pipe, images = gpu_fixture
    kw = CUDA_META["pipeline"]["kw"]
    out = tmp_path / "loop"
    manifest = export.export_loop(source, out, steps=kw["num_inference_steps"], size=(kw["height"], kw["width"]),
                                  scheduler=case["scheduler"], overrides={**case["overrides"], **case["call"]},
                                  rng="cuda")
    assert [i["name"] for i in manifest["loop"]["inputs"]] == ["prompt_embeds", "guidance_scale", "seed"]
    positive, negative = pipe.encode_prompt(kw["prompt"], negative_prompt=kw["negative_prompt"])
    feeds = {"prompt_embeds": np.concatenate([negative, positive]),
             "guidance_scale": np.array(kw["guidance_scale"], np.float32)}
    loop = DenoiseLoop(out)
    got = _decode(pipe, loop(**feeds, seed=np.array(case["seed"], np.int64)))
    ref = images[case["key"]]
    diff = float(np.abs(got.astype(np.float64) - ref).max())
    _record(f"cuda {case['key']}", manifest, out, "onnxruntime (GPU image)", diff)
    assert diff <= BOUND, f"{case['scheduler']} {case['overrides']} {case['call']}: max abs pixel difference {diff:.3g}"
    assert ref.std() > 0.01, "the reference image is flat: the test would prove nothing"
    if case["scheduler"] == "EulerAncestralDiscreteScheduler":
        # the graph's own noise is our numpy CUDA generator's: fed as inputs, the same latents bit for bit
        fed = tmp_path / "fed"
        export.export_loop(source, fed, steps=kw["num_inference_steps"], size=(kw["height"], kw["width"]),
                           scheduler=case["scheduler"], overrides={**case["overrides"], **case["call"]})
        fed_loop = DenoiseLoop(fed)
        noise = fed_loop.draw_noise(TorchGenerator(case["seed"], device="cuda"))
        np.testing.assert_array_equal(fed_loop(**feeds, **noise), loop(**feeds, seed=np.array(case["seed"], np.int64)))
        with pytest.raises(EngineError, match="cannot run on OpenVINO: its Philox noise multiplies 32-bit words"):
            DenoiseLoop(out, backend="openvino")


# ---------------------------------------------------------------------------- the Node client (examples/node)
NODE_CLIENT = REPO / "examples" / "node"


@pytest.fixture(scope="module")
def node_client(tmp_path_factory):
    """examples/node installed from its lock file (`npm ci`) in a scratch copy; the test runs wherever node is."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node / npm are not installed: the Node client is not run")
    work = tmp_path_factory.mktemp("node-client")
    for name in ("package.json", "package-lock.json", "generate.mjs"):
        shutil.copy(NODE_CLIENT / name, work / name)
    env = {**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip"}
    res = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"npm ci failed:\n{res.stdout}\n{res.stderr}"
    return node, work / "generate.mjs"


def _levels(image: np.ndarray) -> np.ndarray:
    """diffusers' numpy_to_pil: (x * 255).round() as uint8."""
    return (image * 255).round().astype(np.int32)


@pytest.mark.parametrize("key", ["p1_5", "p2_5"])
def test_node_client_png_matches_gpu_image(key, node_client, gpu_fixture, tmp_path):
    from PIL import Image

    require("cuda_rng")
    case = next(c for c in CUDA_META["pipeline"]["cases"] if c["key"] == key)
    source, pipe, images = gpu_fixture
    kw = CUDA_META["pipeline"]["kw"]
    folder = tmp_path / "loop"
    export.export_loop(source, folder, steps=kw["num_inference_steps"], size=(kw["height"], kw["width"]),
                       scheduler=case["scheduler"], overrides={**case["overrides"], **case["call"]}, rng="cuda")
    node, script = node_client
    out = tmp_path / "image.png"
    cmd = [node, str(script), str(folder), "--prompt", kw["prompt"], "--negative", kw["negative_prompt"],
           "--seed", str(case["seed"]), "--guidance", str(kw["guidance_scale"]), "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    image = Image.open(out)
    got = np.asarray(image.convert("RGB")).astype(np.int32)
    want = _levels(images[case["key"]][0])
    worst = int(np.abs(got - want).max())
    _record(f"node {key}", json.loads((folder / "edge_sched.json").read_text()), folder, "node (PNG levels)", worst)
    assert worst <= 1, f"{case['scheduler']}: the Node client's PNG is {worst} levels from the GPU image"
    assert image.info["parameters"] == (
        f"{kw['prompt']}\nNegative prompt: {kw['negative_prompt']}\nSteps: {kw['num_inference_steps']}, "
        f"Sampler: {case['scheduler']}, CFG scale: {kw['guidance_scale']}, Seed: {case['seed']}, "
        f"Size: {kw['width']}x{kw['height']}, Model: loop, RNG: NV")


def test_node_client_errors(node_client, exported_loops, tmp_path):
    node, script = node_client
    folder, _ = exported_loops("euler-a")  # rng "input": the client cannot draw torch's CPU noise
    res = subprocess.run([node, str(script), str(folder), "--prompt", "a cat", "--seed", "1", "--out",
                          str(tmp_path / "x.png")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "rng \"input\"" in res.stderr and "--rng cuda (or --rng cpu)" in res.stderr
    res = subprocess.run([node, str(script), str(folder), "--prompt", "a cat", "--seed", "x", "--out", "x.png"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--seed must be an integer" in res.stderr
    assert not (tmp_path / "x.png").exists()


def test_node_client_with_cpu_rng(node_client, pipeline_folder, reference_pipeline, tmp_path):  # noqa: F811
    """rng cpu through the Node client: diffusers' CPU-generator image within 1 level, "RNG: CPU"."""
    from PIL import Image

    case = CASES["dpmpp-2m-karras"]
    folder = tmp_path / "loop"
    export.export_loop(pipeline_folder("sd", E), folder, size=SIZE, scheduler=case.scheduler, rng="cpu",
                       **_schedule(case.call))
    node, script = node_client
    out = tmp_path / "image.png"
    res = subprocess.run([node, str(script), str(folder), "--prompt", PROMPT, "--seed", str(SEED), "--guidance",
                          str(case.guidance), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    image = Image.open(out)
    worst = int(np.abs(np.asarray(image.convert("RGB")).astype(np.int32)
                       - _levels(_reference_image(reference_pipeline, case)[0])).max())
    _record("node cpu-rng dpmpp-2m-karras", json.loads((folder / "edge_sched.json").read_text()), folder,
            "node (PNG levels)", worst)
    assert worst <= 1, f"the Node client's PNG is {worst} levels from diffusers' image"
    assert image.info["parameters"].endswith(f"Seed: {SEED}, Size: 32x32, Model: loop, RNG: CPU")
