"""export_loop: the whole denoising loop of a text-to-image pipeline as one ONNX graph.

``export_loop(SOURCE, OUTPUT, steps=N, size=(H, W), ...)`` reads an exported ONNX folder (ours or
optimum's) and writes OUTPUT: the source's graphs and configs, the loop's scheduler in ``scheduler/``,
and ``denoise/model.onnx``: an ONNX ``Loop`` over the schedule's model calls whose body

1. repeats the scaled latents for classifier-free guidance (twice when ``prompt_embeds`` holds the
   negative and positive embeddings, once when it holds only the positive ones),
2. runs the UNet (its nodes inlined in the body, its weights stored once, in the body),
3. applies guidance, ``uncond + guidance_scale (cond - uncond)``, as diffusers' pipeline,
4. takes the scheduler step: the step graph of ``export/step_graph.py`` (the numpy step, traced), whose
   ``model_input`` output is the next call's scaled input.

Before the loop the graph scales the initial noise by ``init_noise_sigma`` and applies the first
``scale_model_input``. The noise: ``rng="input"`` takes ``initial_latents`` and ``noise`` (every draw
of the steps, in order) as inputs; ``rng="cuda"`` / ``rng="cpu"`` draw both from an int64 ``seed`` as
``torch.Generator("cuda")`` / ``torch.Generator()`` ``.manual_seed(seed)`` do (``export/philox_graph.py``,
``export/mt19937_graph.py``; ONNX Runtime only).
Output ``latents``: what diffusers' pipeline returns with ``output_type="latent"`` (the LCM pipeline's
final ``denoised``). The manifest ``edge_sched.json`` gains ``components.denoise`` and ``loop``
(see :func:`loop_manifest`). The graph's input for the initial noise is ``initial_latents``, not
``latents``: one ONNX value cannot be both a graph input and the output computed from it.
``format="openvino"`` writes the same graph as OpenVINO IR instead (``denoise/openvino_model.xml``, converted by
``openvino.convert_model``, float32 weights), for ``rng="input"`` only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from edge_sched.jsonfile import read_json
import edge_sched.pipelines  # noqa: F401  (registers the pipeline classes)
from edge_sched.pipelines.base import PIPELINE_CLASSES
from edge_sched.pipelines.config_fixes import fix_scheduler_config

from .atomic import MANIFEST, PARTIAL_MARKER, atomic_folder, check_not_nested, check_replaceable
from .errors import ExportError, SourceError
from .graph_splice import drop_unused_initializers, foreign_opsets, opset_for, spliced
from .onnx_nodes import Nodes
from .mt19937_graph import cpu_draws
from .philox_graph import MIN_OPSET as PHILOX_OPSET
from .philox_graph import cuda_draws
from .scheduler import convert_scheduler
from .step_graph import IR_VERSION, OPSET as STEP_OPSET, StepExportError, build_step_graphs, split_settings

RNG_MODES = ("input", "cuda", "cpu")
FORMATS = ("onnx", "openvino")
LOOP_FOLDER, LOOP_FILE, LOOP_DATA = "denoise", "model.onnx", "model.onnx_data"
LOOP_IR = "openvino_model.xml"  # --format openvino: the loop as OpenVINO IR (+ openvino_model.bin)
LOOP_FORMAT, LOOP_VERSION = "edge_sched.denoise_loop", 1
# a protobuf file holds at most 2 GiB: larger graphs keep their weights in LOOP_DATA
_EMBED_LIMIT = 1 << 30
# model_index classes (optimum's and openvino-genai's names too) whose text-to-image loop this builds
TEXT_TO_IMAGE = {
    "StableDiffusionPipeline": "sd", "ORTStableDiffusionPipeline": "sd",
    "LatentConsistencyModelPipeline": "lcm", "ORTLatentConsistencyModelPipeline": "lcm",
    "StableDiffusionXLPipeline": "sdxl", "ORTStableDiffusionXLPipeline": "sdxl",
}
_ONNX_NP = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64,
            TensorProto.INT64: np.int64, TensorProto.INT32: np.int32}
_INT64_MAX = np.iinfo(np.int64).max
# the seed's generator per rng mode: the nodes drawing its noise, and the manifest's words for it
GENERATORS = {
    "cuda": (cuda_draws, "torch.Generator('cuda').manual_seed(seed): Philox-4x32-10 as curand, one thread per "
                         "element (equal to any GPU's draws while the latents have at most the GPU's thread count "
                         "of values: 40,960 on a T4, 270,336 on an H200)"),
    "cpu": (cpu_draws, "torch.Generator().manual_seed(seed): MT19937 from the seed's low 32 bits, torch's AVX2 "
                       "float32 Box-Muller (blocks of 16, the last block redrawn when the size is not a multiple "
                       "of 16)"),
}


class LoopExportError(ExportError, ValueError):
    """A source, size, scheduler or option the loop graph cannot be built for; the message says why."""


# ---------------------------------------------------------------------------- the source folder
class _Source:
    """An exported ONNX text-to-image folder: its model index, UNet graph and VAE config."""

    def __init__(self, folder: Path):
        if not folder.is_dir():
            raise SourceError(f"{folder}: no such folder (export-loop reads a folder made by `edge-sched export "
                              "--format onnx` or optimum's ONNX exporter)")
        self.folder = folder
        index_file = folder / "model_index.json"
        if not index_file.is_file():
            raise SourceError(f"{folder}: no model_index.json; not an exported pipeline folder")
        self.index = read_json(index_file, error=SourceError)
        cls = self.index.get("_class_name")
        if cls not in TEXT_TO_IMAGE:
            raise SourceError(f"{index_file}: pipeline {cls!r}: export-loop builds the text-to-image loop of "
                              f"{', '.join(sorted(set(TEXT_TO_IMAGE)))}")
        self.pipeline, self.kind = cls.removeprefix("ORT"), TEXT_TO_IMAGE[cls]
        self.unet_file = folder / "unet" / "model.onnx"
        if not self.unet_file.is_file():
            found = sorted(p.name for p in (folder / "unet").glob("*")) if (folder / "unet").is_dir() else []
            raise SourceError(f"{folder}: no ONNX UNet graph unet/model.onnx (unet/ holds "
                              f"{', '.join(found) or 'nothing'}); export-loop reads ONNX folders: export with "
                              "--format onnx")
        for part in ("scheduler/scheduler_config.json", "vae_decoder/config.json"):
            if not (folder / part).is_file():
                raise SourceError(f"{folder}: no {part}")
        vae = read_json(folder / "vae_decoder" / "config.json", error=SourceError)
        self.vae_scale_factor = 2 ** (len(vae.get("block_out_channels", [0] * 4)) - 1)
        self.scaling_factor = float(vae.get("scaling_factor", 0.18215))
        manifest = folder / MANIFEST
        self.manifest = read_json(manifest, error=SourceError) if manifest.is_file() else None
        if self.manifest is not None and self.manifest.get("format", "onnx") != "onnx":
            raise SourceError(f"{folder}: a {self.manifest.get('format')} export; export-loop reads ONNX folders")


def _dims(value: onnx.ValueInfoProto) -> list:
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
            for d in value.type.tensor_type.shape.dim]


def _elem(value: onnx.ValueInfoProto) -> int:
    return value.type.tensor_type.elem_type


# ---------------------------------------------------------------------------- the scheduler
def _scheduler_and_options(source: _Source, scheduler, settings: dict):
    """Our scheduler from the source's config (``scheduler``: a class or A1111 name, default the
    source's), ``settings`` split into config overrides and step options (eta, s_churn...)."""
    from .scheduler import resolve_target

    config = read_json(source.folder / "scheduler" / "scheduler_config.json", error=SourceError)
    # diffusers' pipeline fixes an old config when it loads the folder (steps_offset, clip_sample); a
    # scheduler made from the pipeline's scheduler config inherits the fixed values
    own = convert_scheduler(config)
    fix_scheduler_config(own, PIPELINE_CLASSES[source.pipeline]._scheduler_config_fixes)
    config = dict(own.config)
    target = scheduler or config.get("_class_name")
    cls, _ = resolve_target(str(target))
    overrides, step_options = split_settings(cls, settings, error=LoopExportError)
    return convert_scheduler(config, target, **overrides), step_options


# ---------------------------------------------------------------------------- the graph
class _Shapes:
    def __init__(self, batch, channels, height, width):
        self.batch, self.channels, self.height, self.width = batch, channels, height, width
        self.latent = [batch, channels, height, width]
        self.numel = batch * channels * height * width


def _check_unet(unet: onnx.ModelProto, shapes: _Shapes, source: _Source) -> dict:
    inputs = {v.name: v for v in unet.graph.input if v.name not in {t.name for t in unet.graph.initializer}}
    for need in ("sample", "timestep", "encoder_hidden_states"):
        if need not in inputs:
            raise SourceError(f"{source.unet_file}: the UNet graph has no input {need!r} (it has {', '.join(inputs)})")
    sample = _dims(inputs["sample"])
    if len(sample) != 4 or _elem(inputs["sample"]) != TensorProto.FLOAT:
        raise SourceError(f"{source.unet_file}: sample must be float32 [batch, channels, height, width]")
    want = {1: shapes.channels, 2: shapes.height, 3: shapes.width}
    for axis, size in want.items():
        if isinstance(sample[axis], int) and sample[axis] != size:
            what = ("channels", "latent height", "latent width")[axis - 1]
            raise LoopExportError(
                f"{source.unet_file}: the UNet's sample has a static {what} of {sample[axis]}, the loop needs "
                f"{size} (size {shapes.height * source.vae_scale_factor}x{shapes.width * source.vae_scale_factor}"
                f" with a VAE scale factor of {source.vae_scale_factor}): choose the size it was exported for")
    if isinstance(sample[0], int) and sample[0] not in (shapes.batch, 2 * shapes.batch):
        raise LoopExportError(f"{source.unet_file}: the UNet's batch is static at {sample[0]}; batch {shapes.batch} "
                              f"needs {shapes.batch} (no guidance) or {2 * shapes.batch} (guidance)")
    if _elem(unet.graph.output[0]) != TensorProto.FLOAT:
        raise SourceError(f"{source.unet_file}: the UNet's output {unet.graph.output[0].name} is not float32")
    return inputs


def _timestep_table(b: Nodes, plan: dict, spec: onnx.ValueInfoProto) -> tuple[str, list]:
    """Per call the UNet's timestep as the graph takes it (diffusers' UNet casts integer timesteps to
    float; a float timestep for an integer input is truncated, as the runtime's cast)."""
    dtype = _ONNX_NP.get(_elem(spec))
    if dtype is None:
        raise SourceError(f"the UNet's timestep input has an unsupported type {_elem(spec)}")
    table = np.asarray(plan["timesteps"], dtype=plan["timestep_dtype"]).astype(dtype)
    return b.const(table, hint="timesteps"), _dims(spec)


def _noise_tables(plan: dict) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Every noise draw of the steps in order, and per noise input of the step graph the draw it reads
    at each call (0 where the call reads none)."""
    draws, tables = [], {}
    n_calls = plan["num_model_calls"]
    for i, call in enumerate(plan["calls"]):
        for d in call["noise"]:
            tables.setdefault(d["input"], np.zeros(n_calls, dtype=np.int64))[i] = len(draws)
            draws.append({"call": i, "input": d["input"], "kind": d["kind"],
                          **({"interval": d["interval"]} if "interval" in d else {})})
    return draws, tables


def build_loop_model(unet: onnx.ModelProto, step_graphs, shapes: _Shapes, *, rng: str,
                     decode_denoised: bool, source: _Source) -> tuple[onnx.ModelProto, dict]:
    """The loop model and the description of its inputs/outputs/noise (for the manifest).
    ``unet`` is consumed (its graph is renamed in place into the loop body)."""
    plan = step_graphs.plan
    unet_inputs = _check_unet(unet, shapes, source)
    draws, noise_tables = _noise_tables(plan)
    if rng in GENERATORS:
        brownian = sorted({d["kind"] for d in draws} - {"normal", "uniform"})
        if brownian:
            raise LoopExportError(
                f"{plan['scheduler']['class']} draws {brownian[0]} noise (a Brownian tree seeded per node, "
                f"torchsde's rules): rng={rng!r} builds torch.randn / torch.rand draws only; use rng='input'")
        if rng == "cpu" and shapes.numel < 16:
            raise LoopExportError(f"rng='cpu' needs latents of at least 16 values (torch draws fewer one by one "
                                  f"in float64, which is not built); these have {shapes.numel}")
    opset = opset_for({"UNet": unet, "step": step_graphs.step}, max(STEP_OPSET, PHILOX_OPSET if rng in GENERATORS else 0))

    B = shapes.batch
    latent_dims = list(shapes.latent)
    top = Nodes("loop/")
    graph_inputs, described = [], []

    def add_input(name, elem, dims, meaning):
        graph_inputs.append(helper.make_tensor_value_info(name, elem, dims))
        described.append({"name": name, "dtype": helper.tensor_dtype_to_np_dtype(elem).name, "shape": dims,
                          "meaning": meaning})

    # -- conditioning inputs: the UNet's, batch axis "prompt_batch" (B, or 2 B with guidance)
    embeds = _dims(unet_inputs["encoder_hidden_states"])
    add_input("prompt_embeds", TensorProto.FLOAT, ["prompt_batch", *[d if isinstance(d, int) else "sequence_length"
                                                                      for d in embeds[1:]]],
              f"text embeddings, [prompt_batch, sequence, dim]: with guidance the negative prompt's {B} rows then "
              f"the positive prompt's {B} (prompt_batch = {2 * B}, as diffusers concatenates them); without "
              f"guidance the positive ones only (prompt_batch = {B})")
    add_input("guidance_scale", TensorProto.FLOAT, [],
              "classifier-free guidance scale (float32 scalar); applied when prompt_batch is 2 x batch; diffusers "
              "guides only when it is > 1, so pass the positive embeddings alone for a scale <= 1")
    extra = [n for n in unet_inputs if n not in ("sample", "timestep", "encoder_hidden_states")]
    for name in extra:
        dims = _dims(unet_inputs[name])
        add_input(name, _elem(unet_inputs[name]), ["prompt_batch", *dims[1:]],
                  {"timestep_cond": "guidance-scale embedding of guidance_scale - 1 (LCM-distilled UNets), "
                                    "[prompt_batch, time_cond_proj_dim]",
                   "text_embeds": "SDXL pooled text embeddings, negative then positive rows as prompt_embeds",
                   "time_ids": "SDXL added time ids (original size, crop, target size), rows as prompt_embeds"}
                  .get(name, f"the UNet's input {name}, rows as prompt_embeds"))
    n_draws = len(draws)
    if rng == "input":
        add_input("initial_latents", TensorProto.FLOAT, list(shapes.latent),
                  "the initial noise before init_noise_sigma: what diffusers' pipeline draws first, "
                  "randn(batch, channels, height / f, width / f) (its `latents` argument)")
        if n_draws:
            add_input("noise", TensorProto.FLOAT, [n_draws, *shapes.latent],
                      "every noise draw of the steps, in order (the manifest's loop.noise.draws): each a "
                      "randn of the latents' shape (uniform: rand; brownian: the scheduler's Brownian increment)")
        initial = "initial_latents"
        step_noise = "noise" if n_draws else None
    elif rng in GENERATORS:
        where = "on a GPU" if rng == "cuda" else "on the CPU"
        add_input("seed", TensorProto.INT64, [],
                  f"int64 seed of {GENERATORS[rng][1].split(':')[0]}: the graph draws the initial latents then "
                  f"every step's noise as diffusers does {where}")
        kinds = ["normal"] + [d["kind"] for d in draws]
        rows = GENERATORS[rng][0](top, "seed", shapes.numel, kinds)
        shaped = top.op("Reshape", rows, top.const(np.array([len(kinds), *shapes.latent], np.int64)))
        initial = top.op("Squeeze", top.op("Slice", shaped, top.const([0]), top.const([1]), top.const([0])),
                         top.const([0]))
        step_noise = top.op("Slice", shaped, top.const([1]), top.const([_INT64_MAX]), top.const([0])) if n_draws else None
    else:
        raise LoopExportError(f"rng must be one of {', '.join(RNG_MODES)}, got {rng!r}")

    # -- guidance batching, checked once: prompt_batch must be batch or 2 x batch
    prompt_batch = top.op("Shape", "prompt_embeds", start=0, end=1)
    rows = top.op("Range", top.const(np.int64(0)), top.op("Squeeze", prompt_batch, top.const([0])), top.const(np.int64(1)))
    reps_guess = top.op("Div", prompt_batch, top.const([B]))
    grid = top.op("Reshape", rows, top.op("Concat", reps_guess, top.const([B]), axis=0))  # fails unless reps * B
    reps = top.op("Shape", grid, start=0, end=1)
    # a one-element table read at reps - 2: only reps 1 (index -1) and 2 (index 0) are in range
    zero = top.op("Gather", top.const([0]), top.op("Sub", reps, top.const([2])), axis=0)
    reps = top.op("Add", reps, zero)
    repeats = top.op("Concat", reps, top.const([1, 1, 1]), axis=0, out="loop/repeats")
    guided = top.op("Squeeze", top.op("Equal", reps, top.const([2])), top.const([0]), out="loop/guided")

    # -- before the loop: init_noise_sigma, the first scale_model_input, empty state
    x0 = top.op("Mul", initial, top.const(np.float32(plan["init_noise_sigma"])))
    scale_nodes, scale_inits, _, scale_outs = spliced(step_graphs.scale_model_input.graph, "scale0/",
                                                      {"sample": x0, "step_index": top.const(np.int64(0))})
    top.nodes += scale_nodes
    top.initializers += scale_inits
    mi0 = scale_outs[0]
    zeros = top.op("ConstantOfShape", top.op("Shape", x0),
                   value=helper.make_tensor("value", TensorProto.FLOAT, [1], [0.0]))
    states = [onnx.ValueInfoProto.FromString(v.SerializeToString()) for v in step_graphs.step.graph.input
              if v.name.startswith("state.")]
    for v in states:
        if _dims(v) != ["batch", "channels", "height", "width"] or _elem(v) != TensorProto.FLOAT:
            raise StepExportError(f"state {v.name} is not a float32 latent-shaped tensor; the loop cannot carry it")

    # -- the body
    body = Nodes("body/")
    i_name, cond_in = "body/i", "body/cond"
    carried = ["body/x", "body/model_input", *[f"body/{v.name}" for v in states]]
    if decode_denoised:
        carried.append("body/denoised")
    body_inputs = [helper.make_tensor_value_info(i_name, TensorProto.INT64, []),
                   helper.make_tensor_value_info(cond_in, TensorProto.BOOL, [])]
    body_inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, latent_dims) for n in carried]
    unet_sample = body.op("Tile", "body/model_input", repeats)
    t_table, t_dims = _timestep_table(body, plan, unet_inputs["timestep"])
    t = body.op("Gather", t_table, i_name, axis=0)
    if len(t_dims) == 1:  # one timestep per row
        t = body.op("Expand", t, prompt_batch)
    elif len(t_dims) > 1:
        raise SourceError(f"{source.unet_file}: timestep has shape {t_dims}; a scalar or [batch] was expected")
    bind = {"sample": unet_sample, "timestep": t, "encoder_hidden_states": "prompt_embeds", **{n: n for n in extra}}
    unet_nodes, unet_inits, unet_infos, unet_outs = spliced(unet.graph, "unet/", bind)
    body.nodes += unet_nodes
    body.initializers += unet_inits
    prediction = unet_outs[0]
    uncond = body.op("Slice", prediction, body.const([0]), body.const([B]), body.const([0]))
    cond = body.op("Slice", prediction, body.const([-B]), body.const([_INT64_MAX]), body.const([0]))
    guided_pred = body.op("Add", uncond, body.op("Mul", "guidance_scale", body.op("Sub", cond, uncond)))
    model_output = body.op("Where", guided, guided_pred, cond)
    step_bind = {"sample": "body/x", "model_output": model_output, "step_index": i_name}
    step_bind.update({v.name: f"body/{v.name}" for v in states})
    for name, table in noise_tables.items():
        index = body.op("Gather", body.const(table, hint="draw_of_call"), i_name, axis=0)
        step_bind[name] = body.op("Gather", step_noise, index, axis=0)
    step_names = [v.name for v in step_graphs.step.graph.output]
    step_nodes, step_inits, _, step_outs = spliced(step_graphs.step.graph, "step/", step_bind)
    body.nodes += step_nodes
    body.initializers += step_inits
    step_out = dict(zip(step_names, step_outs))
    outs = [body.op("Identity", cond_in), body.op("Identity", step_out["prev_sample"]),
            body.op("Identity", step_out["model_input"])]
    outs += [body.op("Identity", step_out[f"next_{v.name}"]) for v in states]
    if decode_denoised:
        if "denoised" not in step_out:
            raise LoopExportError(f"the {source.pipeline} decodes the step's denoised sample; "
                                  f"{plan['scheduler']['class']} has none: use LCMScheduler or TCDScheduler")
        outs.append(body.op("Identity", step_out["denoised"]))
    body_outputs = [helper.make_tensor_value_info(outs[0], TensorProto.BOOL, [])]
    body_outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, latent_dims) for n in outs[1:]]
    body_graph = helper.make_graph(body.nodes, "denoising_step", body_inputs, body_outputs, body.initializers,
                                   value_info=unet_infos)
    drop_unused_initializers(body_graph)

    initial_carried = [x0, mi0, *[zeros for _ in states]] + ([zeros] if decode_denoised else [])
    finals = top.ops("Loop", [top.const(np.int64(plan["num_model_calls"])), top.const(np.bool_(True)),
                              *initial_carried], len(initial_carried), body=body_graph)
    top.op("Identity", finals[-1] if decode_denoised else finals[0], out="latents")
    graph = helper.make_graph(top.nodes, "denoising_loop", graph_inputs,
                              [helper.make_tensor_value_info("latents", TensorProto.FLOAT, list(shapes.latent))],
                              top.initializers)
    drop_unused_initializers(graph)  # e.g. the first scaling's step index, for schedulers that scale nothing
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    *foreign_opsets([unet])],
                              producer_name="edge_sched.export.loop_graph")
    model.ir_version = max(IR_VERSION, unet.ir_version)
    outputs = [{"name": "latents", "dtype": "float32", "shape": list(shapes.latent),
                "meaning": ("the final denoised latents (the LCM pipeline's last `denoised`)" if decode_denoised else
                            "the final latents") + ", as diffusers' pipeline returns them with output_type='latent'; "
                           "decode with vae_decoder(latents / loop.vae.scaling_factor)"}]
    return model, {"inputs": described, "outputs": outputs, "draws": draws}


# ---------------------------------------------------------------------------- export_loop
def _check_size(size, factor: int) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise LoopExportError(f"size must be (height, width), got {size!r}") from None
    if height <= 0 or width <= 0 or height % 8 or width % 8 or height % factor or width % factor:
        raise LoopExportError(f"size {height}x{width}: height and width must be positive multiples of 8 "
                              f"(and of the VAE scale factor {factor}), as diffusers requires")
    return height, width


def parse_size(text: str) -> tuple[int, int]:
    """``"HxW"`` -> (height, width)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise LoopExportError(f"size must look like 512x512 (height x width), got {text!r}") from None
    return height, width


def export_loop(source, output, *, steps: int | None = None, size=(512, 512), scheduler: str | None = None,
                overrides: dict | None = None, timesteps=None, sigmas=None, batch: int = 1, rng: str = "input",
                format: str = "onnx", overwrite: bool = False, keep_unet: bool = True) -> dict:
    """Write OUTPUT (see the module doc) for ``steps`` inference steps (or custom ``timesteps`` /
    ``sigmas``) at image ``size`` (height, width) and ``batch`` images per call; returns the manifest.

    ``scheduler``: a diffusers class name or A1111 sampler name (default: the source's own), built from the
    source's scheduler config; ``overrides``: its config keys (``use_karras_sigmas``...) and step options
    (``eta``, ``s_churn``...), each routed where the scheduler has it. ``rng``: "input", "cuda" or "cpu"
    (see the module doc). ``format``: "onnx" (denoise/model.onnx) or "openvino" (denoise/openvino_model.xml
    + .bin, the same graph through ``openvino.convert_model``, float32 weights; rng "input" only: OpenVINO's
    CPU plugin does not compute the generators' integer arithmetic exactly). ``keep_unet``: also copy unet/ (a folder the Python
    runtime loads as well; the UNet weights are then stored twice, as ONNX refuses external data shared
    between graphs through links); False stores them once, in denoise/.
    Atomic as ``edge-sched export``: built next to OUTPUT and renamed; an existing OUTPUT is replaced only
    with ``overwrite``, and only if empty or made by edge-sched.
    """
    if rng not in RNG_MODES:
        raise LoopExportError(f"rng must be one of {', '.join(RNG_MODES)}, got {rng!r}")
    if format not in FORMATS:
        raise LoopExportError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "openvino" and rng != "input":
        from edge_sched.denoise_graph import OPENVINO_REASONS

        raise LoopExportError(f"format 'openvino' needs rng 'input': a loop drawing torch's noise itself (rng {rng!r}) "
                              f"cannot run on OpenVINO, because {OPENVINO_REASONS[rng]}; export with --rng input "
                              "(the app feeds initial_latents and noise), or keep --format onnx for ONNX Runtime")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise LoopExportError(f"batch must be a positive int, got {batch!r}")
    source_folder = Path(source).expanduser().absolute()
    output = Path(output).expanduser().absolute()
    src = _Source(source_folder)
    check_not_nested(output, [source_folder])
    check_replaceable(output, overwrite)
    height, width = _check_size(size, src.vae_scale_factor)
    sched, step_options = _scheduler_and_options(src, scheduler, dict(overrides or {}))
    schedule = {k: v for k, v in (("num_inference_steps", steps), ("timesteps", timesteps), ("sigmas", sigmas))
                if v is not None}
    if not schedule:
        raise LoopExportError("give steps (num_inference_steps), timesteps or sigmas")
    graphs = build_step_graphs(sched, step_options=step_options, handover="graph", **schedule)
    unet_config_file = source_folder / "unet" / "config.json"
    # the UNet's own external weights stay where they are, referenced (a 3.4 GB SD1.5 UNet read into the body
    # graph would not fit a protobuf message): denoise/ gets a copy of those files, same names and offsets
    unet = onnx.load(str(src.unet_file), load_external_data=False)
    unet_data = _external_files(unet, src.unet_file)
    channels = _dims(next(v for v in unet.graph.input if v.name == "sample"))[1]
    if not isinstance(channels, int):
        channels = int(read_json(unet_config_file, error=SourceError).get("in_channels", 4))
    shapes = _Shapes(int(batch), channels, height // src.vae_scale_factor, width // src.vae_scale_factor)
    model, io = build_loop_model(unet, graphs, shapes, rng=rng, decode_denoised=src.kind == "lcm", source=src)
    del unet
    with atomic_folder(output, overwrite) as tmp:
        _copy_source(source_folder, tmp, keep_unet)
        sched.save_pretrained(tmp / "scheduler")
        _set_model_index_scheduler(tmp / "model_index.json", type(sched).__name__)
        (tmp / LOOP_FOLDER).mkdir()
        for name in unet_data:
            shutil.copyfile(src.unet_file.parent / name, tmp / LOOP_FOLDER / name)
        size_bytes = _save_model(model, tmp / LOOP_FOLDER, taken=unet_data)
        del model
        if format == "openvino":
            size_bytes = _convert_to_openvino(tmp / LOOP_FOLDER)
        manifest = loop_manifest(src, graphs.plan, io, shapes, rng=rng, size=(height, width), batch=int(batch),
                                 keep_unet=keep_unet, graph_bytes=size_bytes, tmp=tmp, graph_format=format)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return manifest


def _strict_json(value):
    """JSON that every parser reads: infinities and NaN (lambda_min_clipped: -inf) as the strings
    "Infinity", "-Infinity", "NaN" (scheduler_config.json keeps Python's spelling)."""
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict_json(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return "NaN" if np.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _copy_source(source: Path, tmp: Path, keep_unet: bool) -> None:
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if rel.as_posix() in (MANIFEST, PARTIAL_MARKER) or rel.parts[0] == LOOP_FOLDER:
            continue
        if not keep_unet and rel.parts[0] == "unet" and path.name != "config.json":
            continue
        target = tmp / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def _set_model_index_scheduler(path: Path, scheduler_class: str) -> None:
    index = read_json(path, error=ExportError)
    index["scheduler"] = ["diffusers", scheduler_class]
    path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _external_files(model: onnx.ModelProto, model_file: Path) -> list[str]:
    """The files next to ``model_file`` holding the model's external tensors (subgraphs included), checked
    to be plain files inside its folder."""
    from onnx.external_data_helper import _get_all_tensors

    folder = model_file.parent.resolve()
    names = []
    for tensor in _get_all_tensors(model):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        path = (folder / location).resolve()
        if not location or path.parent != folder or not path.is_file() or path.is_symlink():
            raise SourceError(f"{model_file}: tensor {tensor.name} keeps its data in {location!r}, which is not a "
                              f"file next to the graph")
        if location not in names:
            names.append(location)
    return names


def _save_model(model: onnx.ModelProto, folder: Path, taken=()) -> dict:
    """denoise/model.onnx, its weights in model.onnx_data when the graph would not fit a protobuf file
    (another name where the UNet's own external data, copied there, already has that one)."""
    external = model.ByteSize() > _EMBED_LIMIT
    if external:
        location = LOOP_DATA if LOOP_DATA not in taken else "loop_" + LOOP_DATA
        onnx.save_model(model, str(folder / LOOP_FILE), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=location, size_threshold=1024)
        onnx.checker.check_model(str(folder / LOOP_FILE), full_check=True)
    elif taken:  # tensors in files next to it: the checker reads them from the saved graph's folder
        onnx.save_model(model, str(folder / LOOP_FILE))
        onnx.checker.check_model(str(folder / LOOP_FILE), full_check=True)
    else:
        onnx.checker.check_model(model, full_check=True)
        onnx.save_model(model, str(folder / LOOP_FILE))
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir())}


def _convert_to_openvino(folder: Path) -> dict:
    """denoise/model.onnx (+ its external data) -> denoise/openvino_model.xml + .bin, weights kept in float32;
    the ONNX files are removed."""
    import openvino as ov

    ov.save_model(ov.convert_model(str(folder / LOOP_FILE)), str(folder / LOOP_IR), compress_to_fp16=False)
    for name in (LOOP_FILE, LOOP_DATA):
        (folder / name).unlink(missing_ok=True)
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir())}


def loop_manifest(src: _Source, plan: dict, io: dict, shapes: _Shapes, *, rng, size, batch, keep_unet, graph_bytes,
                  tmp: Path, graph_format: str = "onnx") -> dict:
    """The source's manifest (or a minimal one for optimum's folders) with ``components.denoise``, the
    ``loop`` description and fresh file hashes."""
    from .pipeline import file_hashes

    base = dict(src.manifest) if src.manifest else {
        "edge_sched_manifest": 1, "format": "onnx", "pipeline": src.pipeline, "family": src.kind,
        "source": {"id": str(src.folder), "kind": "local", "revision": None}, "components": {}}
    components = dict(base.get("components") or {})
    if not keep_unet:
        components.pop("unet", None)
    graph = f"{LOOP_FOLDER}/{LOOP_IR if graph_format == 'openvino' else LOOP_FILE}"
    components[LOOP_FOLDER] = {"file": graph, "inputs": io["inputs"], "outputs": io["outputs"]}
    base["components"] = components
    base["scheduler"] = {"class": plan["scheduler"]["class"], "config": "scheduler/scheduler_config.json"}
    base["loop"] = {
        "format": LOOP_FORMAT,
        "version": LOOP_VERSION,
        "graph": graph,
        "graph_format": graph_format,
        "source": str(src.folder),
        "size": {"height": size[0], "width": size[1]},
        "batch": batch,
        "latent_shape": list(shapes.latent),
        "inputs": io["inputs"],
        "outputs": io["outputs"],
        "scheduler": {"class": plan["scheduler"]["class"], "config": _strict_json(plan["scheduler"]["config"]),
                      "set_timesteps": plan["set_timesteps"], "step_options": plan["step_options"]},
        "steps": plan["num_inference_steps"],
        "num_model_calls": plan["num_model_calls"],
        "timesteps": plan["timesteps"],
        "init_noise_sigma": plan["init_noise_sigma"],
        "rng": rng,
        "noise": {
            "draws": io["draws"],
            "order": "the initial latents first, then the draws in this order (as diffusers draws them from one "
                     "generator); with rng 'input' the initial latents are initial_latents and the draws are "
                     "the rows of noise",
            **({"generator": GENERATORS[rng][1]} if rng in GENERATORS else {}),
        },
        "guidance": "classifier-free guidance when prompt_embeds holds 2 x batch rows (negative then positive), "
                    "none when it holds batch rows",
        "decode": {"output": "latents", "vae": "vae_decoder", "scaling_factor": src.scaling_factor,
                   "image": "clip(sample / 2 + 0.5, 0, 1)"},
        "engines": (["openvino"] if graph_format == "openvino" else
                    ["onnxruntime"] if rng in GENERATORS else ["onnxruntime", "openvino"]),
        "graph_bytes": graph_bytes,
        "unet_kept": keep_unet,
    }
    base["files"] = file_hashes(tmp)
    return base


__all__ = ["FORMATS", "LoopExportError", "RNG_MODES", "build_loop_model", "export_loop", "loop_manifest", "parse_size"]
