"""Step graphs (export/step_graph.py): whole loops three ways, diffusers (torch), our numpy
scheduler and the exported step graph in ONNX Runtime (and OpenVINO, f32), with the parity
harness' model, starting sample and seed, and the same noise.

The graph is held to diffusers at the parity bound (RTOL relative to max(1, max|reference|), every
call's outputs), and, in ONNX Runtime, to our numpy step bit for bit (both do the same IEEE float32
operations in the same order). OpenVINO turns a / b into a * (1 / b) (not correctly rounded), so
there only the parity bound holds; its distance from numpy is reported. The summary at the end of
the module lists, per case, both distances and the graph's size.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

import diffusers  # noqa: E402
import torch  # noqa: E402

from edge_sched.random import TorchGenerator  # noqa: E402
from edge_sched.schedulers import scheduler_class  # noqa: E402
from edge_sched.schedulers.resolve import UnknownSchedulerError  # noqa: E402
from export.graph_splice import all_nodes  # noqa: E402
from export.numpy_trace import Recorder, TraceError, tracing  # noqa: E402
from export.step_graph import PLANLESS, StepExportError, build_step_graphs, export_step  # noqa: E402
from tests.parity.harness import RTOL, initial_sample, model_fn  # noqa: E402

SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
KARRAS = dict(SD, use_karras_sigmas=True)

# id: (scheduler, config, schedule, step options)
CASES = {
    "euler": ("EulerDiscreteScheduler", SD, {"num_inference_steps": 10}, {}),
    "euler_custom_sigmas": ("EulerDiscreteScheduler", SD, {"sigmas": [14.6, 7.0, 3.0, 1.5, 0.7, 0.3, 0.1, 0.0]}, {}),
    "euler_custom_timesteps": ("EulerDiscreteScheduler", SD, {"timesteps": [999, 800, 600, 420, 250, 120, 30]}, {}),
    "euler_v_churn": ("EulerDiscreteScheduler", dict(KARRAS, prediction_type="v_prediction"),
                      {"num_inference_steps": 8}, {"s_churn": 1.0, "s_tmin": 0.5, "s_tmax": 10.0}),
    "euler_exponential_sigmas": ("EulerDiscreteScheduler", dict(SD, use_exponential_sigmas=True),
                                 {"num_inference_steps": 10}, {}),
    "euler_ancestral": ("EulerAncestralDiscreteScheduler", SD, {"num_inference_steps": 10}, {}),
    "ddim_eta": ("DDIMScheduler", SD, {"num_inference_steps": 10}, {"eta": 0.6}),  # clip_sample on (default)
    "ddim_thresholding": ("DDIMScheduler", dict(SD, thresholding=True, sample_max_value=1.5),
                          {"num_inference_steps": 8}, {"eta": 1.0}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", KARRAS, {"num_inference_steps": 12}, {}),
    "dpmpp_2m_sde_karras": ("DPMSolverMultistepScheduler", dict(KARRAS, algorithm_type="sde-dpmsolver++"),
                            {"num_inference_steps": 12}, {}),
    "dpmpp_sde_karras": ("DPMSolverSDEScheduler", dict(KARRAS, noise_sampler_seed=3), {"num_inference_steps": 6}, {}),
    "dpm_sde_multistep": ("DPMSolverMultistepScheduler",
                          dict(SD, algorithm_type="sde-dpmsolver", final_sigmas_type="sigma_min"),
                          {"num_inference_steps": 10}, {}),
    "dpmpp_2m_beta_sigmas": ("DPMSolverMultistepScheduler", dict(SD, use_beta_sigmas=True), {"num_inference_steps": 10},
                             {}),
    "dpmpp_2m_thresholding": ("DPMSolverMultistepScheduler", dict(SD, thresholding=True, prediction_type="sample",
                                                                 algorithm_type="dpmsolver++", sample_max_value=1.2),
                              {"num_inference_steps": 10}, {}),
    "cosine_dpm": ("CosineDPMSolverMultistepScheduler", {}, {"num_inference_steps": 8}, {}),
    "dpm_singlestep_3": ("DPMSolverSinglestepScheduler", dict(SD, solver_order=3), {"num_inference_steps": 10}, {}),
    "sa_solver": ("SASolverScheduler", SD, {"num_inference_steps": 10}, {}),
    "edm_euler": ("EDMEulerScheduler", {}, {"num_inference_steps": 8}, {}),
    "edm_dpmpp_2m": ("EDMDPMSolverMultistepScheduler", {}, {"num_inference_steps": 8}, {}),
    "ipndm": ("IPNDMScheduler", {}, {"num_inference_steps": 10}, {}),
    "ddim_inverse": ("DDIMInverseScheduler", SD, {"num_inference_steps": 10}, {}),
    "cm_stochastic": ("CMStochasticIterativeScheduler", {}, {"num_inference_steps": 4}, {}),
    "deis": ("DEISMultistepScheduler", SD, {"num_inference_steps": 10}, {}),
    "unipc_3": ("UniPCMultistepScheduler", dict(SD, solver_order=3), {"num_inference_steps": 10}, {}),
    "heun": ("HeunDiscreteScheduler", SD, {"num_inference_steps": 8}, {}),
    "kdpm2": ("KDPM2DiscreteScheduler", SD, {"num_inference_steps": 8}, {}),
    "kdpm2_ancestral": ("KDPM2AncestralDiscreteScheduler", SD, {"num_inference_steps": 8}, {}),
    "lms": ("LMSDiscreteScheduler", SD, {"num_inference_steps": 10}, {}),
    "pndm": ("PNDMScheduler", dict(SD, skip_prk_steps=True), {"num_inference_steps": 10}, {}),
    "lcm": ("LCMScheduler", SD, {"num_inference_steps": 4}, {}),
    "lcm_custom_timesteps": ("LCMScheduler", SD, {"timesteps": [999, 759, 499, 259]}, {}),
    "tcd": ("TCDScheduler", SD, {"num_inference_steps": 4}, {"eta": 0.3}),
    "ddpm": ("DDPMScheduler", SD, {"num_inference_steps": 10}, {}),
    "flow_match_euler": ("FlowMatchEulerDiscreteScheduler", {"shift": 3.0}, {"num_inference_steps": 10}, {}),
    "flow_match_heun": ("FlowMatchHeunDiscreteScheduler", {"shift": 3.0}, {"num_inference_steps": 6}, {}),
    # evenly spaced, unshifted: every call the same Euler step (dt -0.25), one graph for all in layout "per_call"
    "flow_match_euler_custom_sigmas": ("FlowMatchEulerDiscreteScheduler", {"shift": 1.0},
                                       {"sigmas": [1.0, 0.75, 0.5, 0.25]}, {}),
}
# cases held to the rule of tests/parity/brownian_parity.py and test_sa_solver.py, where torch's float32
# exp / log (MKL, not correctly rounded) move diffusers by more than the bound (torchsde's query-time grid;
# SA-Solver's cancelling Lagrange coefficients): the graph (as our numpy step) must match diffusers run
# with correctly rounded exp / log / sqrt within RTOL, and stock diffusers within 10x the measured
# distance between the two
TORCH_ROUNDING = {"dpmpp_sde_karras", "cosine_dpm", "sa_solver"}
FIELDS = ("prev_sample", "pred_original_sample", "denoised")
REPORT: dict[str, dict] = {}


# ---------------------------------------------------------------------------- three loops
class _RecordingGenerator:
    """Our TorchGenerator, remembering every draw per model call (the graph gets the same noise)."""

    def __init__(self, seed):
        self.gen, self.draws, self.call = TorchGenerator(seed), {}, 0
        self.device = self.gen.device

    def _keep(self, kind, value):
        self.draws.setdefault(self.call, []).append((kind, np.array(value, copy=True)))
        return value

    def randn(self, shape, dtype=np.float32):
        return self._keep("normal", self.gen.randn(shape, dtype))

    def rand(self, shape, dtype=np.float32):
        return self._keep("uniform", self.gen.rand(shape, dtype))

    def initial_seed(self):
        return self.gen.initial_seed()

    def copy(self):
        raise AssertionError("not expected in these loops")


def _calls(name, timesteps):
    return timesteps[:-1] if name == "DDPMWuerstchenScheduler" else timesteps


def _step_kwargs(sched, gen, options):
    kwargs = dict(options)
    if "generator" in inspect.signature(sched.step).parameters:
        kwargs["generator"] = gen
    return kwargs


def _fields(res, convert):
    return {f: convert(getattr(res, f)) for f in FIELDS if getattr(res, f, None) is not None}


def run_diffusers(name, config, schedule, options, seed=0):
    sched = getattr(diffusers, name).from_config(dict(config))
    sched.set_timesteps(**schedule)
    gen = torch.Generator("cpu").manual_seed(seed)
    x = torch.from_numpy(initial_sample(seed)) * getattr(sched, "init_noise_sigma", 1.0)  # flow matching: none
    outs = []
    for t in _calls(name, sched.timesteps):
        inp = sched.scale_model_input(x, t) if hasattr(sched, "scale_model_input") else x
        out = torch.from_numpy(model_fn(inp.numpy(), t.numpy()))
        res = sched.step(out, t, x, **_step_kwargs(sched, gen, options))
        x = res.prev_sample
        outs.append(_fields(res, lambda v: v.numpy().copy()))
    return outs


def run_numpy(name, config, schedule, options, seed=0):
    """Our loop; returns (outputs per call, the scheduler, the generator's draws per call)."""
    sched = scheduler_class(name).from_config(dict(config))
    sched.set_timesteps(**schedule)
    gen = _RecordingGenerator(seed)
    x = initial_sample(seed) * np.float32(sched.init_noise_sigma)
    outs = []
    for i, t in enumerate(_calls(name, sched.timesteps)):
        gen.call = i
        inp = sched.scale_model_input(x, t) if hasattr(sched, "scale_model_input") else x
        res = sched.step(model_fn(inp, t), t, x, **_step_kwargs(sched, gen, options))
        x = res.prev_sample
        outs.append(_fields(res, lambda v: np.array(v, copy=True)))
    return outs, sched, gen.draws


def _ort(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda feed: dict(zip(names, session.run(None, feed)))


def _openvino(folder):
    ov = pytest.importorskip("openvino")
    core = ov.Core()

    def load(model, file):
        onnx.save(model, folder / file)
        compiled = core.compile_model(core.read_model(folder / file), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        names = [o.name for o in model.graph.output]
        return lambda feed: {n: v for n, v in zip(names, compiled(feed).values())}

    return load


def run_graph(graphs, sched_after, draws, load, seed=0):
    """The app's loop of plan.json's "usage", with the draws our numpy loop made, call by call: each call runs
    the graph ``calls[i].graph`` (layout "indexed": always step.onnx, fed the step index and zeros for the noise
    it does not draw; "per_call": exactly the inputs its graph has)."""
    plan = graphs.plan
    steps = {file: load(model, file) for file, model in graphs.steps.items()}
    scale = load(graphs.scale_model_input, "scale_model_input.onnx")
    x = initial_sample(seed) * np.float32(plan["init_noise_sigma"])
    zeros = np.zeros_like(x)
    state = {s["input"]: zeros for s in plan["state"]}
    model_input = scale({"sample": x, "step_index": np.array(0, dtype=np.int64)})["model_input"]
    outs = []
    for i, call in enumerate(plan["calls"]):
        t = np.asarray(call["timestep"], dtype=plan["timestep_dtype"])
        inputs = [v["name"] for v in plan["step_graphs"][call["graph"]]["inputs"]]
        feed = {"sample": x, "model_output": model_fn(model_input, t), **state,
                **{n: zeros for n in inputs if n.startswith("noise")}}
        if "step_index" in inputs:
            feed["step_index"] = np.array(i, dtype=np.int64)
        assert sorted(feed) == sorted(inputs), f"call {i}: fed {sorted(feed)}, the graph takes {sorted(inputs)}"
        step = steps[call["graph"]]
        drawn = draws.get(i, [])
        assert [d["kind"] for d in call["noise"] if d["kind"] != "brownian"] == [k for k, _ in drawn], \
            f"call {i}: the plan's draws {call['noise']} are not what the numpy step drew"
        generated = iter(v for _, v in drawn)
        for d in call["noise"]:
            feed[d["input"]] = sched_after.noise_sampler(*d["interval"]) if d["kind"] == "brownian" \
                else next(generated)
        res = step(feed)
        x, model_input = res["prev_sample"], res[plan["next_model_input"]]
        # the plan's hand-over: each state input of the next call is one of this call's inputs or outputs
        state = {name: res[source] if source in res else feed[source] for name, source in call["state"].items()}
        outs.append({f: res[f] for f in FIELDS if f in res})
    return outs


def relative_error(ref, got) -> float:
    """Worst |got - ref| / max(1, max|ref|) over every call's common fields (the harness' measure)."""
    worst, compared = 0.0, 0
    for r, g in zip(ref, got, strict=True):
        for field in set(r) & set(g):
            a, b = r[field].astype(np.float64), g[field].astype(np.float64)
            assert a.shape == b.shape, (field, a.shape, b.shape)
            worst = max(worst, float(np.abs(a - b).max()) / max(1.0, float(np.abs(a).max())))
            compared += 1
    assert compared >= len(ref), "prev_sample was not compared at every call"
    return worst


def numpy_distance(ours, got) -> tuple[float, int, int]:
    """(max abs difference, differing elements, elements) between our numpy outputs and the graph's."""
    worst, differing, total = 0.0, 0, 0
    for o, g in zip(ours, got, strict=True):
        for field in set(o) & set(g):
            worst = max(worst, float(np.abs(o[field].astype(np.float64) - g[field]).max()))
            differing += int((o[field].view(np.uint32) != g[field].view(np.uint32)).sum())
            total += o[field].size
    return worst, differing, total


def diffusers_error(case, got) -> float:
    """The graph's distance from diffusers, asserted within the parity bound (see TORCH_ROUNDING)."""
    name, config, schedule, options = CASES[case]
    stock = run_diffusers(name, config, schedule, options)
    err = relative_error(stock, got)
    if err <= RTOL or case not in TORCH_ROUNDING:
        assert err <= RTOL, f"{case}: step graph vs diffusers {err:.3g} > {RTOL}"
        return err
    from tests.parity.test_sa_solver import correctly_rounded_exp_log_in_torch

    with correctly_rounded_exp_log_in_torch():
        rounded = run_diffusers(name, config, schedule, options)
    rounded_err = relative_error(rounded, got)
    assert rounded_err <= RTOL, f"{case}: step graph vs correctly rounded diffusers {rounded_err:.3g} > {RTOL}"
    effect = relative_error(stock, rounded)
    assert err <= max(RTOL, 10 * effect), f"{case}: step graph vs stock diffusers {err:.3g} > 10x {effect:.3g}"
    return rounded_err


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
        writer.write_sep("-", "step graphs: relative error vs diffusers / distance from numpy (max abs, "
                              "differing values of all)")
        for case, r in sorted(REPORT.items()):
            ov = r.get("openvino")
            ov_text = f"   openvino {ov[0]:.2g} / {ov[1]:.2g} ({ov[2]}/{ov[3]})" if ov else ""
            writer.write_line(f"{case:25s} calls {r['calls']:3d} nodes {r['nodes']:4d} {r['bytes']:6d} B   "
                              f"onnxruntime {r['ort'][0]:.2g} / {r['ort'][1]:.2g} ({r['ort'][2]}/{r['ort'][3]})"
                              f"{ov_text}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_loop_matches_diffusers_and_numpy(case, tmp_path):
    name, config, schedule, options = CASES[case]
    graphs = build_step_graphs(name, config=config, step_options=options, **schedule)
    ours, sched_after, draws = run_numpy(name, config, schedule, options)
    assert graphs.plan["num_model_calls"] == len(ours)
    got = run_graph(graphs, sched_after, draws, lambda model, file: _ort(model))
    distance = numpy_distance(ours, got)
    n_nodes = sum(1 for _ in all_nodes(graphs.step.graph))
    REPORT[case] = {"calls": len(ours), "nodes": n_nodes, "bytes": graphs.step.ByteSize(), "ort": (np.nan, *distance)}
    REPORT[case]["ort"] = (diffusers_error(case, got), *distance)
    assert distance[1] == 0, f"{case}: ONNX Runtime differs from the numpy step in {distance[1]} values"


#: schedulers without a case above, each held to its own numpy step (the numpy ones are held to diffusers or,
#: for the k-diffusion ports diffusers lacks, to k-diffusion in tests/parity/): config for each
OTHER_SCHEDULERS = {"DPMPP2SAncestralScheduler": SD, "DPMFastScheduler": SD, "DDIMParallelScheduler": SD,
                    "DDPMParallelScheduler": SD, "DDPMWuerstchenScheduler": {},
                    "DPMSolverMultistepInverseScheduler": SD, "UnCLIPScheduler": {}}


@pytest.mark.parametrize("name", sorted(OTHER_SCHEDULERS))
def test_other_schedulers_match_numpy(name):
    """The graph repeats the numpy loop bit for bit."""
    schedule = {"num_inference_steps": 8}
    config = OTHER_SCHEDULERS[name]
    graphs = build_step_graphs(name, config=config, **schedule)
    ours, sched_after, draws = run_numpy(name, config, schedule, {})
    got = run_graph(graphs, sched_after, draws, lambda model, file: _ort(model))
    distance = numpy_distance(ours, got)
    REPORT[name] = {"calls": len(ours), "nodes": sum(1 for _ in all_nodes(graphs.step.graph)),
                    "bytes": graphs.step.ByteSize(), "ort": (np.nan, *distance)}
    assert distance[1] == 0, f"{name}: ONNX Runtime differs from the numpy step in {distance[1]} values"
    assert graphs.plan["num_model_calls"] == len(ours)


#: how the README's "Schedulers" bullet of "Apps without Python" names the refused ones
README_NAMES = {"DPMAdaptiveScheduler": "DPM adaptive", "VQDiffusionScheduler": "VQ-Diffusion",
                "ScoreSdeVeScheduler": "ScoreSdeVe", "ScoreSdeVpScheduler": "ScoreSdeVp",
                "KarrasVeScheduler": "KarrasVe", "RePaintScheduler": "RePaint"}


def test_every_scheduler_exports_or_is_refused_and_the_readme_says_which():
    """Each of our scheduler classes is exported by a case of this file (bit for bit with numpy) or refused
    with its reason (PLANLESS), and the README lists exactly the refused ones, so the list cannot go stale."""
    from edge_sched.schedulers import SCHEDULER_CLASSES

    tested = {c[0] for c in CASES.values()} | set(OTHER_SCHEDULERS)
    assert set(SCHEDULER_CLASSES) - tested - set(PLANLESS) == set()
    assert not tested & set(PLANLESS)
    assert set(README_NAMES) == set(PLANLESS)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    bullet = readme.split("- **Schedulers.** Every scheduler with a fixed plan exports", 1)[1].split("\n- **", 1)[0]
    refused = bullet.split("Refused, with the", 1)[1]
    for name, label in README_NAMES.items():
        assert label in refused, f"README does not list {label} ({name}) as refused"


@pytest.mark.parametrize("case", ["euler_ancestral", "ddim_thresholding", "dpmpp_2m_karras", "heun", "unipc_3",
                                  "lcm", "flow_match_euler"])
def test_openvino_f32(case, tmp_path):
    name, config, schedule, options = CASES[case]
    graphs = build_step_graphs(name, config=config, step_options=options, **schedule)
    ours, sched_after, draws = run_numpy(name, config, schedule, options)
    got = run_graph(graphs, sched_after, draws, _openvino(tmp_path))
    distance = numpy_distance(ours, got)
    entry = REPORT.setdefault(case, {"calls": len(ours), "nodes": 0, "bytes": 0, "ort": (np.nan,) * 4})
    entry["openvino"] = (np.nan, *distance)
    entry["openvino"] = (diffusers_error(case, got), *distance)



# ---------------------------------------------------------------------------- state hand-over
HISTORY_CASES = ["pndm", "lms", "ipndm", "heun", "dpm_singlestep_3", "dpmpp_2m_karras", "flow_match_euler"]


def _state_copies(model) -> int:
    """Identity nodes writing a next_state output (a tensor copied only to be handed to the next call)."""
    return sum(1 for n in all_nodes(model.graph) if n.op_type == "Identity" and "next_state." in n.output[0])


@pytest.mark.parametrize("case", HISTORY_CASES)
def test_host_handover_copies_no_state_and_equals_the_graph_handover(case):
    """handover="host" (export_step's default) leaves shifted history and kept inputs to the caller: no state
    output is a copy, and a scheduler without scaling has no model_input output; handover="graph" (the loop's
    body) hands every slot over as an output. Both give the numpy loop bit for bit."""
    name, config, schedule, options = CASES[case]
    ours, sched_after, draws = run_numpy(name, config, schedule, options)
    host = build_step_graphs(name, config=config, step_options=options, **schedule)
    graph = build_step_graphs(name, config=config, step_options=options, handover="graph", **schedule)
    assert host.plan["handover"] == "host" and graph.plan["handover"] == "graph"
    assert _state_copies(host.step) == 0
    states = [s["input"] for s in graph.plan["state"]]
    assert [o["name"] for o in graph.plan["outputs"] if o["name"].startswith("next_")] == ["next_" + s for s in states]
    assert all(c["state"] == {s: "next_" + s for s in states} for c in graph.plan["calls"])
    # every hand-over names an input or an output of the step
    names = {i["name"] for i in host.plan["inputs"]} | {o["name"] for o in host.plan["outputs"]}
    assert all(set(c["state"]) == set(states) and set(c["state"].values()) <= names for c in host.plan["calls"])
    scaled = any(n.op_type != "Identity" for n in host.scale_model_input.graph.node)
    assert host.plan["next_model_input"] == ("model_input" if scaled else "prev_sample")
    assert graph.plan["next_model_input"] == "model_input"
    for graphs in (host, graph):
        got = run_graph(graphs, sched_after, draws, lambda model, file: _ort(model))
        assert numpy_distance(ours, got)[1] == 0, f"{case}, handover {graphs.plan['handover']}: differs from numpy"


def test_pndm_steady_step_re_points_its_history():
    """PNDM's steady step keeps the last three model outputs and the new one: four re-pointed slots, no output."""
    name, config, schedule, options = CASES["pndm"]
    plan = build_step_graphs(name, config=config, **schedule).plan
    last = plan["calls"][-1]["state"]
    assert [last[f"state.ets.{k}"] for k in range(4)] == ["state.ets.1", "state.ets.2", "state.ets.3", "model_output"]
    assert not [o for o in plan["outputs"] if o["name"].startswith("next_state.ets")]


def test_unknown_handover_refused():
    with pytest.raises(StepExportError, match="handover must be one of 'host', 'graph', got 'copy'"):
        build_step_graphs("Euler", config=SD, num_inference_steps=4, handover="copy")


# ---------------------------------------------------------------------------- layout "per_call"
PER_CALL_CASES = ["lms", "ipndm", "heun", "dpmpp_2m_karras", "euler_ancestral", "pndm", "unipc_3", "flow_match_euler",
                  "euler_custom_sigmas", "flow_match_euler_custom_sigmas", "dpmpp_2m_sde_karras", "dpmpp_sde_karras"]


def _tables_gathered(model) -> list[str]:
    return [n.input[0] for n in all_nodes(model.graph) if n.op_type == "Gather" and n.input[0].endswith("_table")]


@pytest.mark.parametrize("case", PER_CALL_CASES)
def test_per_call_layout_matches_numpy(case):
    """layout="per_call": call i runs its own graph (calls[i].graph), traced from call i alone: no step index, no
    If, no gathered table; it takes exactly the noise it draws and the state the previous call handed over
    (run_graph asserts the feed is the graph's inputs), and the loop gives the numpy loop bit for bit."""
    name, config, schedule, options = CASES[case]
    graphs = build_step_graphs(name, config=config, step_options=options, layout="per_call", **schedule)
    plan = graphs.plan
    assert plan["layout"] == "per_call" and graphs.step is None and "inputs" not in plan
    assert sorted({c["graph"] for c in plan["calls"]}) == sorted(graphs.steps) == sorted(plan["graphs"]["steps"])
    assert sorted(plan["step_graphs"]) == sorted(graphs.steps)
    for file, model in graphs.steps.items():
        assert not [n for n in all_nodes(model.graph) if n.op_type == "If"], file
        assert not _tables_gathered(model), file
        assert [i["name"] for i in plan["step_graphs"][file]["inputs"]] == [i.name for i in model.graph.input]
        assert "step_index" not in [i.name for i in model.graph.input]
    first = plan["step_graphs"][plan["calls"][0]["graph"]]["inputs"]
    assert plan["state"] == [] == [i for i in first if i["name"].startswith("state.")]  # nothing before call 0
    for call in plan["calls"]:  # the noise inputs of a call's graph are the draws it makes, in order
        inputs = [i["name"] for i in plan["step_graphs"][call["graph"]]["inputs"]]
        assert [n for n in inputs if n.startswith("noise")] == [d["input"] for d in call["noise"]]
    indexed = build_step_graphs(name, config=config, step_options=options, **schedule)
    assert plan["next_model_input"] == indexed.plan["next_model_input"]
    assert [o["name"] for o in plan["step_graphs"][plan["calls"][0]["graph"]]["outputs"]
            if not o["name"].startswith("next_state.")] == \
        [o["name"] for o in indexed.plan["outputs"] if not o["name"].startswith("next_state.")]
    ours, sched_after, draws = run_numpy(name, config, schedule, options)
    got = run_graph(graphs, sched_after, draws, lambda model, file: _ort(model))
    distance = numpy_distance(ours, got)
    assert distance[1] == 0, f"{case}, per_call: ONNX Runtime differs from the numpy step in {distance[1]} values"


def _ort_bound(graphs):
    """ONNX Runtime: per call an IO binding of the planned arrays, made once; returns the call's run."""
    sessions = {file: ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
                for file, model in graphs.steps.items()}

    def bind(file, inputs, outputs):
        io = sessions[file].io_binding()
        for name, array in inputs.items():
            io.bind_cpu_input(name, array)
        for name, array in outputs.items():
            io.bind_output(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
        return lambda: sessions[file].run_with_iobinding(io)

    return bind


def _openvino_bound(folder):
    """OpenVINO (f32): per call an infer request whose input and output tensors are the planned arrays, set once."""
    ov = pytest.importorskip("openvino")

    def make(graphs):
        core, compiled = ov.Core(), {}
        for file, model in graphs.steps.items():
            onnx.save(model, folder / file)
            compiled[file] = core.compile_model(core.read_model(folder / file), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

        def bind(file, inputs, outputs):
            request = compiled[file].create_infer_request()
            for name, array in inputs.items():
                request.set_tensor(name, ov.Tensor(array, shared_memory=True))
            for name, array in outputs.items():
                request.set_tensor(compiled[file].output(name), ov.Tensor(array, shared_memory=True))
            return request.infer

        return bind

    return make


def run_graph_in_buffers(graphs, sched_after, draws, make_bind=_ort_bound, seed=0):
    """The app's loop with plan.json's static ``buffers``: every array of the loop in one of the planned buffers,
    each call's inputs and outputs bound once, before the loop (ONNX Runtime IO binding, OpenVINO tensors), the
    model's output and the noise written into their buffers, nothing else allocated or copied (the outputs are
    copied out here for the comparison only)."""
    plan, buffers = graphs.plan, graphs.plan["buffers"]
    x = initial_sample(seed) * np.float32(plan["init_noise_sigma"])
    assert all(a == {"dtype": "float32", "shape": ["batch", "channels", "height", "width"]} for a in buffers["arrays"])
    arrays = [np.empty_like(x) for _ in buffers["arrays"]]
    bind = make_bind(graphs)
    runs = []
    for i, (call, where) in enumerate(zip(plan["calls"], buffers["calls"])):
        names = {"inputs": [v["name"] for v in plan["step_graphs"][call["graph"]]["inputs"]],
                 "outputs": [v["name"] for v in plan["step_graphs"][call["graph"]]["outputs"]]}
        assert {k: sorted(v) for k, v in names.items()} == {k: sorted(where[k]) for k in names}, f"call {i}"
        assert not set(where["inputs"].values()) & set(where["outputs"].values()), f"call {i} writes what it reads"
        assert len(set(where["outputs"].values())) == len(where["outputs"]), f"call {i}: two outputs, one buffer"
        assert where["inputs"]["model_output"] != where["model_input"], f"call {i}: the model writes what it reads"
        runs.append(bind(call["graph"], {n: arrays[b] for n, b in where["inputs"].items()},
                         {n: arrays[b] for n, b in where["outputs"].items()}))
    np.copyto(arrays[buffers["sample"]], x)
    scale = _ort(graphs.scale_model_input)
    np.copyto(arrays[buffers["model_input"]], scale({"sample": x, "step_index": np.array(0, np.int64)})["model_input"])
    outs = []
    for i, (call, where, run) in enumerate(zip(plan["calls"], buffers["calls"], runs)):
        t = np.asarray(call["timestep"], dtype=plan["timestep_dtype"])
        np.copyto(arrays[where["inputs"]["model_output"]], model_fn(arrays[where["model_input"]], t))
        generated = iter(v for _, v in draws.get(i, []))
        for d in call["noise"]:
            np.copyto(arrays[where["inputs"][d["input"]]],
                      sched_after.noise_sampler(*d["interval"]) if d["kind"] == "brownian" else next(generated))
        run()
        outs.append({f: arrays[where["outputs"][f]].copy() for f in FIELDS if f in where["outputs"]})
    assert np.array_equal(arrays[buffers["final_sample"]], outs[-1]["prev_sample"])
    return outs


@pytest.mark.parametrize("case", PER_CALL_CASES)
def test_per_call_buffer_plan_runs_the_loop_in_place(case):
    """plan.json's static buffers: bound once, the loop reusing a few buffers for every array (a history slot keeps
    its buffer while re-pointed), it still gives the numpy loop bit for bit, every field at every call."""
    name, config, schedule, options = CASES[case]
    graphs = build_step_graphs(name, config=config, step_options=options, layout="per_call", **schedule)
    ours, sched_after, draws = run_numpy(name, config, schedule, options)
    got = run_graph_in_buffers(graphs, sched_after, draws)
    distance = numpy_distance(ours, got)
    assert distance[1] == 0, f"{case}, buffer plan: ONNX Runtime differs from the numpy step in {distance[1]} values"
    # arrays the loop writes: the first sample and model input, per call the model's output, its noise draws and the
    # graph's outputs; the plan reuses buffers, so it has fewer
    written = 2 + sum(1 + len(c["noise"]) + len(b["outputs"])
                      for c, b in zip(graphs.plan["calls"], graphs.plan["buffers"]["calls"]))
    assert len(graphs.plan["buffers"]["arrays"]) < written / 2, (len(graphs.plan["buffers"]["arrays"]), written)


@pytest.mark.parametrize("case", ["pndm", "lms", "dpmpp_2m_sde_karras"])
def test_per_call_buffer_plan_openvino_f32(case, tmp_path):
    """The same in OpenVINO, its infer requests' tensors set once to the planned arrays (PNDM's history of model
    outputs, LMS's shifting derivatives, SDE noise), held to diffusers at the parity bound as test_openvino_f32."""
    name, config, schedule, options = CASES[case]
    graphs = build_step_graphs(name, config=config, step_options=options, layout="per_call", **schedule)
    _, sched_after, draws = run_numpy(name, config, schedule, options)
    diffusers_error(case, run_graph_in_buffers(graphs, sched_after, draws, _openvino_bound(tmp_path)))


def test_buffer_plan_names_an_input_no_value_reaches():
    from export.buffer_plan import plan_buffers

    plan = dict(build_step_graphs("LMS", config=SD, num_inference_steps=4, layout="per_call").plan)
    plan["calls"] = [dict(c) for c in plan["calls"]]
    plan["calls"][1]["state"] = {}  # call 2's graph reads state.derivatives.* that nothing hands it
    with pytest.raises(ValueError, match=r"call 2: the plan gives no value for the graph's inputs \['state\."):
        plan_buffers(plan)


def test_buffer_plan_only_for_the_per_call_layout():
    from export.buffer_plan import plan_buffers

    indexed = build_step_graphs("Euler", config=SD, num_inference_steps=4)
    assert "buffers" not in indexed.plan
    with pytest.raises(ValueError, match="a buffer plan is made for layout 'per_call', not 'indexed'"):
        plan_buffers(indexed.plan)


def _nodes_run(graph, known: dict) -> list:
    """The nodes an indexed step graph runs at one call (``known`` = {"step_index": i}): its own, and of each If
    the branch that call takes (the branch number gathered at step_index, compared by Equal)."""
    consts = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    ran = []
    for n in graph.node:
        ran.append(n)
        if n.op_type == "Gather" and n.input[0] in consts and n.input[1] in known:
            known[n.output[0]] = consts[n.input[0]][known[n.input[1]]]
        elif n.op_type == "Equal" and n.input[0] in known and n.input[1] in consts:
            known[n.output[0]] = bool(known[n.input[0]] == consts[n.input[1]])
        elif n.op_type == "If":
            branches = {a.name: a.g for a in n.attribute}
            ran += _nodes_run(branches["then_branch" if known[n.input[0]] else "else_branch"], known)
    return ran


@pytest.mark.parametrize("case", ["lms", "ipndm", "heun"])
def test_per_call_graph_is_the_indexed_call_without_its_dispatch(case):
    """What the layout is for: at every call, the per-call graph runs exactly the nodes the indexed graph runs
    there less its dispatch: the Gather of each per-call table, the branch Gather, an Equal and an If per level
    of the chain, and the placeholder Constants of state the call does not compute."""
    name, config, schedule, options = CASES[case]
    indexed = build_step_graphs(name, config=config, **schedule).step
    per_call = build_step_graphs(name, config=config, layout="per_call", **schedule)
    for i, call in enumerate(per_call.plan["calls"]):
        ran = _nodes_run(indexed.graph, {"step_index": i})
        dispatch = [n for n in ran if n.op_type in ("Equal", "If", "Constant")
                    or n.op_type == "Gather" and n.input[0].endswith(("_table", "branch_of_call"))]
        assert [n for n in ran if n.op_type == "If"] and _tables_gathered(indexed)
        own = [n.op_type for n in all_nodes(per_call.steps[call["graph"]].graph)]
        assert sorted(own) == sorted(n.op_type for n in ran if n not in dispatch), f"{case}, call {i}"


def test_per_call_identical_calls_share_one_file(tmp_path):
    """Evenly spaced unshifted flow-matching sigmas make every call the same graph: one file for four calls. A
    schedule whose calls all differ writes one file per call, each a distinct graph."""
    name, config, schedule, options = CASES["flow_match_euler_custom_sigmas"]
    plan = export_step(name, tmp_path / "same", config=config, layout="per_call", **schedule)
    assert plan["num_model_calls"] == 4 and [c["graph"] for c in plan["calls"]] == ["step_000.onnx"] * 4
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == ["edge_sched.json", "plan.json",
                                                                    "scale_model_input.onnx", "step_000.onnx"]
    name, config, schedule, options = CASES["heun"]
    graphs = build_step_graphs(name, config=config, layout="per_call", **schedule)
    files = [c["graph"] for c in graphs.plan["calls"]]
    assert files == [f"step_{i:03d}.onnx" for i in range(len(files))]
    assert len({m.SerializeToString(deterministic=True) for m in graphs.steps.values()}) == len(files)


def test_per_call_folder_manifest_covers_every_file(tmp_path):
    import hashlib

    out = tmp_path / "lms"
    plan = export_step("LMS", out, config=SD, num_inference_steps=6, layout="per_call")
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(["edge_sched.json", "plan.json", "scale_model_input.onnx", *plan["graphs"]["steps"]])
    assert len(plan["graphs"]["steps"]) == 6
    assert json.loads((out / "plan.json").read_text()) == json.loads(json.dumps(plan))
    manifest = json.loads((out / "edge_sched.json").read_text())
    assert sorted(manifest["files"]) == sorted(set(written) - {"edge_sched.json"})
    assert all(hashlib.sha256((out / f).read_bytes()).hexdigest() == h for f, h in manifest["files"].items())
    for file in plan["graphs"]["steps"]:
        onnx.checker.check_model(onnx.load(out / file), full_check=True)


def test_per_call_layout_refused_with_the_graph_handover_and_unknown_layouts():
    with pytest.raises(StepExportError, match="layout='per_call' needs handover='host', got handover='graph'"):
        build_step_graphs("Euler", config=SD, num_inference_steps=4, handover="graph", layout="per_call")
    with pytest.raises(StepExportError, match="layout must be one of 'indexed', 'per_call', got 'per_step'"):
        build_step_graphs("Euler", config=SD, num_inference_steps=4, layout="per_step")


@pytest.mark.parametrize("case", ["heun", "dpmpp_2m_karras", "euler_ancestral"])
def test_per_call_openvino_f32(case, tmp_path):
    """The per-call graphs in OpenVINO (held to diffusers at the parity bound, as test_openvino_f32)."""
    name, config, schedule, options = CASES[case]
    graphs = build_step_graphs(name, config=config, step_options=options, layout="per_call", **schedule)
    ours, sched_after, draws = run_numpy(name, config, schedule, options)
    got = run_graph(graphs, sched_after, draws, _openvino(tmp_path))
    diffusers_error(case, got)


# ---------------------------------------------------------------------------- the folder and the plan
def test_export_step_folder(tmp_path):
    out = tmp_path / "dpm"
    plan = export_step("DPM++ 2M Karras", out, config=SD, num_inference_steps=12)
    assert sorted(p.name for p in out.iterdir()) == ["edge_sched.json", "plan.json", "scale_model_input.onnx",
                                                     "step.onnx"]
    assert json.loads((out / "plan.json").read_text()) == json.loads(json.dumps(plan))
    assert plan["scheduler"]["class"] == "DPMSolverMultistepScheduler"
    assert plan["scheduler"]["config"]["use_karras_sigmas"] is True  # the A1111 name's option
    assert plan["num_model_calls"] == len(plan["timesteps"]) == len(plan["calls"]) == 12
    assert [s["input"] for s in plan["state"]] == ["state.model_outputs.0", "state.model_outputs.1"]
    ours = scheduler_class("DPMSolverMultistepScheduler").from_config(dict(KARRAS))
    ours.set_timesteps(12)
    assert plan["timesteps"] == ours.timesteps.tolist() and plan["init_noise_sigma"] == float(ours.init_noise_sigma)
    step = onnx.load(out / "step.onnx")
    onnx.checker.check_model(step, full_check=True)
    assert [i.name for i in step.graph.input] == [i["name"] for i in plan["inputs"]]
    with pytest.raises(Exception, match="already exists"):
        export_step("DPM++ 2M Karras", out, config=SD, num_inference_steps=12)
    export_step("Euler a", out, config=SD, num_inference_steps=5, overwrite=True)
    plan = json.loads((out / "plan.json").read_text())
    assert plan["scheduler"]["class"] == "EulerAncestralDiscreteScheduler"
    assert all(c["noise"] == [{"input": "noise", "kind": "normal"}] for c in plan["calls"])


def test_export_step_command(tmp_path, capsys):
    """`edge-sched export-step`: the folder export_step writes for the same scheduler, config and schedule; --config
    reads a pipeline folder's scheduler/scheduler_config.json; --set routes each key to the config or the step."""
    from edge_sched.cli import main

    out = tmp_path / "dpm"
    assert main(["export-step", "DPM++ 2M Karras", str(out), "--steps", "6", "--layout", "per_call"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    same = build_step_graphs("DPM++ 2M Karras", config={}, num_inference_steps=6, layout="per_call").plan
    assert plan == json.loads(json.dumps(same))
    assert sorted(p.name for p in out.iterdir()) == sorted(["edge_sched.json", "plan.json", "scale_model_input.onnx",
                                                            *plan["graphs"]["steps"]])
    said = capsys.readouterr().out
    assert f"6 model calls; layout per_call: 6 step graphs, {len(plan['buffers']['arrays'])} buffers" in said

    pipeline = tmp_path / "pipeline"
    (pipeline / "scheduler").mkdir(parents=True)
    (pipeline / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "PNDMScheduler", **SD}))
    ddim = tmp_path / "ddim"
    assert main(["export-step", "DDIMScheduler", str(ddim), "--steps", "4", "--config", str(pipeline),
                 "--set", "eta=0.5", "--set", "clip_sample=false"]) == 0
    plan = json.loads((ddim / "plan.json").read_text())
    assert plan["scheduler"]["class"] == "DDIMScheduler" and plan["step_options"] == {"eta": 0.5}
    assert plan["scheduler"]["config"]["clip_sample"] is False
    assert plan["scheduler"]["config"]["beta_schedule"] == "scaled_linear"  # from the pipeline's config
    assert plan["num_model_calls"] == 4 and plan["layout"] == "indexed"
    euler = tmp_path / "euler"
    assert main(["export-step", "Euler", str(euler), "--timesteps", "999,700,400,100", "--config", str(pipeline)]) == 0
    assert json.loads((euler / "plan.json").read_text())["timesteps"] == [999.0, 700.0, 400.0, 100.0]


@pytest.mark.parametrize("args, status, message", [
    (["Euler a", "{out}", "--steps", "4", "--set", "etta=1"], 1,
     "EulerAncestralDiscreteScheduler has no option 'etta': its config keys are"),
    (["DPMAdaptiveScheduler", "{out}", "--steps", "4"], 1, "DPMAdaptiveScheduler cannot be exported as a step graph"),
    (["Euler", "{out}", "--timesteps", "999,x"], 2, "argument --timesteps: must be comma-separated int values"),
    (["Euler", "{out}"], 2, "one of the arguments --steps --timesteps --sigmas is required"),
    (["Euler", "{out}", "--steps", "4", "--config", "{tmp}/nowhere.json"], 1, "nowhere.json"),
    (["Euler", "{existing}", "--steps", "4"], 1, "already exists; pass overwrite=True (--overwrite)"),
])
def test_export_step_command_refuses_bad_input(tmp_path, capsys, args, status, message):
    from edge_sched.cli import main

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    argv = [a.format(out=tmp_path / "out", tmp=tmp_path, existing=existing) for a in args]
    try:
        got = main(["export-step", *argv])
    except SystemExit as e:  # argparse's usage errors
        got = e.code
    assert got == status
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_heun_plan_counts_both_evaluations():
    graphs = build_step_graphs("HeunDiscreteScheduler", config=SD, num_inference_steps=5)
    assert graphs.plan["num_inference_steps"] == 5 and graphs.plan["num_model_calls"] == 9
    assert {s["input"] for s in graphs.plan["state"]} == {"state.prev_derivative", "state.sample"}


def test_runs_at_a_shape_other_than_traced():
    """Shapes are dynamic: a 1x4x16x12 sample through the thresholding DDIM graph (it reshapes per batch item)."""
    name, config, schedule, options = CASES["ddim_thresholding"]
    graphs = build_step_graphs(name, config=config, step_options=options, **schedule)
    sched = scheduler_class(name).from_config(dict(config))
    sched.set_timesteps(**schedule)
    x = initial_sample(5, (1, 4, 16, 12)) * np.float32(2)
    noise = initial_sample(6, x.shape)
    t = sched.timesteps[3]
    want = sched.step(model_fn(x, t), t, x, eta=1.0, variance_noise=noise).prev_sample
    got = _ort(graphs.step)({"sample": x, "model_output": model_fn(x, t), "step_index": np.array(3, dtype=np.int64),
                             "noise": noise})["prev_sample"]
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", sorted(PLANLESS))
def test_planless_schedulers_refused_with_the_reason(name, tmp_path):
    with pytest.raises(StepExportError, match=f"{name} cannot be exported as a step graph: ") as info:
        export_step(name, tmp_path / "out", num_inference_steps=10)
    assert PLANLESS[name] in str(info.value)
    assert not (tmp_path / "out").exists()


def test_unknown_options_refused(tmp_path):
    with pytest.raises(StepExportError, match=r"DDIMScheduler.step has no argument 'etaa'.*\beta\b"):
        build_step_graphs("DDIMScheduler", num_inference_steps=10, step_options={"etaa": 1.0})
    with pytest.raises(StepExportError, match="the export supplies argument 'generator'"):
        build_step_graphs("DDIMScheduler", num_inference_steps=10, step_options={"generator": 0})
    with pytest.raises(StepExportError, match="EulerDiscreteScheduler has no option 'use_karas_sigmas'"):
        build_step_graphs("EulerDiscreteScheduler", overrides={"use_karas_sigmas": True}, num_inference_steps=10)
    with pytest.raises(UnknownSchedulerError):
        build_step_graphs("EulerDiscrete", num_inference_steps=10)
    with pytest.raises(ValueError, match="exactly one of"):
        build_step_graphs("EulerDiscreteScheduler", num_inference_steps=10, sigmas=[1.0, 0.0])
    with pytest.raises(TypeError, match="scheduler must be"):
        build_step_graphs(42, num_inference_steps=10)


# ---------------------------------------------------------------------------- the tracer itself
def _trace(fn, *shapes):
    rec = Recorder((3, 4, 5, 7))
    args = [rec.input(f"x{i}", s, np.float32) for i, s in enumerate(shapes)]
    with tracing():
        out = fn(*args)
    model = onnx.helper.make_model(rec.graph("g", args, [out]), opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, out


def test_tracer_repeats_numpy_promotion_and_ops_bit_for_bit():
    def fn(x, y):
        a = np.float32(0.3) * x + 0.1 * y  # a Python float stays weak: float32
        b = np.float64(1.5) * a  # a float64 scalar promotes, as in numpy
        c = np.clip(np.sqrt(np.abs(b)) ** 2 - y / 3, -2.0, 2.0).astype(np.float32)
        flat = c.reshape(c.shape[0], -1)
        s = np.quantile(np.abs(flat), 0.9, axis=1)[:, None]
        return (np.where(flat > 0, flat / s, flat * s)).reshape(x.shape)[:, 1:3, ::2, -1]

    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((2, 4, 6, 9)).astype(np.float32) for _ in range(2))
    model, out = _trace(fn, (3, 4, 5, 7), (3, 4, 5, 7))
    want = fn(x, y)
    got = _ort(model)({"x0": x, "x1": y})[out.name]
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape == (2, 2, 3)
    np.testing.assert_array_equal(got, want)
    for scalar, dtype in ((np.float64(1.7), np.float64), (1.7, np.float32), (np.float32(1.7), np.float32)):
        model, out = _trace(lambda x: x / scalar, (3, 4, 5, 7))
        assert out.dtype == dtype
        np.testing.assert_array_equal(_ort(model)({"x0": x})[out.name], x / scalar)


def test_tracer_refuses_data_dependent_python():
    with pytest.raises(TraceError, match="data-dependent control flow"):
        _trace(lambda x: x if float(x[0, 0, 0, 0]) > 0 else -x, (3, 4, 5, 7))
    with pytest.raises(TraceError, match="data-dependent control flow"):
        _trace(lambda x: x * 2 if (x > 0) else x, (3, 4, 5, 7))
    with pytest.raises(TraceError, match="numpy.max is not supported"):
        _trace(lambda x: x / x.max(), (3, 4, 5, 7))
    with pytest.raises(TraceError, match="only work for that shape"):
        _trace(lambda x: x * np.ones((3, 4, 5, 7), np.float32), (3, 4, 5, 7))
    with pytest.raises(TraceError, match="numpy.cumsum is not supported"):
        _trace(lambda x: np.cumsum(x, axis=1), (3, 4, 5, 7))
