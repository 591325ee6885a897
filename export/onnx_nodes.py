"""A small helper for writing ONNX nodes by hand: unique names, constants as initializers."""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper


class Nodes:
    """Nodes and initializers being written, every value named ``prefix`` + a counter.

    ``b.op("Add", x, y)`` appends a node and returns its output's name; ``b.const(array)`` an initializer's.
    """

    def __init__(self, prefix: str):
        self.prefix, self.nodes, self.initializers, self._count = prefix, [], [], 0

    def name(self, hint: str = "v") -> str:
        self._count += 1
        return f"{self.prefix}{hint}{self._count}"

    def const(self, value, dtype=None, hint: str = "c") -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def ops(self, op_type: str, inputs, n_out: int, **attrs) -> list[str]:
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=outs[0], **attrs))
        return outs

    def cast(self, x: str, to: int) -> str:
        return self.op("Cast", x, to=to)


__all__ = ["Nodes"]
