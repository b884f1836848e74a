"""Which tensor of a converted `.tflite` file holds each block's output.

The converter names a tensor after the chain of modules that produced it: one
`{qualified class}_{attribute}` segment per module, joined by "/" (the root's class first;
fused ops' names joined by ";", the first is the op's own), e.g.
`casvit_deploy.model.casvit.CASViT/torch.nn.modules.container.Sequential_6/
casvit_deploy.model.casvit.AdditiveBlock_1;2` is an output of `network.6.1`. A segment
alone can be ambiguous (`Sequential_0` is `network.0` or any child named 0), so chains are
matched against those of the `torch.export` program the file was converted from (its
nodes' `nn_module_stack`). A block's output is the output of the last op, in execution
order, whose tensor lies inside the block (a TRANSPOSE excepted: it only changes the
layout, and every other tensor inside the file is NHWC).
"""

from __future__ import annotations

SKIPPED_OPS = ("TRANSPOSE",)


def _class_name(kind) -> str:
    return kind if isinstance(kind, str) else f"{kind.__module__}.{kind.__qualname__}"


def module_chains(program) -> dict[tuple[str, ...], str]:
    """Segment chain (below the root) -> module path, for every module the program calls."""
    chains = {}
    for node in program.graph.nodes:
        chain: tuple[str, ...] = ()
        for path, kind in (node.meta.get("nn_module_stack") or {}).values():
            if path:
                chain += (f"{_class_name(kind)}_{path.rsplit('.', 1)[-1]}",)
                chains[chain] = path
    return chains


def module_path(tensor_name: str, chains: dict[tuple[str, ...], str]) -> str | None:
    """The module that produced a tensor, from its name; None for tensors no module made
    (inputs, constants) or names that do not follow the converter's convention."""
    segments = tensor_name.split(";")[0].split("/")
    for start in range(len(segments)):
        for end in range(len(segments), start, -1):
            found = chains.get(tuple(segments[start:end]))
            if found is not None:
                return found
    return None


def _inside(path: str, block: str) -> bool:
    return path == block or path.startswith(block + ".")


def block_tensors(ops: list[tuple[str, list[int]]], names: list[str], chains: dict[tuple[str, ...], str],
                  blocks: list[str]) -> dict[str, int]:
    """Block -> index of the tensor holding its output (blocks with no tensor left out).
    `ops`: (op name, output tensors) in execution order; `names`: tensor names by index."""
    found: dict[str, int] = {}
    for op, outputs in ops:
        if op in SKIPPED_OPS:
            continue
        for tensor in outputs:
            path = module_path(names[tensor], chains)
            for block in blocks if path else ():
                if _inside(path, block):
                    found[block] = tensor
    return found
