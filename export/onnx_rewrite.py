"""Rewrites of an exported ONNX graph for small-memory ONNX Runtime runs, in place in an export folder.

``compress_onnx_weights(path)``: weight-only int8. Every float32 weight of a ``Conv``, ``MatMul`` or
``Gemm`` (an initializer of at least ``MIN_ELEMENTS`` values) is stored as int8 with one float32 scale
per output channel (symmetric: scale = max |w| / 127 over the channel, zero point 0) and read through a
``DequantizeLinear`` placed right before its first consumer. Activations stay float32. The graph is
marked ``edge_sched.weights = int8-dequantize`` (metadata), which tells our runtime to run it in an order
that keeps one dequantized weight alive at a time (``edge_sched/runtime/onnxruntime_engine.py``): ONNX
Runtime does not constant-fold these nodes, so the weights stay int8 in memory (a quarter of float32).
Embedding tables (``Gather``) and small tensors (norms, biases) keep float32. Other ONNX Runtime hosts should
run these graphs at the "basic" optimization level too: at "all" it turns DequantizeLinear + MatMul into its
MatMulNBits, which holds the weights repacked and computes differently (tests/export/test_onnx_rewrite.py).

``fuse_attention(path)``: the attention core torch exports for ``scaled_dot_product_attention``
(q and k each scaled by sqrt(1 / sqrt(head_dim)), MatMul, Softmax, MatMul, with their head reshapes and
transposes) becomes one ``com.microsoft.MultiHeadAttention`` on the [batch, tokens, channels]
projections. ONNX Runtime's CPU kernel for it is a tiled (flash) attention: it never holds the
[batch, heads, tokens, tokens] score matrix, 512 MB per image for SD1.5's 64x64 latents. The graph then
needs ONNX Runtime (OpenVINO does not read com.microsoft operators). Attention with a mask or a
custom scale (a different pattern) is left as it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edge_sched.runtime.onnxruntime_engine import INT8_WEIGHTS_METADATA

from .errors import ExportError


#: graph metadata key (and value) for weight-only int8 through DequantizeLinear: the runtime's, which reads it
WEIGHTS_KEY, INT8_DEQUANTIZE = INT8_WEIGHTS_METADATA
#: smaller weights (biases, norms, tiny convs) are not worth a node each
MIN_ELEMENTS = 4096
#: where the weight input sits and its output-channel axis, per consumer
_WEIGHT_AXIS = {"Conv": lambda node: 0, "MatMul": lambda node: -1,
                "Gemm": lambda node: 0 if _attr(node, "transB", 0) else 1}
#: ONNX Runtime's contrib operators
_MS_DOMAIN = "com.microsoft"
EXTERNAL_DATA_BYTES = 1_800_000_000  # below protobuf's 2 GB limit for one message


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _load(path: Path) -> tuple[onnx.ModelProto, list[str]]:
    """The model with its weights, and the external data files it read (to be replaced when saved)."""
    model = onnx.load(str(path), load_external_data=False)
    files = sorted({e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"})
    onnx.load_external_data_for_model(model, str(path.parent))
    return model, files


def save_onnx_over(model: onnx.ModelProto, path: Path, old_files, limit: int | None = None) -> None:
    """Save ``model`` over ``path`` (inside an export's temporary folder: a failure discards the whole folder),
    after deleting the external data files it was read from (``old_files``: onnx refuses to write over one; their
    contents are in memory now). The weights go to one ``<name>_data`` file when the graph had external data or is
    larger than ``limit`` bytes (default ``EXTERNAL_DATA_BYTES``)."""
    for name in old_files:
        (path.parent / name).unlink(missing_ok=True)
    if old_files or model.ByteSize() > (EXTERNAL_DATA_BYTES if limit is None else limit):
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=path.name + "_data", size_threshold=1024)
    else:
        onnx.save(model, str(path))


def _set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    for p in model.metadata_props:
        if p.key == key:
            p.value = value
            return
    model.metadata_props.add(key=key, value=value)


def quantize_per_channel(weight: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(int8 values, float32 scale per index of ``axis``), symmetric, so that q * scale ~ weight."""
    others = tuple(i for i in range(weight.ndim) if i != axis)
    scale = (np.abs(weight).max(axis=others) / np.float32(127)).astype(np.float32)
    scale[scale == 0] = 1  # an all-zero channel: any scale gives zeros
    shape = [1] * weight.ndim
    shape[axis] = -1
    q = np.clip(np.rint(weight / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def compress_onnx_weights(path: Path) -> dict:
    """Weight-only int8 for the graph at ``path`` (see the module doc); returns counts and sizes."""
    path = Path(path)
    model, old_files = _load(path)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:  # raising the opset would change other operators' meaning
        raise ExportError(f"{path}: opset {opset}; int8 weights need opset 13 or later (per-channel DequantizeLinear)")
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    axes: dict[str, set] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in inits:
                rule = _WEIGHT_AXIS.get(node.op_type)
                axes.setdefault(name, set()).add(rule(node) if rule and i == 1 else None)
    chosen = {}
    graph_inputs = {i.name for i in graph.input}  # old-style graphs list initializers as inputs: left float
    for name, found in axes.items():
        t = inits[name]
        if len(found) != 1 or None in found or t.data_type != onnx.TensorProto.FLOAT or name in graph_inputs:
            continue  # also used as something else than a weight (or by two layouts): left float
        weight = numpy_helper.to_array(t)
        if weight.size >= MIN_ELEMENTS and weight.ndim >= 2:
            chosen[name] = (weight, next(iter(found)) % weight.ndim)
    if not chosen:  # a tiny graph: nothing worth it, left as it is
        return {"weights": 0, "float32_mb": 0.0, "int8_mb": 0.0}
    before = after = 0
    kept = [t for t in graph.initializer if t.name not in chosen]
    added = []
    for name, (weight, axis) in chosen.items():
        q, scale = quantize_per_channel(weight, axis)
        added += [numpy_helper.from_array(q, f"{name}.int8"), numpy_helper.from_array(scale, f"{name}.scale")]
        before, after = before + weight.nbytes, after + q.nbytes + scale.nbytes
    del graph.initializer[:]
    graph.initializer.extend(kept + added)
    # each DequantizeLinear right before its weight's first consumer: in ONNX Runtime's priority order
    # it then runs just before it is needed, not all at the start
    nodes, placed = [], set()
    for node in graph.node:
        for name in node.input:
            if name in chosen and name not in placed:
                nodes.append(helper.make_node("DequantizeLinear", [f"{name}.int8", f"{name}.scale"], [name],
                                              name=f"{name}/dequantize", axis=chosen[name][1]))
                placed.add(name)
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    _set_metadata(model, WEIGHTS_KEY, INT8_DEQUANTIZE)
    save_onnx_over(model, path, old_files)
    return {"weights": len(chosen), "float32_mb": before / 2**20, "int8_mb": after / 2**20}


# ---------------------------------------------------------------------------- attention
class _Graph:
    def __init__(self, graph):
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in graph.node:
            for x in n.input:
                self.consumers.setdefault(x, []).append(n)

    def made_by(self, name, op):
        n = self.producer.get(name)
        return n if n is not None and n.op_type == op else None

    def only_use(self, name, op):
        uses = self.consumers.get(name, [])
        return uses[0] if len(uses) == 1 and uses[0].op_type == op else None

    def constant(self, name):
        n = self.producer.get(name)
        return numpy_helper.to_array(_attr(n, "value")) if n is not None and n.op_type == "Constant" else None

    def heads(self, x, perm):
        """(projection [B, S, C], heads) when ``x`` is Transpose(perm) of Reshape(projection, [b, s, H, d])."""
        t = self.made_by(x, "Transpose")
        r = t and self.made_by(t.input[0], "Reshape")
        if r is None or list(_attr(t, "perm")) != perm:
            return None
        shape = self.made_by(r.input[1], "Concat")
        h = self.constant(shape.input[2]) if shape is not None and len(shape.input) == 4 else None
        if h is None or np.size(h) != 1:
            return None
        return r.input[0], int(np.reshape(h, ()))


def _match_attention(g: _Graph, softmax):
    """The nodes of one SDPA core ending at ``softmax`` and the fused node's wiring, or None."""
    scores = g.made_by(softmax.input[0], "MatMul")
    apply = g.only_use(softmax.output[0], "MatMul")
    if scores is None or apply is None or apply.input[0] != softmax.output[0] or _attr(softmax, "axis", -1) != -1:
        return None
    q_mul, k_mul = g.made_by(scores.input[0], "Mul"), g.made_by(scores.input[1], "Mul")
    roots = [g.made_by(m.input[1], "Sqrt") if m is not None else None for m in (q_mul, k_mul)]
    if None in roots or roots[0].input[0] != roots[1].input[0]:
        return None  # only the default scale (sqrt of one value computed from the head size): a custom one differs
    q, k, v = g.heads(q_mul.input[0], [0, 2, 1, 3]), g.heads(k_mul.input[0], [0, 2, 3, 1]), g.heads(apply.input[1], [0, 2, 1, 3])
    merge = g.only_use(apply.output[0], "Transpose")
    out = merge and g.only_use(merge.output[0], "Reshape")
    if None in (q, k, v) or out is None or list(_attr(merge, "perm")) != [0, 2, 1, 3] or not q[1] == k[1] == v[1]:
        return None
    return [softmax, scores, apply, q_mul, k_mul, merge, out], (q[0], k[0], v[0]), q[1], out.output[0]


def fuse_attention(path: Path) -> int:
    """Fuse every torch SDPA core in the graph at ``path`` into MultiHeadAttention (module doc); returns how
    many. The head size comes from the query projection's weight (channels / heads)."""
    path = Path(path)
    model, old_files = _load(path)
    graph = model.graph
    g = _Graph(graph)
    weights = {t.name: tuple(t.dims) for t in graph.initializer}
    replace, drop = {}, set()
    for softmax in [n for n in graph.node if n.op_type == "Softmax"]:
        found = _match_attention(g, softmax)
        if found is None:
            continue
        nodes, (q, k, v), heads, out = found
        projection = g.made_by(q, "MatMul")
        channels = weights.get(projection.input[1], (None, None))[-1] if projection is not None else None
        if not channels or channels % heads:
            continue
        fused = helper.make_node("MultiHeadAttention", [q, k, v], [out], domain=_MS_DOMAIN, name=f"{softmax.name}/fused",
                                 num_heads=heads, scale=float(1 / np.sqrt(channels // heads)))
        replace[id(nodes[-1])] = fused
        drop |= {id(n) for n in nodes}
    if replace:
        kept = [replace.get(id(n), n) for n in graph.node if id(n) in replace or id(n) not in drop]
        del graph.node[:]
        graph.node.extend(kept)
        _prune(graph)
        if not any(o.domain == _MS_DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(_MS_DOMAIN, 1))
        save_onnx_over(model, path, old_files)
    return len(replace)


def _subgraph_inputs(graph) -> set:
    """Every name a node inside an If / Loop / Scan body reads (outer-scope values among them)."""
    names = set()
    for node in graph.node:
        for a in node.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                names |= {x for n in sub.node for x in n.input} | _subgraph_inputs(sub)
    return names


def _prune(graph) -> None:
    """Drop the nodes and initializers nothing reads any more (the scale's shape arithmetic)."""
    needed = {o.name for o in graph.output} | _subgraph_inputs(graph)
    kept = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)
