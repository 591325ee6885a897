"""export_step: one scheduler step as an ONNX graph, traced from the numpy scheduler itself.

For a configured scheduler and a schedule (``num_inference_steps``, or custom ``timesteps`` /
``sigmas``), every model call ``i`` of the loop is traced: the scheduler's own ``step`` runs on
stand-in arrays (``export/numpy_trace.py``) and each numpy operation becomes an ONNX node, with
the plan's per-step numbers as constants. There is no second copy of any update rule: the graph
is what the numpy step computes, operation for operation.

Python control flow on the step index (first order at the first step, the lower-order final
step, Heun's predictor and corrector) is resolved per step. Two layouts (``layout``):

``"indexed"`` (the default)
    Steps whose traces have the same structure are merged into one branch whose per-step constants
    are tables gathered at ``step_index``; different structures are branches of an ``If`` chain on
    the step index. The result is one graph, ``step.onnx``, taking the step index as an input, which
    a whole-loop ``Loop`` graph can call as its body.
``"per_call"`` (``handover="host"`` only)
    Call ``i`` gets a graph of its own, built from trace ``i`` alone (the same merge, of one call):
    every constant a plain initializer, no ``step_index`` input, no ``Gather`` of a table, no ``If``.
    Each ONNX Runtime node costs about 1 us of dispatch, so this is for apps that call the step
    themselves and pay for every node (the indexed LMS graph runs 25 nodes per steady call, its
    per-call graph 13). Graphs equal byte for byte (calls with the same structure and the same
    constants: evenly spaced flow-matching sigmas, say) are one file: ``step_000.onnx``,
    ``step_001.onnx``... numbered in the order of the first call running each; ``calls[i].graph``
    names call ``i``'s. Each graph has exactly the inputs its call reads: ``sample``,
    ``model_output``, the noise it draws (``calls[i].noise``, in order) and the state slots the
    previous call left (none at call 0); and the outputs ``prev_sample``, ``model_input`` (as
    below), the fields of every call, and the ``next_state.<name>`` values it computes. So the app
    keeps no zeros and feeds no unused input: after call ``i`` the state ``calls[i].state`` maps is
    exactly the state inputs of call ``i + 1``'s graph. ``scale_model_input.onnx`` keeps its
    ``step_index`` input in both layouts: it runs once per image, before the first call (the step
    graphs scale for the next call themselves).

``step.onnx`` (layout ``"per_call"``: ``step_000.onnx``... as said above)
    inputs: ``sample``, ``model_output`` (float32, [batch, channels, height, width]),
    ``step_index`` (int64 scalar: the model call, 0 .. num_model_calls - 1), one input per noise
    draw of a step (``noise``, ``noise_1``...; only where some step draws noise), and the carried
    state ``state.<name>`` (multistep history, Heun's predictor sample and derivative...; zeros
    before the first step).
    outputs: ``prev_sample``, ``model_input`` (the next call's scaled model input; after the last
    call, scaled as for the last call, which nobody needs; absent where the scheduler does not scale,
    the next input then being ``prev_sample``), the scheduler output's other fields present at every
    step (``pred_original_sample``, LCM's ``denoised``), and the carried state's new values.
    How the state is handed to the next call (``handover``):

    ``"host"`` (the default, for apps calling the step themselves): ``next_state.<name>`` is an output
    only where some call computes that slot; per call, ``plan.json`` maps every state input of the next
    call to the input or output holding its value (``calls[i].state``: a history slot shifted by one
    is the previous call's ``state.<other>`` or ``model_output``), so the app re-points arrays as the
    numpy step re-points list entries and nothing is copied. In the indexed graph a ``next_state``
    output a call does not compute is a one-element placeholder there (an ``If`` output needs a
    tensor of its rank); a per-call graph has no such output.
    ``"graph"`` (for a graph calling the step, such as the whole-loop ``Loop`` body): every state input
    has its ``next_state.<name>`` output at every call (passed through where a step leaves a slot as it
    was), and ``model_input`` is always an output.
``scale_model_input.onnx``
    ``sample``, ``step_index`` -> ``model_input``: the scaling before the first call (or a
    mid-schedule start).
``plan.json`` (``version`` 4)
    timesteps (what the model sees at each call), ``init_noise_sigma``, ``layout``, per call
    (``calls[i]``) the step graph it runs (``graph``), the noise inputs it reads (``noise``) and
    where the next call's state comes from (``state``); ``graphs`` (``steps``: every step graph file;
    ``scale_model_input``; indexed also ``step``), ``step_graphs`` ({file: {inputs, outputs}}; the
    indexed graph's also as ``inputs`` / ``outputs``, as in version 2), ``state`` (the state inputs
    of call 0's graph, zeros: every slot when indexed, none when per call), ``next_model_input``.
    Version 3 added ``layout``, ``calls[i].graph``, ``graphs.steps`` and ``step_graphs``; an indexed
    plan is otherwise version 2's. Version 4 added, per call layout only, ``buffers``: a static memory
    plan (``export/buffer_plan.py``) placing every array of the loop in one of a few buffers, so an app
    binds each call's inputs and outputs once and the loop allocates and copies nothing.

Schedulers without a fixed plan (``PLANLESS``) raise :class:`StepExportError` saying why.
The loop is traced from its first call: state arriving at call ``i`` is what calls ``0 .. i-1``
left (a mid-schedule start, image-to-image's begin index, is not traced yet).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edge_sched.schedulers import SchedulerMixin
from edge_sched.schedulers.configuration import init_parameters
from edge_sched.schedulers.resolve import resolve_scheduler

from .atomic import MANIFEST, atomic_folder, check_replaceable
from .buffer_plan import plan_buffers
from .errors import ExportError
from .numpy_trace import ONNX_DTYPES, Recorder, Traced, TraceError, tracing

OPSET = 17
IR_VERSION = 8  # what OpenVINO's and older ONNX Runtimes' readers accept with opset 17
STEP_GRAPH, SCALE_GRAPH, PLAN = "step.onnx", "scale_model_input.onnx", "plan.json"
PER_CALL_GRAPH = "step_{:03d}.onnx"  # layout "per_call": the distinct graphs, numbered by the first call running each
PLAN_FORMAT = "edge_sched.step_graph"
# 2: per-call state hand-over (calls[i].state), next_model_input, handover; 3: layout, calls[i].graph, step_graphs;
# 4: buffers (layout "per_call")
PLAN_VERSION = 4
HANDOVERS = ("host", "graph")
LAYOUTS = ("indexed", "per_call")
# the traced sample: distinct dimensions, so that a constant baked in at that shape is caught
TRACE_SHAPE = (3, 4, 5, 7)
AXIS_NAMES = ("batch", "channels", "height", "width")
# step arguments the export supplies itself
RESERVED_STEP_ARGS = ("self", "model_output", "timestep", "sample", "generator", "return_dict",
                      "variance_noise", "noise")

# schedulers whose last timestep is the time the loop ends at, not a model call (Würstchen's prior)
LAST_TIMESTEP_IS_TARGET = ("DDPMWuerstchenScheduler",)

PLANLESS = {
    "DPMAdaptiveScheduler": "it chooses each step size from an error estimate of the sample it is denoising, "
                            "so the number of model calls and their sigmas are not known before sampling",
    "VQDiffusionScheduler": "it samples discrete latent-pixel classes (log-probabilities, Gumbel noise) "
                            "rather than stepping float latents, and its model outputs class logits",
    "ScoreSdeVeScheduler": "it is driven by its own predictor-corrector API (step_pred / step_correct with "
                           "a data-dependent corrector step size), not by one step() per model call",
    "ScoreSdeVpScheduler": "its step_pred takes continuous time and the score directly in its own "
                           "predictor loop, not one step() per model call of a fixed plan",
    "KarrasVeScheduler": "its loop is add_noise_to_input, step and step_correct with a sample_hat the "
                         "caller keeps: its own API, not one step() per model call",
    "RePaintScheduler": "it jumps back in time (undo_step re-noises) and needs the original image and "
                        "mask at every step: its loop is not a fixed sequence of step() calls",
}


class StepExportError(ExportError, ValueError):
    """A scheduler, schedule or option that cannot become a step graph; the message says why."""


@dataclasses.dataclass
class StepGraphs:
    step: onnx.ModelProto | None  # layout "indexed": the one step graph; "per_call": None (see steps)
    scale_model_input: onnx.ModelProto
    plan: dict
    steps: dict[str, onnx.ModelProto]  # every step graph by file name: {"step.onnx": step} or step_000.onnx...


# ---------------------------------------------------------------------------- public entry points
def export_step(
    scheduler,
    output: str | os.PathLike,
    *,
    config: dict | None = None,
    overrides: dict | None = None,
    num_inference_steps: int | None = None,
    timesteps=None,
    sigmas=None,
    step_options: dict | None = None,
    handover: str = "host",
    layout: str = "indexed",
    overwrite: bool = False,
) -> dict:
    """Write ``step.onnx`` (or, ``layout="per_call"``, ``step_000.onnx``...), ``scale_model_input.onnx``
    and ``plan.json`` for one schedule into the folder ``output`` (atomically, as ``edge-sched export``);
    returns the plan.

    ``scheduler``: an edge_sched scheduler (its config is used, the object is left as it is) or a
    name (diffusers class name or A1111 sampler name) built from ``config`` (a scheduler config
    dict, e.g. a pipeline's scheduler_config.json) with ``overrides`` (keys the class must have).
    ``step_options``: keyword arguments of the scheduler's ``step`` (``eta``, ``s_churn``...).
    ``handover``: ``"host"`` (state handed over by the caller, per plan.json, nothing copied) or
    ``"graph"`` (every state slot an output at every call); see the module's docstring.
    ``layout``: ``"indexed"`` (one step graph, the call an input) or ``"per_call"`` (a graph per distinct
    call, its constants plain initializers; needs ``handover="host"``); see the module's docstring.
    """
    output = Path(output)
    check_replaceable(output, overwrite)
    graphs = build_step_graphs(scheduler, config=config, overrides=overrides,
                               num_inference_steps=num_inference_steps, timesteps=timesteps, sigmas=sigmas,
                               step_options=step_options, handover=handover, layout=layout)
    with atomic_folder(output, overwrite) as tmp:
        for file, model in {**graphs.steps, SCALE_GRAPH: graphs.scale_model_input}.items():
            onnx.save(model, tmp / file)
        (tmp / PLAN).write_text(json.dumps(graphs.plan, indent=1) + "\n", encoding="utf-8")
        files = {name: hashlib.sha256((tmp / name).read_bytes()).hexdigest()
                 for name in (*graphs.steps, SCALE_GRAPH, PLAN)}
        manifest = {"edge_sched_manifest": 1, "kind": "scheduler_step", "plan": PLAN, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return graphs.plan


def build_step_graphs(scheduler, *, config=None, overrides=None, num_inference_steps=None, timesteps=None,
                      sigmas=None, step_options=None, handover="host", layout="indexed") -> StepGraphs:
    """The step graphs, the scaling graph and the plan, in memory (see :func:`export_step`)."""
    if handover not in HANDOVERS:
        raise StepExportError(f"handover must be one of {', '.join(map(repr, HANDOVERS))}, got {handover!r}")
    if layout not in LAYOUTS:
        raise StepExportError(f"layout must be one of {', '.join(map(repr, LAYOUTS))}, got {layout!r}")
    if layout == "per_call" and handover != "host":
        raise StepExportError(f"layout='per_call' needs handover='host', got handover={handover!r}: a graph "
                              "calling the step (handover='graph', the Loop body) calls one graph with the step "
                              "index as an input, layout='indexed'")
    sched = _fresh_scheduler(scheduler, config, overrides)
    name = type(sched).__name__
    options = _check_step_options(sched, step_options)
    schedule = {k: v for k, v in (("num_inference_steps", num_inference_steps), ("timesteps", timesteps),
                                  ("sigmas", sigmas)) if v is not None}
    try:
        sched.set_timesteps(**schedule)
    except TypeError as e:
        raise StepExportError(f"{name}.set_timesteps({_show(schedule)}): {e}") from e
    plan_timesteps = _call_timesteps(sched)
    init_noise_sigma = float(sched.init_noise_sigma)
    try:
        steps, scales = _trace_schedule(sched, options)
        step_models, graph_of_call, handovers = _step_models(f"{name}_step", steps, scales, handover, layout)
        scale_model = _scale_model(f"{name}_scale_model_input", scales, len(plan_timesteps))
    except TraceError as e:
        raise StepExportError(f"{name} with {_show({**schedule, **options})} cannot be traced into a graph: "
                              f"{e}") from e
    plan = _plan(sched, schedule, options, plan_timesteps, init_noise_sigma, steps, step_models, graph_of_call,
                 handover, handovers, layout)
    return StepGraphs(step_models.get(STEP_GRAPH), scale_model, plan, step_models)


def _show(kwargs: dict) -> str:
    return ", ".join(f"{k}={np.asarray(v).tolist() if isinstance(v, np.ndarray) else v!r}"
                     for k, v in kwargs.items()) or "no options"


def _fresh_scheduler(scheduler, config, overrides) -> SchedulerMixin:
    overrides = dict(overrides or {})
    if isinstance(scheduler, SchedulerMixin):
        if config is not None:
            raise StepExportError("pass config= only with a scheduler name, not with a scheduler object")
        cls, options, base = type(scheduler), {}, dict(scheduler.config)
    elif isinstance(scheduler, str):
        cls, options = resolve_scheduler(scheduler)  # UnknownSchedulerError names the closest names
        base = dict(config or {})
    else:
        raise TypeError(f"scheduler must be an edge_sched scheduler or a scheduler name, "
                        f"got {type(scheduler).__name__}")
    if cls.__name__ in PLANLESS:
        raise StepExportError(f"{cls.__name__} cannot be exported as a step graph: {PLANLESS[cls.__name__]}.")
    unknown = sorted(set(overrides) - set(init_parameters(cls)))
    if unknown:
        raise StepExportError(f"{cls.__name__} has no option {', '.join(map(repr, unknown))}; its options are "
                              f"{', '.join(init_parameters(cls))}")
    return cls.from_config(base, **{**options, **overrides})


def step_option_names(cls) -> list[str]:
    """The keyword arguments of ``cls.step`` a caller may set (``eta``, ``s_churn``...): not those the export
    supplies itself."""
    params = inspect.signature(cls.step).parameters
    return [p for p, v in params.items() if p not in RESERVED_STEP_ARGS
            and v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]


def split_settings(cls, settings: dict, error=None) -> tuple[dict, dict]:
    """Command-line ``key=value`` settings routed where scheduler class ``cls`` has them: (config overrides, step
    options); a key it has neither way raises ``error`` (default :class:`StepExportError`) naming both lists."""
    config_params, step_params = init_parameters(cls), step_option_names(cls)
    overrides, step_options = {}, {}
    for key, value in settings.items():
        if key in config_params:
            overrides[key] = value
        elif key in step_params:
            step_options[key] = value
        else:
            raise (error or StepExportError)(
                f"{cls.__name__} has no option {key!r}: its config keys are {', '.join(config_params)}; its step "
                f"options are {', '.join(step_params) or 'none'}")
    return overrides, step_options


def _check_step_options(sched, step_options) -> dict:
    options = dict(step_options or {})
    allowed = step_option_names(type(sched))
    bad = sorted(set(options) - set(allowed))
    if bad:
        kind = "the export supplies" if set(bad) & set(RESERVED_STEP_ARGS) else "has no"
        raise StepExportError(
            f"{type(sched).__name__}.step {kind} argument {', '.join(map(repr, bad))}; step options it takes: "
            f"{', '.join(allowed) or 'none'}"
        )
    return options


# ---------------------------------------------------------------------------- tracing the loop
@dataclasses.dataclass
class _Trace:
    rec: Recorder
    outputs: dict  # interface output name -> Traced (a state slot left empty is absent)
    noise: list  # the noise draws of this call, in order: ("normal" | "uniform" | "brownian", interval)


class _NoiseInputs:
    """A ``NoiseSource`` (edge_sched.random) whose draws are graph inputs: ``noise``, ``noise_1``..."""

    def __init__(self, rec: Recorder):
        self.rec, self.draws = rec, []  # (kind, interval or None) per draw, in order

    def _draw(self, kind, shape, dtype, interval=None):
        shape = tuple(int(d) for d in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        if shape != TRACE_SHAPE:
            raise TraceError(f"the step draws noise of shape {shape}, not the sample's {TRACE_SHAPE}")
        name = "noise" if not self.draws else f"noise_{len(self.draws)}"
        self.draws.append((kind, interval))
        value = self.rec.input(name, shape, np.float32)
        return value if np.dtype(dtype) == np.float32 else value.astype(dtype)

    def brownian(self, sigma, sigma_next):
        """The scheduler's ``noise_sampler(sigma, sigma_next)``: a Brownian-tree increment, as an input."""
        return self._draw("brownian", TRACE_SHAPE, np.float32, [float(sigma), float(sigma_next)])

    def randn(self, shape, dtype=np.float32):
        return self._draw("normal", shape, dtype)

    def rand(self, shape, dtype=np.float32):
        return self._draw("uniform", shape, dtype)

    def initial_seed(self) -> int:
        return 0

    def copy(self):
        raise TraceError("the step copies its generator (a noise stream it replays), which a graph input cannot")


def _state_items(obj, prefix=""):
    """(path, Traced) for every Traced value in the scheduler's attributes, lists, tuples and dicts."""
    items = obj.__dict__.items() if prefix == "" else (
        enumerate(obj) if isinstance(obj, (list, tuple)) else obj.items())
    for key, value in items:
        path = f"{prefix}{key}"
        if isinstance(value, Traced):
            yield path, value
        elif isinstance(value, (list, tuple, dict)):
            yield from _state_items(value, path + ".")


def _replace_state(sched, rec: Recorder) -> None:
    """Every Traced value left in the scheduler by the previous call becomes an input of this trace."""
    def swap(value, path):
        if isinstance(value, Traced):
            return rec.input(f"state.{path}", value.shape, value.dtype)
        if isinstance(value, (list, tuple)):
            new = [swap(v, f"{path}.{i}") for i, v in enumerate(value)]
            if all(a is b for a, b in zip(new, value)):
                return value
            if isinstance(value, list):
                value[:] = new  # in place: other holders of the list see the inputs too
                return value
            return type(value)(*new) if hasattr(value, "_fields") else type(value)(new)
        if isinstance(value, dict):
            for k in list(value):
                new = swap(value[k], f"{path}.{k}")
                if new is not value[k]:
                    value[k] = new
        return value

    for key, value in list(sched.__dict__.items()):
        new = swap(value, key)
        if new is not value:
            sched.__dict__[key] = new


def _output_fields(out) -> dict:
    if dataclasses.is_dataclass(out):
        return {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}
    raise TraceError(f"step returned {type(out).__name__}, not a scheduler output")


def _trace_schedule(sched, options) -> tuple[list[_Trace], list[_Trace]]:
    """Trace every model call of the planned loop: (step traces, scale_model_input traces)."""
    takes_generator = "generator" in inspect.signature(sched.step).parameters
    timesteps = list(_call_timesteps(sched))
    steps, scales = [], []
    for i, t in enumerate(timesteps):
        with tracing():
            srec = Recorder(TRACE_SHAPE)
            x = srec.input("sample", TRACE_SHAPE, np.float32)
            # flow-matching schedulers have no scaling: the model sees the sample
            scaled = sched.scale_model_input(x, t) if hasattr(sched, "scale_model_input") else x
            scales.append(_Trace(srec, {"model_input": _as_output(srec, scaled)}, []))
            if any(v.rec is srec for _, v in _state_items(sched)):
                raise TraceError("scale_model_input keeps a value computed from the sample in the scheduler")
            rec = Recorder(TRACE_SHAPE)
            _replace_state(sched, rec)
            sample = rec.input("sample", TRACE_SHAPE, np.float32)
            model_output = rec.input("model_output", TRACE_SHAPE, np.float32)
            noise = _NoiseInputs(rec)
            kwargs = dict(options, generator=noise) if takes_generator else dict(options)
            if hasattr(sched, "noise_sampler"):  # Brownian-tree noise (DPM-Solver SDE, Cosine DPM)
                sched.noise_sampler = noise.brownian
            out = _output_fields(sched.step(model_output, t, sample, **kwargs))
            prev = out.pop("prev_sample")
            if not isinstance(prev, Traced) or prev.rec is not rec:
                raise TraceError("step's prev_sample does not come from this call's inputs")
            outputs = {"prev_sample": prev}
            outputs.update({k: v for k, v in out.items() if isinstance(v, Traced)})
            outputs.update({f"next_state.{path}": v for path, v in _state_items(sched)})
            for k, v in outputs.items():
                if v.rec is not rec:
                    raise TraceError(f"{k} holds a value of another call's trace (state kept where the tracer "
                                     "does not look)")
            steps.append(_Trace(rec, outputs, noise.draws))
    return steps, scales


def _call_timesteps(sched) -> np.ndarray:
    """The timestep of every model call of the loop."""
    timesteps = np.asarray(sched.timesteps)
    return timesteps[:-1] if type(sched).__name__ in LAST_TIMESTEP_IS_TARGET else timesteps


def _as_output(rec, value) -> Traced:
    if not isinstance(value, Traced) or value.rec is not rec:
        raise TraceError(f"scale_model_input returned {type(value).__name__}, not a value computed from the sample")
    return value


# ---------------------------------------------------------------------------- merging the calls
def _signature(trace: _Trace, outputs: list[str]):
    """The trace's structure, constants and intermediates renamed by first appearance:
    (signature, the constants in canonical order, {trace name: canonical name})."""
    names, consts = {}, []
    fixed = set(trace.rec.inputs)

    def canon(name):
        if name in fixed:
            return name
        if name not in names:
            if name in trace.rec.consts:
                names[name] = f"k{len(consts)}"
                consts.append(name)
            else:
                names[name] = f"t{len(names) - len(consts)}"
        return names[name]

    nodes = []
    for n in trace.rec.nodes:
        attrs = tuple(sorted((k, v.SerializeToString() if hasattr(v, "SerializeToString") else v)
                             for k, v in n.attrs.items()))
        nodes.append((n.op, tuple(map(canon, n.inputs)), tuple(map(canon, n.outputs)), attrs))
    outs = tuple(canon(trace.outputs[o].name) if o in trace.outputs else None for o in outputs)
    kinds = tuple((trace.rec.consts[c].dtype.str, trace.rec.consts[c].shape) for c in consts)
    return (tuple(nodes), outs, kinds), consts, names


def _interface(traces: list[_Trace]):
    """Inputs {name: (shape, dtype)} and output names of a graph serving every call."""
    inputs = {n: (TRACE_SHAPE, np.dtype(np.float32)) for n in ("sample", "model_output")
              if any(n in t.rec.inputs for t in traces)}
    inputs["step_index"] = ((), np.dtype(np.int64))
    outputs = [o for o in traces[0].outputs if not o.startswith("next_state.") and all(o in t.outputs for t in traces)]
    noise, states = {}, {}
    for t in traces:
        seen = list(t.rec.inputs.items()) + [(f"state.{k[len('next_state.'):]}", v) for k, v in t.outputs.items()
                                             if k.startswith("next_state.")]
        for name, v in seen:
            group = noise if name.startswith("noise") else states if name.startswith("state.") else None
            if group is None:
                continue
            known = group.setdefault(name, (v.shape, v.dtype))
            if known != (v.shape, v.dtype):
                raise TraceError(f"{name} changes shape or dtype between calls: {known} and {(v.shape, v.dtype)}")
    inputs.update(sorted(noise.items(), key=lambda kv: (len(kv[0]), kv[0])))
    inputs.update(sorted(states.items()))
    return inputs, outputs + [f"next_{s}" for s in sorted(states)]


def _value_info(name, shape, dtype, sized=True):
    """``sized`` False: dimensions of their own (an output that is a placeholder at some calls)."""
    dims = list(AXIS_NAMES) if tuple(shape) == TRACE_SHAPE else list(shape)
    if not sized:  # named dimensions, not unknown ones: OpenVINO's CPU plugin needs an If output's rank
        dims = [f"{d}_or_0" if isinstance(d, str) else f"d{k}_or_0" for k, d in enumerate(dims)]
    return helper.make_tensor_value_info(name, ONNX_DTYPES[np.dtype(dtype)], dims)


def _handover(traces, plain_outputs, states) -> list[dict]:
    """Per call, where each state input of the next call comes from: an input of this call (the slot
    left as it was, or re-pointed at another input: a history shifted by one, the model output kept) or
    an output (a value this call computed, under the first output name it has)."""
    maps = []
    for t in traces:
        named = {}
        for o in plain_outputs:
            named.setdefault(t.outputs[o].name, o)
        source = {}
        for state in states:
            value = t.outputs.get("next_" + state)
            if value is None:
                source[state] = state
            elif value.name in t.rec.inputs:
                source[state] = value.name
            elif value.name in named:
                source[state] = named[value.name]
            else:
                named[value.name] = source[state] = "next_" + state
        maps.append(source)
    return maps


class _Merge:
    """The nodes computing ``outputs`` for every call of ``traces``: calls of one structure share a
    branch whose per-call constants are tables gathered at the step index; branches are chosen by
    an If chain. Internal names start with ``prefix``; ``rename`` maps the traces' input names
    (sample, step_index...) to the values that feed them."""

    def __init__(self, traces, outputs, n_calls, info, prefix="", rename=None, placeholders=None):
        self.traces, self.outputs, self.n_calls, self.info = traces, outputs, n_calls, info
        self.prefix, self.rename = prefix, dict(rename or {})
        # per call, the outputs that are a placeholder there (state the host hands over itself)
        self.placeholders = placeholders or [set() for _ in traces]
        groups: dict = {}
        for i, t in enumerate(traces):
            groups.setdefault(_signature(t, outputs)[0], []).append(i)
        # the branch serving most calls first: each level of the If chain costs a subgraph call per run
        self.members = sorted(groups.values(), key=len, reverse=True)

    def _in(self, name):
        return self.rename.get(name, name)

    def nodes(self, out_names):
        """(nodes, initializers) with the outputs named ``out_names``."""
        if len(self.members) == 1:
            return self._branch(0, out_names)
        p = self.prefix
        branch_of_call = np.zeros(self.n_calls, dtype=np.int64)
        for b, calls in enumerate(self.members):
            branch_of_call[calls] = b
        nodes, inits = self._if_chain(0, out_names)
        gather = helper.make_node("Gather", [f"{p}branch_of_call", self._in("step_index")], [f"{p}branch"], axis=0)
        return [gather, *nodes], [numpy_helper.from_array(branch_of_call, f"{p}branch_of_call"), *inits]

    def _branch(self, b, out_names):
        members, traces, p = self.members[b], self.traces, f"{self.prefix}b{b}_"
        first = traces[members[0]]
        _, consts, names = _signature(first, self.outputs)
        columns = [[traces[i].rec.consts[k] for k in _signature(traces[i], self.outputs)[1]] for i in members]

        same = {}  # constants (or tables) equal to an earlier one are that one

        def local(name):
            if name in first.rec.inputs:
                return self._in(name)
            return p + same.get(names[name], names[name])

        nodes, inits = [], []
        for k in range(len(consts)):
            values = [col[k] for col in columns]
            fixed = all(v.tobytes() == values[0].tobytes() for v in values)
            if fixed:
                array = values[0]
            else:
                row = {call: v for call, v in zip(members, values)}
                array = np.stack([row.get(call, values[0]) for call in range(self.n_calls)])
            key = (fixed, array.dtype.str, array.shape, array.tobytes())
            if key in same:
                same[f"k{k}"] = same[key]
                continue
            same[key] = f"k{k}"
            if fixed:
                inits.append(numpy_helper.from_array(array, f"{p}k{k}"))
            else:
                inits.append(numpy_helper.from_array(array, f"{p}k{k}_table"))
                nodes.append(helper.make_node("Gather", [f"{p}k{k}_table", self._in("step_index")], [f"{p}k{k}"],
                                              axis=0))
        # an output computed by a node of the branch is that node's output, named as the output: an Identity
        # would copy the tensor at every call
        produced = {x for n in first.rec.nodes for x in n.outputs}
        alias, copies = {}, []
        for out, name in zip(self.outputs, out_names):
            if out in self.placeholders[members[0]]:  # the same at every call of the branch: part of its signature
                shape, dtype = self.info[out][:2]
                copies.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(
                    np.zeros((1,) * len(shape), np.dtype(dtype)), name)))
                continue
            value = first.outputs.get(out)
            if value is not None and value.name in produced and value.name not in alias:
                alias[value.name] = name
                continue
            # a state slot this call leaves empty passes its input through; a value that is an input, or
            # already another output, is copied
            if value is None:
                source = self._in(f"state.{out[len('next_state.'):]}")
            else:
                source = alias.get(value.name) or local(value.name)
            copies.append(helper.make_node("Identity", [source], [name]))

        def named(x):
            return alias.get(x) or local(x)

        for n in first.rec.nodes:
            nodes.append(helper.make_node(n.op, [named(x) for x in n.inputs], [named(x) for x in n.outputs],
                                          **n.attrs))
        return nodes + copies, inits

    def _subgraph(self, tag, nodes, inits, names):
        outs = [_value_info(n, *self.info[o]) for n, o in zip(names, self.outputs)]
        return helper.make_graph(nodes, f"{self.prefix}{tag}", [], outs, inits)

    def _if_chain(self, b, out_names):
        p = self.prefix
        then_names = [f"{p}b{b}_out_{o}" for o in self.outputs]
        then = self._subgraph(f"branch{b}", *self._branch(b, then_names), then_names)
        rest = [f"{p}r{b}_out_{o}" for o in self.outputs]
        if b + 1 == len(self.members) - 1:
            other = self._subgraph(f"branch{b + 1}", *self._branch(b + 1, rest), rest)
        else:
            other = self._subgraph(f"rest{b + 1}", *self._if_chain(b + 1, rest), rest)
        nodes = [helper.make_node("Equal", [f"{p}branch", f"{p}is{b}_value"], [f"{p}is{b}"]),
                 helper.make_node("If", [f"{p}is{b}"], out_names, then_branch=then, else_branch=other)]
        return nodes, [numpy_helper.from_array(np.array(b, dtype=np.int64), f"{p}is{b}_value")]


def _output_info(traces, outputs, inputs):
    info = {}
    for o in outputs:
        value = next((t.outputs[o] for t in traces if o in t.outputs), None)
        info[o] = (value.shape, value.dtype) if value is not None else inputs[f"state.{o[len('next_state.'):]}"]
    return info


def _model(name, nodes, inits, inputs, outputs, info) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, [_value_info(k, *v) for k, v in inputs.items()],
                              [_value_info(o, *info[o]) for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edge_sched.export.step_graph")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def _scale_model(name, scales, n_calls) -> onnx.ModelProto:
    inputs, outputs = _interface(scales)
    info = _output_info(scales, outputs, inputs)
    return _model(name, *_Merge(scales, outputs, n_calls, info).nodes(outputs), inputs, outputs, info)


def _step_models(name, steps, scales, handover, layout) -> tuple[dict[str, onnx.ModelProto], list[str], list[dict]]:
    """The step graphs: {file: model}, per call the file it runs, and per call where the next call's state
    comes from (see :func:`_handover`). ``"indexed"``: one graph for every call; ``"per_call"``: call ``i``'s
    graph from trace ``i`` alone, with exactly the noise and state inputs it reads and the state outputs it
    computes; equal graphs are one file."""
    inputs, outputs = _interface(steps)
    states = [n for n in inputs if n.startswith("state.")]
    plain = [o for o in outputs if not o.startswith("next_state.")]
    if handover == "graph":
        maps = [{s: "next_" + s for s in states} for _ in steps]
    else:  # only the state some call computes is an output; at the other calls a placeholder
        maps = _handover(steps, plain, states)
        computed = {source for m in maps for source in m.values()}
        outputs = plain + [o for o in outputs if o.startswith("next_state.") and o in computed]
    # no scaling: the next call's model input is prev_sample itself, not a copy of it
    scaled = handover == "graph" or any(t.outputs["model_input"].name != "sample" for t in scales)
    # the next call's scaling (at the last call the last call's again, an output nobody needs)
    next_scales = [scales[min(i + 1, len(steps) - 1)] for i in range(len(steps))]
    if layout == "indexed":
        placeholders = [{o for o in outputs if o.startswith("next_state.") and m[o[len("next_"):]] != o}
                        for m in maps]
        return ({STEP_GRAPH: _step_model(name, steps, next_scales, inputs, outputs, placeholders, scaled)},
                [STEP_GRAPH] * len(steps), maps)
    files, by_bytes, graph_of_call, own_maps = {}, {}, [], []
    for i, t in enumerate(steps):
        # the state after call i is exactly what call i + 1 takes: the slots this call leaves in the scheduler
        own_map = {s: source for s, source in maps[i].items() if "next_" + s in t.outputs}
        expected = {k for k in steps[i + 1].rec.inputs if k.startswith("state.")} if i + 1 < len(steps) else None
        if expected is not None and set(own_map) != expected:
            raise TraceError(f"call {i + 1} reads state {sorted(expected)}, call {i} leaves {sorted(own_map)}")
        own_inputs = {k: v for k, v in inputs.items()
                      if k != "step_index" and (not k.startswith(("noise", "state.")) or k in t.rec.inputs)}
        own_outputs = plain + [o for o in outputs if o.startswith("next_state.") and o in own_map.values()]
        model = _step_model(name, [t], [next_scales[i]], own_inputs, own_outputs, [set()], scaled)
        key = model.SerializeToString(deterministic=True)
        if key not in by_bytes:
            by_bytes[key] = PER_CALL_GRAPH.format(len(files))
            files[by_bytes[key]] = model
        graph_of_call.append(by_bytes[key])
        own_maps.append(own_map)
    return files, graph_of_call, own_maps


def _step_model(name, steps, next_scales, inputs, outputs, placeholders, scaled) -> onnx.ModelProto:
    """The step, then (``scaled``) the next call's scale_model_input on its prev_sample, as one graph serving
    the calls of ``steps``; with more than one call their constants are gathered at ``step_index``."""
    info = _output_info(steps, outputs, inputs)
    for o in set().union(*placeholders):
        info[o] = (*info[o], False)
    nodes, inits = _Merge(steps, outputs, len(steps), info, placeholders=placeholders).nodes(outputs)
    if not scaled:
        return _model(name, nodes, inits, inputs, outputs, info)
    scale_info = _output_info(next_scales, ["model_input"], {})
    # the next call's scaling, its tables shifted by one call: gathered at step_index itself, no index arithmetic
    merge = _Merge(next_scales, ["model_input"], len(steps), scale_info, prefix="scale.",
                   rename={"sample": "prev_sample"})
    scale_nodes, scale_inits = merge.nodes(["model_input"])
    info["model_input"] = scale_info["model_input"]
    return _model(name, nodes + scale_nodes, inits + scale_inits, inputs, [outputs[0], "model_input", *outputs[1:]],
                  info)


# ---------------------------------------------------------------------------- the plan
def _plan(sched, schedule, options, timesteps, init_noise_sigma, steps, step_models, graph_of_call, handover,
          handovers, layout) -> dict:
    def io(values):
        return [{"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
                 "shape": [d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
                           for d in v.type.tensor_type.shape.dim]} for v in values]

    first = step_models[graph_of_call[0]].graph  # indexed: the one graph
    interfaces = {file: {"inputs": io(m.graph.input), "outputs": io(m.graph.output)} for file, m in step_models.items()}
    sigmas = getattr(sched, "sigmas", None)
    if layout == "indexed":
        graphs = {"step": STEP_GRAPH, "steps": [STEP_GRAPH], "scale_model_input": SCALE_GRAPH}
        interface = interfaces[STEP_GRAPH]
        step_call = "step(x, model_output, i, noise..., state)"
    else:
        graphs, interface = {"steps": list(step_models), "scale_model_input": SCALE_GRAPH}, {}
        step_call = "(the graph calls[i].graph)(x, model_output, calls[i].noise..., state)"
    plan = {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        "scheduler": {"class": type(sched).__name__, "config": _jsonable(dict(sched.config))},
        "set_timesteps": _jsonable(schedule),
        "step_options": _jsonable(options),
        "num_inference_steps": int(sched.num_inference_steps) if sched.num_inference_steps is not None else None,
        "num_model_calls": len(timesteps),
        "timesteps": timesteps.tolist(),
        "timestep_dtype": timesteps.dtype.name,
        "sigmas": np.asarray(sigmas).tolist() if isinstance(sigmas, np.ndarray) and sigmas.ndim == 1 else None,
        "init_noise_sigma": init_noise_sigma,
        "layout": layout,
        "graphs": graphs,
        **interface,
        "step_graphs": interfaces,
        "handover": handover,
        "state": [{"input": v.name, **({"output": "next_" + v.name} if handover == "graph" else {}),
                   "initial": "zeros"} for v in first.input if v.name.startswith("state.")],
        "next_model_input": "model_input" if any(v.name == "model_input" for v in first.output) else "prev_sample",
        "calls": [{"timestep": t.item(), "graph": file,
                   "noise": [_draw_info(j, kind, interval) for j, (kind, interval) in enumerate(s.noise)],
                   "state": handed}
                  for t, file, s, handed in zip(timesteps, graph_of_call, steps, handovers)],
        "usage": ("x = initial noise * init_noise_sigma; model_input = scale_model_input(x, 0); state = zeros "
                  "(plan.state); for each call i: model_output = model(model_input, timesteps[i]); draw "
                  f"calls[i].noise in order; out = {step_call}; x = out.prev_sample; model_input = "
                  "out[next_model_input]; state = {name: (the step's inputs and outputs)[source] for name, "
                  "source in calls[i].state}"),
    }
    if layout == "per_call":
        plan["buffers"] = plan_buffers(plan)
    return plan


def _draw_info(j, kind, interval) -> dict:
    info = {"input": "noise" if j == 0 else f"noise_{j}", "kind": kind}
    if kind == "brownian":  # (W(b) - W(a)) / sqrt(|b - a|) of the scheduler's Brownian tree
        info["interval"] = interval
    return info


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value).tolist()
    return value


__all__ = ["HANDOVERS", "LAYOUTS", "PLANLESS", "StepExportError", "StepGraphs", "build_step_graphs", "export_step",
           "split_settings", "step_option_names"]
