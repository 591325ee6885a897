"""Speed of the exported scheduler graphs (issue 19): the step graph against the numpy step, and the one-call
loop graph against our Python loop on the same engine and graphs.

1. **Step**: per scheduler, a whole loop of ``--steps`` model calls at 1x4x64x64: our numpy scheduler
   (``scale_model_input`` + ``step``) against ``step.onnx`` of ``export.export_step`` (the step and the next
   call's scaling in one run) in ONNX Runtime's CPU provider, the state fed back call by call. Noise is drawn
   before the loop and handed to both (the numpy step through a generator returning the drawn arrays), so
   neither side pays for drawing it; the graph's final sample is checked bit for bit against numpy's.
   Graph variants: one intra-op thread (the headline; numpy is single-threaded), all cores, IO binding
   (each output written into a fresh array, no copy), graph optimizations off, and ``layout="per_call"``'s graphs
   (one thread; the app runs ``calls[i].graph`` at call i, one session per file made before timing; no step
   index, no gathered tables, no If), and those graphs in plan.json's static ``buffers`` (every call's inputs
   and outputs bound once, before timing: one ``run_with_iobinding`` per call). Each round times numpy and every
   variant (the fastest of three loops each), in a rotating order; the ratio is graph / numpy per round,
   reported as the median over the rounds with the interquartile range. The floor of one ``session.run`` (a graph holding one Identity of a
   1x4x64x64 tensor) is measured in the same rounds.
2. **Loop**: a pipeline's ``denoise/model.onnx`` (``export.export_loop``) called once per image against our
   Python pipeline's loop (``output_type="latent"``, the same prompt embeddings, the UNet graph of the same
   folder) on the same engine settings; both are checked to give the same latents bit for bit, then timed
   image by image, alternating, after a warm-up. ``--loop tiny`` (the tests' random-weight pipeline, built once
   into benchmarks/.cache/loop_graph/ by a child process with torch) or ``--loop sd15`` (the performance
   suite's SD1.5-architecture ONNX folder, benchmarks/.cache/sd15/onnx, which must exist) or ``--loop none``.
   Loop rows of an earlier run (the results JSON next to ``--out``) whose source was not measured now are carried
   over, each labelled with the date and machine it was measured on.

This process never imports torch (a child builds the tiny pipeline); timing runs with ``nice`` from the shell.
Writes benchmarks/results/loop_graph_speed.{md,json}; ``python benchmarks/report.py`` then carries the markdown
into benchmarks/RESULTS.md.

    python benchmarks/loop_graph_speed.py [--steps 20] [--rounds 15] [--only NAME ...] [--quick]
        [--loop tiny|sd15|none] [--loop-steps 10] [--loop-size 128x128] [--loop-images 5]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from edge_sched.schedulers import scheduler_class  # noqa: E402
from edge_sched.schedulers.configuration import init_parameters  # noqa: E402
from export.buffer_plan import input_values  # noqa: E402
from export.graph_splice import all_nodes  # noqa: E402
from export.step_graph import build_step_graphs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache" / "loop_graph"
SD15_ONNX = ROOT / "benchmarks" / ".cache" / "sd15" / "onnx"
SHAPE = (1, 4, 64, 64)
SD = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
# label: (scheduler class, config beyond SD's betas, step options); the families of tests/export/test_step_graph.py
FAMILIES = {
    "Euler": ("EulerDiscreteScheduler", {}, {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}, {}),
    "Heun": ("HeunDiscreteScheduler", {}, {}),
    "LMS": ("LMSDiscreteScheduler", {}, {}),
    "KDPM2 a": ("KDPM2AncestralDiscreteScheduler", {}, {}),
    "DDIM": ("DDIMScheduler", {}, {}),
    "DDIM eta 0.5": ("DDIMScheduler", {}, {"eta": 0.5}),
    "DDPM": ("DDPMScheduler", {}, {}),
    "PNDM": ("PNDMScheduler", {"skip_prk_steps": True}, {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, {}),
    "DPM++ 2M SDE Karras": ("DPMSolverMultistepScheduler",
                            {"use_karras_sigmas": True, "algorithm_type": "sde-dpmsolver++"}, {}),
    "DPM singlestep 3": ("DPMSolverSinglestepScheduler", {"solver_order": 3}, {}),
    "UniPC": ("UniPCMultistepScheduler", {}, {}),
    "DEIS": ("DEISMultistepScheduler", {}, {}),
    "SA-Solver": ("SASolverScheduler", {}, {}),
    "LCM": ("LCMScheduler", {}, {}),
    "TCD": ("TCDScheduler", {}, {"eta": 0.3}),
    "EDM Euler": ("EDMEulerScheduler", {}, {}),
    "IPNDM": ("IPNDMScheduler", {}, {}),
    "Flow match Euler": ("FlowMatchEulerDiscreteScheduler", {"shift": 3.0}, {}),
}
QUICK = ["Euler", "Euler a", "DPM++ 2M Karras", "UniPC"]
LOOPS_PER_ROUND = 3
PER_CALL = "ort 1 thread, per-call graphs"
BUFFERS = "ort 1 thread, per-call graphs, buffer plan"
VARIANTS = ("ort 1 thread", "ort all cores", "ort 1 thread, IO binding", "ort 1 thread, no graph optimization",
            PER_CALL, BUFFERS)


def _config(cls, extra: dict) -> dict:
    params = set(init_parameters(cls))
    return {**{k: v for k, v in SD.items() if k in params}, **extra}


class PreDrawn:
    """A noise source handing out arrays drawn before the loop, in order (the step's draws cost nothing)."""

    device = "cpu"

    def __init__(self, rows):
        self.rows, self.next = rows, 0

    def _take(self, shape, dtype):
        row = self.rows[self.next]
        self.next += 1
        assert row.shape == tuple(shape), (row.shape, shape)
        return row.astype(dtype, copy=False)

    def randn(self, shape, dtype=np.float32):
        return self._take(shape, dtype)

    rand = randn

    def initial_seed(self) -> int:
        return 0

    def copy(self):
        return PreDrawn(self.rows[self.next:])


_SHARED_ARENA = []


def _shared_arena_option(opts) -> None:
    """Sessions allocating from one process-wide arena (registered once): the per-call graphs' buffers are then the
    same few, warm in the cache, instead of one arena per session each touched once a loop (measured on LMS:
    76 -> 61 us a call)."""
    if not _SHARED_ARENA:
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
        _SHARED_ARENA.append(info)
    opts.add_session_config_entry("session.use_env_allocators", "1")


def _session(model, *, threads=1, optimize=True, shared_arena=False):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    if shared_arena:
        _shared_arena_option(opts)
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


class StepCase:
    """One scheduler's numpy loop and graph loops on the same inputs and noise."""

    def __init__(self, label: str, steps: int):
        name, extra, self.options = FAMILIES[label]
        self.cls = scheduler_class(name)
        self.config = _config(self.cls, extra)
        self.steps = steps
        graphs = build_step_graphs(name, config=self.config, num_inference_steps=steps, step_options=self.options)
        self.plan, self.model = graphs.plan, graphs.step
        per_call = build_step_graphs(name, config=self.config, num_inference_steps=steps, step_options=self.options,
                                     layout="per_call")
        self.per_call_plan = per_call.plan
        self.calls = self.plan["num_model_calls"]
        rng = np.random.default_rng(0)
        self.x0 = rng.standard_normal(SHAPE).astype(np.float32)
        distinct = [(rng.standard_normal(SHAPE) * 0.5).astype(np.float32) for _ in range(4)]
        self.outputs = [distinct[i % 4] for i in range(self.calls)]
        self.noise = [[rng.standard_normal(SHAPE).astype(np.float32) for _ in c["noise"]] for c in self.plan["calls"]]
        if any(d["kind"] == "brownian" for c in self.plan["calls"] for d in c["noise"]):
            raise ValueError(f"{label}: Brownian-tree noise is drawn by the scheduler itself, not timed here")
        self.sched = self.cls.from_config(dict(self.config))
        self.takes_generator = "generator" in inspect.signature(self.sched.step).parameters
        self.sessions = {
            "ort 1 thread": _session(self.model),
            "ort all cores": _session(self.model, threads=0),
            "ort 1 thread, no graph optimization": _session(self.model, optimize=False),
        }
        self.sessions["ort 1 thread, IO binding"] = self.sessions["ort 1 thread"]
        per_call_sessions = {file: _session(model, shared_arena=True) for file, model in per_call.steps.items()}
        # per call, the session.run of the graph it runs and the inputs it is fed besides sample, model output,
        # its noise and its state: the step index and zeros for the noise it does not draw (indexed), none (per call)
        _, _, noise = self._feeds(self.plan)
        self.runs = {variant: ([self.sessions[variant].run] * self.calls,
                               [{"step_index": np.array(i, np.int64), **noise} for i in range(self.calls)])
                     for variant in self.sessions}
        self.runs[PER_CALL] = ([per_call_sessions[c["graph"]].run for c in self.per_call_plan["calls"]],
                               [{} for _ in range(self.calls)])
        self.bound = self._bind_buffers(per_call_sessions)
        self.output_names = [o.name for o in self.model.graph.output]
        self.handover, self.per_call_handover = _handover(self.plan), _handover(self.per_call_plan)
        self.nodes = sum(1 for _ in all_nodes(self.model.graph))
        self.ifs = sum(1 for n in all_nodes(self.model.graph) if n.op_type == "If")
        self.per_call_files = len(per_call.steps)
        self.per_call_nodes = [sum(1 for _ in all_nodes(per_call.steps[c["graph"]].graph))
                               for c in self.per_call_plan["calls"]]

    # -- numpy
    def numpy_loop(self) -> tuple[float, np.ndarray]:
        sched = self.sched
        sched.set_timesteps(self.steps)
        gen = PreDrawn([row for rows in self.noise for row in rows])
        kwargs = dict(self.options, **({"generator": gen} if self.takes_generator else {}))
        scale = getattr(sched, "scale_model_input", None)  # flow matching has none
        x = self.x0 * np.float32(sched.init_noise_sigma)
        timesteps = list(sched.timesteps)[: self.calls]
        start = time.perf_counter()
        for t, out in zip(timesteps, self.outputs):
            if scale is not None:
                scale(x, t)
            x = sched.step(out, t, x, **kwargs).prev_sample
        return (time.perf_counter() - start) / self.calls, x

    # -- graph
    def _feeds(self, plan):
        """The first sample, call 0's state (per call: none) and zeros for the indexed graph's noise inputs."""
        x = self.x0 * np.float32(plan["init_noise_sigma"])
        zeros = np.zeros(SHAPE, np.float32)
        state = {s["input"]: zeros for s in plan["state"]}
        noise = {i["name"]: zeros for i in plan.get("inputs", ()) if i["name"].startswith("noise")}
        return x, state, noise

    def _bind_buffers(self, sessions):
        """plan.json's ``buffers`` (layout "per_call"): one array per planned buffer, every call's inputs and
        outputs bound once, here, for the whole benchmark. The models' outputs and the noise are bound where they
        lie (this case's arrays; in an app, the planned buffers the model and the generator wrote), also where a
        later call reads them as state (PNDM's history of model outputs)."""
        plan, buffers = self.per_call_plan, self.per_call_plan["buffers"]
        arrays = [np.empty(SHAPE, np.float32) for _ in buffers["arrays"]]
        given = {}  # value (call, input name) -> the array holding it
        for i, call in enumerate(plan["calls"]):
            given[(i, "model_output")] = self.outputs[i]
            given.update({(i, d["input"]): row for d, row in zip(call["noise"], self.noise[i])})
        runs, bindings = [], []
        for call, where, reads in zip(plan["calls"], buffers["calls"], input_values(plan)):
            session = sessions[call["graph"]]
            io = session.io_binding()
            for name, b in where["inputs"].items():
                value = reads["step"][name]
                io.bind_cpu_input(name, given[value] if value in given else arrays[b])
            for name, b in where["outputs"].items():
                io.bind_output(name, "cpu", 0, np.float32, SHAPE, arrays[b].ctypes.data)
            runs.append(session.run_with_iobinding)
            bindings.append(io)
        return arrays, list(zip(runs, bindings))  # the arrays stay referenced as long as the bindings

    def graph_loop(self, variant: str) -> tuple[float, np.ndarray]:
        if variant == BUFFERS:
            arrays, calls = self.bound
            buffers = self.per_call_plan["buffers"]
            x, _, _ = self._feeds(self.per_call_plan)
            np.copyto(arrays[buffers["sample"]], x)
            start = time.perf_counter()
            for run, io in calls:
                run(io)
            return (time.perf_counter() - start) / self.calls, arrays[buffers["final_sample"]].copy()
        if variant.endswith("IO binding"):
            return self._bound_loop(self.sessions[variant])
        plan, handover = (self.per_call_plan, self.per_call_handover) if variant == PER_CALL else (self.plan, self.handover)
        runs, fixed = self.runs[variant]
        x, state, _ = self._feeds(plan)
        start = time.perf_counter()
        for i in range(self.calls):
            feed = {"sample": x, "model_output": self.outputs[i], **fixed[i], **state}
            for d, row in zip(plan["calls"][i]["noise"], self.noise[i]):
                feed[d["input"]] = row
            res = runs[i](None, feed)
            x = res[0]
            state = {k: feed[src] if j is None else res[j] for k, j, src in handover[i]}
        return (time.perf_counter() - start) / self.calls, x

    def _bound_loop(self, session):
        """IO binding: inputs bound as they are, each output written into a fresh array (np.empty, no copy: the plan
        may hand any output or input on for several calls, so no buffer is reused), or allocated by ONNX Runtime
        where the output is a placeholder at some calls (its shape changes)."""
        plan, names = self.plan, self.output_names
        x, state, noise = self._feeds(plan)
        shaped = [o["name"] for o in plan["outputs"] if o["shape"] == ["batch", "channels", "height", "width"]]
        # get_outputs() lists the bound outputs in the order they were bound: the shaped ones, then these
        unsized = [(len(shaped) + k, n) for k, n in enumerate(n for n in names if n not in shaped)]
        index = [np.array(i, np.int64) for i in range(self.calls)]
        io = session.io_binding()
        start = time.perf_counter()
        for i in range(self.calls):
            feed = {"sample": x, "model_output": self.outputs[i], "step_index": index[i], **state, **noise}
            for d, row in zip(plan["calls"][i]["noise"], self.noise[i]):
                feed[d["input"]] = row
            for k, v in feed.items():
                io.bind_cpu_input(k, v)
            res = {}
            for n in shaped:
                res[n] = np.empty(SHAPE, np.float32)
                io.bind_output(n, "cpu", 0, np.float32, SHAPE, res[n].ctypes.data)
            for _, n in unsized:
                io.bind_output(n, "cpu")
            session.run_with_iobinding(io)
            if unsized:
                values = io.get_outputs()
                res.update({n: values[j].numpy() for j, n in unsized})
            x = res["prev_sample"]
            state = {k: res[src] if src in res else feed[src] for k, src in plan["calls"][i]["state"].items()}
        return (time.perf_counter() - start) / self.calls, x


def _handover(plan) -> list:
    """plan.json's hand-over, per call: (state input, index of the output of the call's graph holding it or None,
    the input holding it)."""
    outputs = {file: {o["name"]: j for j, o in enumerate(io["outputs"])} for file, io in plan["step_graphs"].items()}
    return [[(k, outputs[c["graph"]].get(src), src) for k, src in c["state"].items()] for c in plan["calls"]]


def _run_floor():
    """One session.run of a graph holding one Identity of a 1x4x64x64 tensor: ONNX Runtime's fixed cost per call."""
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "floor",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(SHAPE))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session, x = _session(model), np.zeros(SHAPE, np.float32)

    def once():
        start = time.perf_counter()
        for _ in range(20):
            session.run(None, {"x": x})
        return (time.perf_counter() - start) / 20

    return once


def _spread(values) -> tuple[float, float, float]:
    q = np.percentile(values, [25, 50, 75])
    return float(q[1]), float(q[0]), float(q[2])


def step_benchmark(labels, steps: int, rounds: int, say) -> dict:
    cases = {}
    for label in labels:
        cases[label] = StepCase(label, steps)
        _, want = cases[label].numpy_loop()
        for variant in VARIANTS:
            _, got = cases[label].graph_loop(variant)  # warm-up, and the graph must be the numpy step
            if not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
                raise AssertionError(f"{label}: the step graph ({variant}) differs from the numpy step")
    floor = _run_floor()
    times = {label: {k: [] for k in ("numpy", *VARIANTS)} for label in labels}
    floors = []
    for r in range(rounds):
        floors.append(floor())
        for label, case in cases.items():
            order = ["numpy", *VARIANTS]
            order = order[r % len(order):] + order[: r % len(order)]
            for who in order:  # the least disturbed of a few loops: the machine is shared
                run = case.numpy_loop if who == "numpy" else (lambda w=who: case.graph_loop(w))
                times[label][who].append(min(run()[0] for _ in range(LOOPS_PER_ROUND)))
        say(f"  round {r + 1}/{rounds}")
    rows = {}
    for label, t in times.items():
        ratios = {v: _spread([g / n for g, n in zip(t[v], t["numpy"])]) for v in VARIANTS}
        rows[label] = {"scheduler": cases[label].cls.__name__, "calls": cases[label].calls,
                       "nodes": cases[label].nodes, "ifs": cases[label].ifs,
                       "per_call_files": cases[label].per_call_files, "per_call_nodes": cases[label].per_call_nodes,
                       "buffers": len(cases[label].per_call_plan["buffers"]["arrays"]),
                       "numpy_us": statistics.median(t["numpy"]) * 1e6,
                       "graph_us": {v: statistics.median(t[v]) * 1e6 for v in VARIANTS}, "ratio": ratios}
        say(f"  {label}: numpy {rows[label]['numpy_us']:.0f} us, graph {rows[label]['graph_us'][VARIANTS[0]]:.0f} us, "
            f"{ratios[VARIANTS[0]][0]:.2f}x; per-call graphs {rows[label]['graph_us'][PER_CALL]:.0f} us, "
            f"{ratios[PER_CALL][0]:.2f}x; buffer plan {rows[label]['graph_us'][BUFFERS]:.0f} us, "
            f"{ratios[BUFFERS][0]:.2f}x")
    return {"rows": rows, "run_floor_us": statistics.median(floors) * 1e6, "steps": steps, "rounds": rounds}


# ---------------------------------------------------------------------------- the loop
def _tiny_source(say) -> Path:
    folder = CACHE / "tiny-onnx"
    if not folder.exists():
        say(f"building the tiny random-weight pipeline into {folder} (a child process with torch)")
        code = ("import sys, shutil; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import export; "
                "from tests.export.tiny import build_tiny_sd; out = Path(sys.argv[2]); "
                "src = build_tiny_sd(out.with_name('tiny-source')); "
                "export.export_pipeline(src, out, format='onnx', progress=None); shutil.rmtree(src)")
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-c", code, str(ROOT), str(folder)], check=True)
    return folder


def loop_benchmark(source: Path, *, steps: int, size, scheduler: str, images: int, threads, say) -> dict:
    import export
    from edge_sched.denoise_graph import DenoiseLoop
    from edge_sched.pipelines import DiffusionPipeline

    out = CACHE / f"loop-{source.parent.name}-{source.name}-{scheduler.replace(' ', '_')}-{steps}-{size[0]}x{size[1]}"
    start = time.perf_counter()
    export.export_loop(source, out, steps=steps, size=size, scheduler=scheduler, overwrite=True)
    say(f"  export-loop: {time.perf_counter() - start:.1f} s")
    engine = {} if threads is None else {"num_threads": threads}
    pipe = DiffusionPipeline.from_pretrained(out, backend="onnxruntime", **engine)
    pipe.set_progress_bar_config(disable=True)
    loop = DenoiseLoop(out, **({} if threads is None else {"intra_op_threads": threads}))
    positive, negative = pipe.encode_prompt(["a photo of a cat"], do_classifier_free_guidance=True)
    guidance = 7.5
    call = dict(prompt_embeds=positive, negative_prompt_embeds=negative, height=size[0], width=size[1],
                num_inference_steps=steps, guidance_scale=guidance, output_type="latent")

    def python_image(seed):
        begin = time.perf_counter()
        latents = pipe(**call, generator=seed).images
        return time.perf_counter() - begin, np.asarray(latents)

    feeds = {"prompt_embeds": np.concatenate([negative, positive]), "guidance_scale": np.array(guidance, np.float32)}

    def graph_image(seed):
        begin = time.perf_counter()
        latents = loop(**feeds, **loop.draw_noise(seed))  # the initial latents drawn as the pipeline draws them
        return time.perf_counter() - begin, latents

    _, a = python_image(1)
    _, b = graph_image(1)
    if not np.array_equal(a, b):
        raise AssertionError(f"the loop graph's latents differ from the Python loop's (max {np.abs(a - b).max():.3g})")
    times = {"python": [], "graph": []}
    for i in range(images):
        for who in (("python", "graph") if i % 2 == 0 else ("graph", "python")):
            times[who].append((python_image if who == "python" else graph_image)(2 + i)[0])
        say(f"  image {i + 1}/{images}: python {times['python'][-1]:.3f} s, graph {times['graph'][-1]:.3f} s")
    ratios = [g / p for g, p in zip(times["graph"], times["python"])]
    return {"source": str(source.relative_to(ROOT) if source.is_relative_to(ROOT) else source), "steps": steps,
            "size": list(size), "scheduler": scheduler, "images": images, "threads": threads or "all cores",
            "python_s": statistics.median(times["python"]), "graph_s": statistics.median(times["graph"]),
            "ratio": _spread(ratios), "rounds_python_s": times["python"], "rounds_graph_s": times["graph"]}


# ---------------------------------------------------------------------------- the report
def markdown(step: dict | None, loops: list[dict]) -> str:
    lines = []
    if step:
        v0 = VARIANTS[0]
        lines += [f"Step graph (`step.onnx`) against the numpy step, 1x4x64x64 float32, {step['steps']} steps, "
                  f"ONNX Runtime {ort.__version__} CPU, numpy {np.__version__}; per step, median of {step['rounds']} "
                  f"interleaved rounds (each the fastest of {LOOPS_PER_ROUND} loops); ratio = graph / numpy per round, median [interquartile range]; noise drawn "
                  "before the loop for both; the graph's state handed over as plan.json's `calls[i].state` says "
                  "(arrays re-pointed, not copied); every graph's final sample equal to numpy's bit for bit. "
                  f"One `session.run` of a one-Identity graph: {step['run_floor_us']:.1f} us. Per-call graphs: "
                  "`export_step(..., layout=\"per_call\")`, call i running its own graph `calls[i].graph` (no step "
                  "index, no gathered tables, no If; one session per file, made before timing, all allocating from one shared arena), timed in the same "
                  "rounds; its nodes column gives the files and the fewest-most nodes of a call's graph. Buffer plan: "
                  "the same per-call graphs run as plan.json's `buffers` lay out the loop's arrays, every call's "
                  "inputs and outputs bound once before timing (ONNX Runtime IO binding; the model's output and the "
                  "noise bound where they lie), so the timed loop is one `run_with_iobinding` per call and nothing "
                  "is allocated, converted or copied.", "",
                  "| scheduler | calls | nodes (If) | numpy us | graph us, 1 thread | ratio, 1 thread | "
                  "ratio, all cores | ratio, IO binding | ratio, no graph optimization | per-call files, nodes | "
                  "per-call graph us, 1 thread | ratio, per-call, 1 thread | buffers | buffer plan us, 1 thread | "
                  "ratio, buffer plan, 1 thread |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for label, r in step["rows"].items():
            cells = [f"{r['ratio'][v][0]:.2f}x [{r['ratio'][v][1]:.2f}-{r['ratio'][v][2]:.2f}]" for v in VARIANTS]
            nodes = r.get("per_call_nodes") or [0]
            lines.append(f"| {label} | {r['calls']} | {r['nodes']} ({r['ifs']}) | {r['numpy_us']:.0f} | "
                         f"{r['graph_us'][v0]:.0f} | " + " | ".join(cells[:-2]) + f" | {r.get('per_call_files')}, "
                         f"{min(nodes)}-{max(nodes)} | {r['graph_us'][PER_CALL]:.0f} | {cells[-2]} | "
                         f"{r['buffers']} | {r['graph_us'][BUFFERS]:.0f} | {cells[-1]} |")
        for v, what in ((v0, "1 thread"), (PER_CALL, "per-call graphs, 1 thread"),
                        (BUFFERS, "per-call graphs in the buffer plan, 1 thread")):
            med = statistics.median(r["ratio"][v][0] for r in step["rows"].values())
            worst = max(step["rows"].items(), key=lambda kv: kv[1]["ratio"][v][0])
            best = min(step["rows"].items(), key=lambda kv: kv[1]["ratio"][v][0])
            within = sum(r["ratio"][v][0] <= 1.0 for r in step["rows"].values())
            lines += ["", f"{what}: median ratio {med:.2f}x over {len(step['rows'])} schedulers, {within} at most "
                          f"1.0x; slowest {worst[0]} {worst[1]['ratio'][v][0]:.2f}x, fastest {best[0]} "
                          f"{best[1]['ratio'][v][0]:.2f}x."]
    for r in loops:
        lo, hi = r["ratio"][1], r["ratio"][2]
        lines += ["", f"Loop graph (`denoise/model.onnx`, one call per image) against our Python loop (the pipeline "
                      f"with `output_type=\"latent\"`), {r['source']}: {r['scheduler']}, {r['steps']} steps, "
                      f"{r['size'][0]}x{r['size'][1]}, guidance 7.5 (UNet batch 2), ONNX Runtime CPU, "
                      f"{r['threads']}; same latents bit for bit; {r['images']} images each, alternating, after a "
                      "warm-up.", "",
                  "| runner | steady image s (median) | every image s |", "|---|---|---|",
                  f"| Python loop (pipeline) | {r['python_s']:.4f} | "
                  f"{', '.join(f'{t:.4f}' for t in r['rounds_python_s'])} |",
                  f"| loop graph | {r['graph_s']:.4f} | {', '.join(f'{t:.4f}' for t in r['rounds_graph_s'])} |",
                  "", f"Loop graph / Python loop: {r['ratio'][0]:.3f}x (per-image ratios, interquartile range "
                      f"{lo:.3f}-{hi:.3f})."
                  + (f" Carried over from an earlier run: measured {r['measured']}." if r.get("carried_over") else "")]
    return "\n".join(lines)


def _earlier_loops(out: Path, measured: set) -> list[dict]:
    """The loop rows of the results next to ``out`` (its JSON) whose source was not measured now, marked as carried
    over and labelled with the run they come from; rows written before the label existed take the date and machine
    of that markdown's first line (the run that wrote them)."""
    path = out.with_suffix(".json")
    if not path.is_file():
        return []
    rows = json.loads(path.read_text(encoding="utf-8")).get("loops") or []
    header = out.read_text(encoding="utf-8").split("\n", 1)[0] if out.is_file() else ""
    found = re.match(r"Run (.+? UTC) on (.+?), (\d+) cores", header)
    earlier = f"{found[1]} on {found[2]}, {found[3]} cores" if found else "in an earlier run (date and machine unknown)"
    return [{**r, "measured": r.get("measured", earlier), "carried_over": True} for r in rows
            if r["source"] not in measured]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"scheduler labels: {', '.join(FAMILIES)}")
    parser.add_argument("--quick", action="store_true", help=f"{', '.join(QUICK)}, 3 rounds")
    parser.add_argument("--no-step", action="store_true", help="skip the step benchmark")
    parser.add_argument("--loop", choices=("tiny", "sd15", "none"), default="tiny")
    parser.add_argument("--loop-steps", type=int, default=10)
    parser.add_argument("--loop-size", default="128x128", help="image size HxW")
    parser.add_argument("--loop-scheduler", default="DPM++ 2M Karras")
    parser.add_argument("--loop-images", type=int, default=5)
    parser.add_argument("--loop-threads", type=int, default=None, help="engine intra-op threads (default: all cores)")
    parser.add_argument("--out", type=Path, default=RESULTS / "loop_graph_speed.md")
    args = parser.parse_args(argv)
    labels = args.only or (QUICK if args.quick else list(FAMILIES))
    unknown = [n for n in labels if n not in FAMILIES]
    if unknown:
        parser.error(f"unknown scheduler {', '.join(map(repr, unknown))}; choose from {', '.join(FAMILIES)}")
    rounds = 3 if args.quick and args.rounds == 15 else args.rounds

    def say(msg):
        print(msg, file=sys.stderr, flush=True)

    load = os.getloadavg()
    step = None
    if not args.no_step:
        say(f"step graphs: {len(labels)} schedulers, {args.steps} steps, {rounds} rounds")
        step = step_benchmark(labels, args.steps, rounds, say)
    loops = []
    if args.loop != "none":
        source = _tiny_source(say) if args.loop == "tiny" else SD15_ONNX
        if not (source / "unet" / "model.onnx").is_file():
            parser.error(f"{source}: no ONNX export (build it with python benchmarks/sd15_random.py onnx)")
        height, width = (int(v) for v in args.loop_size.lower().split("x"))
        say(f"loop graph: {source}, {args.loop_scheduler}, {args.loop_steps} steps, {height}x{width}")
        loops.append(loop_benchmark(source, steps=args.loop_steps, size=(height, width), scheduler=args.loop_scheduler,
                                    images=args.loop_images, threads=args.loop_threads, say=say))
    end = os.getloadavg()
    run = (f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on {platform.processor() or platform.machine()}, "
           f"{os.cpu_count()} cores")
    for r in loops:
        r["measured"] = run
    loops += _earlier_loops(args.out, {r["source"] for r in loops})
    header = (f"Run {run} (shared with other work: load average {load[0]:.2f} at the start, "
              f"{end[0]:.2f} at the end).")
    text = markdown(step, loops)
    print(header + "\n\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(header + "\n\n" + text + "\n", encoding="utf-8")
    (args.out.with_suffix(".json")).write_text(json.dumps({"step": step, "loops": loops}, indent=1) + "\n",
                                               encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
