"""Fuse the exporter's five-op exact GELU into one GELU node of an ONNX graph, or (below
opset 20, which has no Gelu op) reorder it so that ONNX Runtime fuses it at load time.

The dynamo exporter writes `gelu(x)` (erf form) as
`Mul(x, Mul(Add(Erf(Div(x, sqrt(2))), 1), 0.5))`, which ONNX Runtime's own GeluFusion
does not match. `fuse_exact_gelu` replaces exactly that chain, with exactly those
constants, by one `Gelu` node (ONNX opset 20, approximate="none", or `com.microsoft.Gelu`),
and leaves every other node alone. `order_exact_gelu` keeps the five standard ops but
multiplies by x before halving, `Mul(Mul(x, Add(Erf(Div(x, sqrt(2))), 1)), 0.5)`: the
order GeluFusion matches (checked: ONNX Runtime 1.32 then runs one Gelu kernel per GELU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ONNX_FORM, CONTRIB_FORM = "onnx", "com.microsoft"
CONTRIB_DOMAIN = "com.microsoft"
GELU_OPSET = 20  # first ONNX opset with Gelu
# ops whose opset-19/20 revisions only add tensor types: raising the opset leaves them as they are
_TYPE_ONLY_REVISIONS = {"Reshape", "Constant", "Identity", "Shape", "Size"}


@dataclass
class _Graph:
    """Producer/consumer index and scalar constants of one ONNX graph."""

    producer: dict[str, object]
    consumers: dict[str, list]
    constants: dict[str, np.ndarray]
    outputs: set[str]

    @classmethod
    def of(cls, graph) -> "_Graph":
        from onnx import numpy_helper

        producer, consumers = {}, {}
        constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer if int(np.prod(i.dims)) == 1}
        for node in graph.node:
            for name in node.output:
                producer[name] = node
            for name in node.input:
                consumers.setdefault(name, []).append(node)
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                value = [a for a in node.attribute if a.name == "value"]
                if value and int(np.prod(value[0].t.dims)) == 1:
                    constants[node.output[0]] = numpy_helper.to_array(value[0].t)
        return cls(producer, consumers, constants, {o.name for o in graph.output})

    def is_const(self, name: str, value: float) -> bool:
        """`name` is a one-element floating constant exactly equal to `value` in its own dtype."""
        array = self.constants.get(name)
        if array is None or array.dtype.kind != "f":
            return False
        return bool(array.reshape(()) == np.asarray(value, dtype=array.dtype))

    def only_feeds(self, name: str, node) -> bool:
        """`name` is consumed by `node` alone and is not a graph output."""
        users = self.consumers.get(name, [])
        return name not in self.outputs and len(users) == 1 and users[0] is node

    def made_by(self, name: str, op: str):
        """The default-domain `op` node that produces `name`, or None."""
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op and node.domain in ("", "ai.onnx") else None


def _split(node, graph: _Graph, value: float) -> str | None:
    """For a commutative binary op with one input the constant `value`: the other input."""
    if len(node.input) != 2:
        return None
    a, b = node.input
    if graph.is_const(b, value):
        return a
    if graph.is_const(a, value):
        return b
    return None


def _match(mul_out, graph: _Graph) -> tuple[str, list] | None:
    """(x, [div, erf, add, mul_half, mul_out]) if `mul_out` ends an exact-erf GELU, else None."""
    if mul_out.op_type != "Mul" or mul_out.domain not in ("", "ai.onnx") or len(mul_out.input) != 2:
        return None
    for x, inner in (tuple(mul_out.input), tuple(reversed(mul_out.input))):
        half = graph.made_by(inner, "Mul")
        if half is None or not graph.only_feeds(inner, mul_out):
            continue
        add_out = _split(half, graph, 0.5)
        add = graph.made_by(add_out, "Add") if add_out else None
        if add is None or not graph.only_feeds(add_out, half):
            continue
        erf_out = _split(add, graph, 1.0)
        erf = graph.made_by(erf_out, "Erf") if erf_out else None
        if erf is None or not graph.only_feeds(erf_out, add):
            continue
        div = graph.made_by(erf.input[0], "Div")
        if div is None or not graph.only_feeds(erf.input[0], erf):
            continue
        if div.input[0] == x and graph.is_const(div.input[1], math.sqrt(2.0)):
            return x, [div, erf, add, half, mul_out]
    return None


def _gelu_node(x: str, out: str, form: str, name: str):
    from onnx import helper

    if form == ONNX_FORM:
        return helper.make_node("Gelu", [x], [out], name=name, approximate="none")
    return helper.make_node("Gelu", [x], [out], name=name, domain=CONTRIB_DOMAIN)


def _set_opsets(model, form: str) -> None:
    """Raise the default opset to 20 (ONNX form) or import com.microsoft version 1 (contrib form)."""
    from onnx import helper

    if form == ONNX_FORM:
        for opset in model.opset_import:
            if opset.domain in ("", "ai.onnx") and opset.version < GELU_OPSET:
                opset.version = GELU_OPSET
    elif not any(o.domain == CONTRIB_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))


def _drop_unused(graph) -> None:
    """Remove initializers, Constant nodes and value_info entries that nothing refers to any more."""
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    produced = {name for node in graph.node for name in node.output}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    dead = [n for n in graph.node if n.op_type == "Constant" and not set(n.output) & used]
    for node in dead:
        graph.node.remove(node)
    infos = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(infos)


def choose_form(model) -> str:
    """ONNX_FORM when raising the default opset to 20 changes no op the graph uses, else CONTRIB_FORM."""
    import onnx

    current = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if current >= GELU_OPSET:
        return ONNX_FORM
    for op in {n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx")} - _TYPE_ONLY_REVISIONS:
        try:
            same = onnx.defs.get_schema(op, GELU_OPSET).since_version <= current
        except onnx.defs.SchemaError:
            same = False
        if not same:
            return CONTRIB_FORM
    return ONNX_FORM


def _matches(model) -> list[tuple[str, list]]:
    graph = _Graph.of(model.graph)
    return [m for m in (_match(n, graph) for n in model.graph.node) if m is not None]


def order_exact_gelu(model) -> int:
    """Rewrite every exact-erf GELU chain (matched as for fusion) from x·((erf + 1)·½) to
    (x·(erf + 1))·½ in place; return how many.

    The values are the same: multiplying by ½ is exact in binary floating point and
    commutes with rounding, except for results in the subnormal range. The node order is
    kept (the first Mul now takes x, which is computed before the chain starts).
    """
    names = {name for node in model.graph.node for name in node.output}
    matches = _matches(model)
    for x, (_div, _erf, add, half, last) in matches:
        constant = half.input[1] if half.input[0] == add.output[0] else half.input[0]
        product = f"{last.output[0]}_before_half"
        while product in names:
            product += "_"
        names.add(product)
        del half.input[:], last.input[:]
        half.input.extend([x, add.output[0]])
        half.output[0] = product
        last.input.extend([product, constant])
    _drop_unused(model.graph)  # the value_info of each renamed intermediate
    return len(matches)


def fuse_exact_gelu(model, form: str = ONNX_FORM) -> int:
    """Replace every exact-erf five-op GELU in `model.graph` (in place); return how many.

    A chain is replaced only when its constants are exactly sqrt(2), 1 and 0.5, its
    intermediate values feed nothing else, and the Div's numerator is the final Mul's x.
    The opset imports change only when at least one GELU is replaced.
    """
    if form not in (ONNX_FORM, CONTRIB_FORM):
        raise ValueError(f"unknown GELU form {form!r}; use {ONNX_FORM!r} or {CONTRIB_FORM!r}")
    matches = _matches(model)
    if not matches:
        return 0
    nodes = list(model.graph.node)
    removed = set()
    for i, (x, chain) in enumerate(matches):
        last = chain[-1]
        nodes[nodes.index(last)] = _gelu_node(x, last.output[0], form, f"gelu_fused_{i}")
        removed.update(id(n) for n in chain[:-1])
    del model.graph.node[:]
    model.graph.node.extend(n for n in nodes if id(n) not in removed)
    _set_opsets(model, form)
    _drop_unused(model.graph)
    return len(matches)
