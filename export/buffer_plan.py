"""A static memory plan for the per-call step graphs: every array of the loop in one of a few buffers,
assigned once, so an app binds each call's inputs and outputs once (ONNX Runtime's IO binding, OpenVINO's
tensors) and runs the loop with no allocation and no copy.

The plan (``plan.json``'s ``buffers``) follows the loop of ``plan["usage"]`` event by event:

- start: the app writes the first sample into ``buffers.sample`` and runs ``scale_model_input.onnx``
  from it into ``buffers.model_input``;
- call ``i``, the model: the model reads ``calls[i].model_input`` and writes its output into
  ``calls[i].inputs.model_output``; the app writes the call's noise draws into ``calls[i].inputs.noise...``;
- call ``i``, the step: the graph ``calls[i].graph`` of the plan reads ``calls[i].inputs`` and writes
  ``calls[i].outputs`` (every output of the graph has a buffer, needed or not);
- the end: the last sample is in ``buffers.final_sample``.

Each value (an array some event writes) gets a buffer when it is written and keeps it until the last event
reading it, found by following the plan's hand-over (``calls[i].state``): a history slot re-pointed for
many calls keeps its buffer all that time. An event never writes a buffer it reads (ONNX Runtime does not
promise in-place element-wise kernels), and a freed buffer is reused last-freed first (warm in the cache).
"""

from __future__ import annotations

START = "start"


class _Values:
    """Buffers handed to values, each freed after the value's last reader."""

    def __init__(self, last_read: dict):
        self.last_read = last_read
        self.arrays: list[dict] = []  # the buffers' dtype and shape
        self.free: list[int] = []
        self.held: dict = {}  # value -> buffer

    def release_before(self, event: int) -> None:
        for value, buffer in list(self.held.items()):
            if self.last_read.get(value, -1) < event:
                del self.held[value]
                self.free.append(buffer)

    def write(self, value, spec: dict) -> int:
        for k in range(len(self.free) - 1, -1, -1):  # the last freed buffer of this dtype and shape
            if self.arrays[self.free[k]] == spec:
                buffer = self.free.pop(k)
                break
        else:
            buffer = len(self.arrays)
            self.arrays.append(dict(spec))
        self.held[value] = buffer
        return buffer


def input_values(plan: dict) -> list[dict]:
    """Per call, the value each of its step graph's inputs reads, following the plan's hand-over: ``("start",
    "sample")`` (the first sample), ``(j, name)`` (the output ``name`` of call ``j``'s graph, or, for
    ``model_output`` and the noise inputs, what the model and the generator wrote for call ``j``), and under
    ``"model"`` the value the model reads at the call (``("start", "model_input")`` at call 0)."""
    graphs = plan["step_graphs"]
    values = []
    sample, model_input = (START, "sample"), (START, "model_input")
    state: dict = {}
    for i, call in enumerate(plan["calls"]):
        names = [d["name"] for d in graphs[call["graph"]]["inputs"]]
        feed = {"sample": sample, "model_output": (i, "model_output"), **state,
                **{d["input"]: (i, d["input"]) for d in call["noise"]}}
        missing = sorted(set(names) - set(feed))
        if missing:
            raise ValueError(f"call {i}: the plan gives no value for the graph's inputs {missing}")
        values.append({"model": model_input, "step": {n: feed[n] for n in names}})
        written = {d["name"]: (i, d["name"]) for d in graphs[call["graph"]]["outputs"]}
        sample, model_input = written["prev_sample"], written[plan["next_model_input"]]
        state = {name: written.get(source, feed.get(source)) for name, source in call["state"].items()}
    return values


def plan_buffers(plan: dict) -> dict:
    """The ``buffers`` section of a per-call ``plan`` (a plan.json dict without it); see the module."""
    if plan.get("layout") != "per_call":
        raise ValueError(f"a buffer plan is made for layout 'per_call', not {plan.get('layout')!r}")
    graphs = plan["step_graphs"]
    spec = {f: {d["name"]: {"dtype": d["dtype"], "shape": d["shape"]} for d in graphs[f]["inputs"] + graphs[f]["outputs"]}
            for f in graphs}
    calls = plan["calls"]
    # events: 0 the start, 2i + 1 the model of call i, 2i + 2 the step of call i
    reads = input_values(plan)
    sample = (len(calls) - 1, "prev_sample")  # the final sample
    last_read = {}
    for i, r in enumerate(reads):
        last_read[r["model"]] = 2 * i + 1
        for value in r["step"].values():
            last_read[value] = 2 * i + 2
    last_read[sample] = 2 * len(calls) + 1  # the app reads it after the loop

    values = _Values(last_read)
    first = spec[calls[0]["graph"]]
    start = {"sample": values.write((START, "sample"), first["sample"])}
    start["model_input"] = values.write((START, "model_input"), first["sample"])
    out = []
    for i, (call, r) in enumerate(zip(calls, reads)):
        own = spec[call["graph"]]
        values.release_before(2 * i + 1)
        entry = {"model_input": values.held[r["model"]], "inputs": {}, "outputs": {}}
        for name, value in r["step"].items():  # the model's output and the noise: written at the model event
            if value[0] == i:
                values.write(value, own[name])
        values.release_before(2 * i + 2)
        entry["inputs"] = {name: values.held[value] for name, value in r["step"].items()}
        for d in graphs[call["graph"]]["outputs"]:
            entry["outputs"][d["name"]] = values.write((i, d["name"]), own[d["name"]])
        out.append(entry)
    return {"arrays": values.arrays, "sample": start["sample"], "model_input": start["model_input"],
            "final_sample": values.held[sample], "calls": out}


__all__ = ["input_values", "plan_buffers"]
