"""Where each model block's output lives in a converted MIL program.

The export manifest names each block's output by its `torch.export` (FX) node. coremltools
names an op's output after the FX node that produced it, with two kinds of change:
- the fp16 pass appends "_cast_fp16" (e.g. "add_3" -> "add_3_cast_fp16");
- fused or aliasing nodes vanish: a BatchNorm's output is the FX node `getitem_N`, but
  MIL names the (conv+BN fused) op after the `_native_batch_norm_legit_no_training_M`
  node, and an output renamed at conversion no longer carries its FX name.
A name that cannot be found is mapped to the nearest surviving equivalent where one is
known: the final block to the program's output, or in a classifier (softmax, then
`classify`) to the softmax's input, the logits; a `getitem` (a BatchNorm result, as in an
upstream-form stage embedding) to the first point after the previous block where the
whole computation passes through one value that feeds more than one op (the input of the
next residual block, which is this block's output). Such mappings are listed in
`approximate`; every other missing name is listed in `unmapped`, never guessed.

In a program with quantized activations (W8A8), a value that is quantized is read after
its quantize/dequantize pair, where an op other than add reads it: coremltools'
scale normalization rewrites `add(dequantize(x, sx), dequantize(y, sy))` into an add of
y-units (its output, still named after the FX node, is the sum divided by sy, the factor
folded into the next quantize's scale), so the named value is not the block output; the
dequantized value the next block's conv reads is (int8-rounded). Listed in `approximate`.
"""

from __future__ import annotations

from collections.abc import Mapping

FP16_SUFFIX = "_cast_fp16"
ALIAS_PREFIX = "getitem"  # FX nodes that pick one result of a multi-output op


class BlockVars(dict):
    """Block name -> MIL variable name, in block order, with notes on inexact mappings."""

    def __init__(self):
        super().__init__()
        self.approximate: dict[str, str] = {}  # block -> why the mapping is not by name
        self.unmapped: dict[str, str] = {}     # block -> why it could not be mapped


class _Dataflow:
    """Program order, consumers and single-value cut points of a MIL function."""

    def __init__(self, fn):
        ops = [op for op in fn.operations if op.op_type != "const"]
        self.vars = {var.name: var for op in ops for var in op.outputs}
        self.position = {name: -1 for name in fn.inputs}
        consumers: dict[str, int] = {}
        last_use: dict[str, int] = {}
        for i, op in enumerate(ops):
            for var in op.outputs:
                self.position[var.name] = i
            for var in op.inputs.values():
                for v in var if isinstance(var, (list, tuple)) else (var,):
                    consumers[v.name] = consumers.get(v.name, 0) + 1
                    last_use[v.name] = i
        self.outputs = [v.name for v in fn.outputs]
        for name in self.outputs:
            last_use[name] = len(ops)
        self.consumers = consumers
        self.cuts = self._cuts(ops, last_use)

    def _cuts(self, ops, last_use) -> list[str]:
        """Variables that are, right after they are produced, the only live value."""
        delta = [0] * (len(ops) + 2)  # delta[i + 1]: change in live values after op i
        for name, pos in self.position.items():
            end = last_use.get(name, pos)
            if end > pos:
                delta[pos + 1] += 1
                delta[end + 1] -= 1
        cuts, live = [], delta[0]
        for i, op in enumerate(ops):
            live += delta[i + 1]
            names = [v.name for v in op.outputs]
            if live == 1 and len(names) == 1 and last_use.get(names[0], i) > i:
                cuts.append(names[0])
        return cuts

    def next_block_input(self, after: int) -> str | None:
        """The first cut after program position `after` that feeds more than one op."""
        for name in self.cuts:
            if self.position[name] > after and self.consumers.get(name, 0) > 1:
                return name
        return None


def classifier_logits(fn) -> str | None:
    """In a program that ends in softmax (then casts) and `classify`: the softmax's input."""
    op = fn.outputs[0].op if fn.outputs else None
    if op is None or op.op_type != "classify":
        return None
    var = op.inputs["probabilities"]
    while var.op is not None and var.op.op_type == "cast":
        var = var.op.inputs["x"]
    return var.op.inputs["x"].name if var.op is not None and var.op.op_type == "softmax" else None


REQUANTIZED = ("quantize", "dequantize")
RESCALED_READERS = ("add", "sub")  # binary ops whose dequantize scales coremltools may normalize


def _as_read(var) -> str | None:
    """For a value whose one consumer is a `quantize`: the output of a `dequantize` of it
    that feeds an op other than add/sub (its scale is the value's own), else None."""
    consumers = list(var.child_ops)
    if len(consumers) != 1 or consumers[0].op_type != REQUANTIZED[0]:
        return None
    for op in consumers[0].outputs[0].child_ops:
        readers = list(op.outputs[0].child_ops)
        if op.op_type == REQUANTIZED[1] and readers and not any(r.op_type in RESCALED_READERS for r in readers):
            return op.outputs[0].name
    return None


def _by_name(fx_name: str, names: Mapping[str, int]) -> str | None:
    for candidate in (fx_name, fx_name + FP16_SUFFIX):
        if candidate in names:
            return candidate
    return None


def block_vars(program, block_outputs: Mapping[str, str], function: str = "main") -> BlockVars:
    """Map each block (manifest "block_outputs": block -> FX node) to its MIL variable."""
    fn = program.functions[function]
    flow = _Dataflow(fn)
    logits = classifier_logits(fn)
    result = BlockVars()
    blocks = list(block_outputs.items())
    previous = -1
    for index, (block, fx_name) in enumerate(blocks):
        var = _by_name(fx_name, flow.position)
        if var is None and index == len(blocks) - 1 and logits is not None:
            var = logits
            result.approximate[block] = f"FX node {fx_name!r} not in the program; using the classifier's logits"
        elif var is None and index == len(blocks) - 1 and len(flow.outputs) == 1:
            var = flow.outputs[0]
            result.approximate[block] = f"FX node {fx_name!r} not in the program; using the program output"
        elif var is None and fx_name.startswith(ALIAS_PREFIX):
            var = flow.next_block_input(previous)
            if var is not None:
                result.approximate[block] = (f"FX node {fx_name!r} not in the program; using {var!r}, "
                                             "the next single value that feeds more than one op")
        if var is None or flow.position[var] < previous:
            result.unmapped[block] = f"FX node {fx_name!r} has no equivalent in the MIL program"
            continue
        read = _as_read(flow.vars[var]) if var in flow.vars else None
        if read is not None:
            result.approximate[block] = f"quantized activation: read as {read!r}, after its quantize/dequantize"
            var = read
        result[block] = var
        previous = flow.position[var]
    return result
