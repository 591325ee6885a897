"""Putting one ONNX graph inside another: every value renamed, opsets reconciled.

``spliced(graph, prefix, bind)`` copies a graph's nodes (subgraphs of If / Loop included) with every
value name prefixed, except the graph inputs named in ``bind``, which become the given outer values.
The graph's initializers come back renamed; the caller places them (next to the nodes, or in an outer
scope, which ONNX lets a subgraph read).

``opset_for(models, at_least)``: the default-domain opset one model holding all of them must import,
checked: every operator they use must have the same definition (``since_version``) at that opset as
at the opset its own model imports, or the splice would silently change what the operator means
(ONNX redefines some operators between opsets, e.g. the Reduce* axes in 18).
"""

from __future__ import annotations

import onnx
from onnx import defs

from .errors import ExportError


def _rename_graph(graph: onnx.GraphProto, rename) -> None:
    """In place: every value name (node inputs and outputs, the graph's inputs, outputs, initializers and
    value infos) through ``rename``, in this graph and in every subgraph."""
    for value in (*graph.input, *graph.output, *graph.value_info):
        value.name = rename(value.name)
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for sparse in graph.sparse_initializer:
        sparse.values.name = rename(sparse.values.name)
        sparse.indices.name = rename(sparse.indices.name)
    for node in graph.node:
        node.input[:] = [rename(n) if n else n for n in node.input]
        node.output[:] = [rename(n) if n else n for n in node.output]
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename_graph(attr.g, rename)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    _rename_graph(g, rename)


def spliced(graph: onnx.GraphProto, prefix: str, bind: dict[str, str]):
    """(nodes, initializers, value_infos, outputs) of ``graph`` renamed for another graph: input ``k`` of
    ``bind`` reads the outer value ``bind[k]``; every other name gets ``prefix``. ``outputs``: the new
    names of the graph's outputs, in order. Inputs not bound must be initializers (constants).
    ``graph`` itself is renamed in place (a UNet's weights are not copied): pass one you are done with."""
    inputs = {v.name for v in graph.input}
    unbound = sorted(inputs - set(bind) - {t.name for t in graph.initializer})
    if unbound:
        raise ExportError(f"{graph.name}: inputs {', '.join(unbound)} are not fed")
    g = graph

    def rename(name: str) -> str:
        return bind[name] if name in bind else prefix + name

    _rename_graph(g, rename)
    for i, node in enumerate(g.node):
        node.name = f"{prefix}{node.name or node.op_type + str(i)}"
    return list(g.node), list(g.initializer), list(g.value_info), [v.name for v in g.output]


def all_nodes(graph: onnx.GraphProto):
    """Every node of ``graph`` and of its subgraphs (If branches, Loop bodies), depth first."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for g in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else
                      attr.graphs if attr.type == onnx.AttributeProto.GRAPHS else []):
                yield from all_nodes(g)


def _inputs_read(graph: onnx.GraphProto) -> set[str]:
    """Every value name a node of ``graph`` or of its subgraphs reads."""
    return {name for node in all_nodes(graph) for name in node.input}


def drop_unused_initializers(graph: onnx.GraphProto) -> None:
    """In place: the graph's initializers that no node (nor a subgraph) reads."""
    read = _inputs_read(graph) | {v.name for v in graph.output}
    kept = [t for t in graph.initializer if t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _op_types(graph: onnx.GraphProto, domain: str = "") -> set[str]:
    domains = (domain, "ai.onnx" if domain == "" else domain)
    return {node.op_type for node in all_nodes(graph) if node.domain in domains}


def default_opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    raise ExportError(f"{model.graph.name}: imports no default-domain opset")


# operators whose new versions up to opset 21 only added tensor types (or attributes whose defaults keep
# the old meaning: Cast's saturate, for float8 only), by onnx's Changelog
_TYPE_ONLY = {"Cast", "Constant", "ConstantOfShape", "Equal", "Flatten", "Identity", "If", "IsNaN", "Loop", "Reshape",
              "Shape", "Size", "Squeeze", "Transpose", "Unsqueeze"}


def changed_ops(model: onnx.ModelProto, target: int) -> list[str]:
    """Operators of ``model`` whose meaning at opset ``target`` may differ from the one at the model's opset."""
    own = default_opset(model)
    changed = []
    for op in sorted(_op_types(model.graph)):
        try:
            before = defs.get_schema(op, own, "").since_version
            after = defs.get_schema(op, target, "").since_version
        except defs.SchemaError:
            changed.append(op)
            continue
        if before != after and not (op in _TYPE_ONLY and target <= 21 and before >= 13):
            changed.append(op)
    return changed


def opset_for(models: dict[str, onnx.ModelProto], at_least: int) -> int:
    """The default opset for one model holding ``models`` (label -> model), at least ``at_least``;
    refuses an operator whose meaning the common opset would change."""
    target = max([at_least, *(default_opset(m) for m in models.values())])
    for label, model in models.items():
        changed = changed_ops(model, target)
        if changed:
            raise ExportError(
                f"the {label} graph imports opset {default_opset(model)} and uses {', '.join(changed)}, which "
                f"opset {target} (needed by the loop graph) defines differently; re-export it with opset "
                f"{target} or later"
            )
    foreign = sorted({(o.domain, o.version) for m in models.values() for o in m.opset_import
                      if o.domain not in ("", "ai.onnx")})
    domains = {}
    for domain, version in foreign:
        if domains.setdefault(domain, version) != version:
            raise ExportError(f"the graphs import two versions of the operator domain {domain!r}")
    return target


def foreign_opsets(models) -> list[onnx.OperatorSetIdProto]:
    """The non-default operator domains the models import (com.microsoft...), once each."""
    seen = {}
    for model in models:
        for o in model.opset_import:
            if o.domain not in ("", "ai.onnx"):
                seen[o.domain] = o.version
    return [onnx.helper.make_opsetid(d, v) for d, v in sorted(seen.items())]


__all__ = ["changed_ops", "default_opset", "drop_unused_initializers", "foreign_opsets", "opset_for", "spliced"]
