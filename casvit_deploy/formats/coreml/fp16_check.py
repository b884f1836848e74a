"""The fp16 pre-check: which blocks would fp16 arithmetic break, found before conversion.

The float32 model runs once on the images, recording each block's input, output and the
largest |value| any of its modules produces. Then each block runs alone with fp16 emulated
as the MIL reference interpreter does it (weights, input and every module's output rounded to
float16, overflow becoming inf; arithmetic in float32, which is fast on CPU where PyTorch's
float16 kernels are not), on the input it received in float32, so every finding belongs to
the block named, not to error carried in from earlier blocks. A block is flagged when
  - overflow: a value inside it exceeds FP16_MAX in float32, or its fp16 output is not finite;
  - underflow: more than UNDERFLOW_FRACTION of its nonzero float32 outputs become 0 in fp16;
  - precision: its fp16 output's SNR against float32 is below MIN_SNR_DB.
`--fp16-safe` keeps the ops of flagged blocks in fp32 (`keep_fp32_ops` names them).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from casvit_deploy.model.blocks import FINAL_OUTPUT, block_names
from casvit_deploy.numerics import plain, sqnr_db

FP16_MAX = 65504.0
UNDERFLOW_FRACTION = 0.01
MIN_SNR_DB = 30.0  # fp16 blocks of trained-like XS/S/M/T measure 45-60 dB on photographs


@dataclass
class BlockFinding:
    block: str
    problems: list[str]
    max_abs: float
    underflow: float
    snr_db: float

    def to_dict(self) -> dict:
        return {k: plain(v) for k, v in asdict(self).items()}


@dataclass
class Fp16Report:
    images: int
    blocks: int
    findings: list[BlockFinding] = field(default_factory=list)
    max_abs: float = 0.0
    min_snr_db: float = float("inf")
    block_snr_db: dict[str, float] = field(default_factory=dict)  # every block's, flagged or not

    @property
    def flagged(self) -> list[str]:
        return [f.block for f in self.findings]

    def summary(self) -> str:
        if not self.findings:
            return (f"fp16 pre-check: clean ({self.blocks} blocks on {self.images} images: calibration and the gate's inputs; largest "
                    f"|activation| {self.max_abs:.3g}, lowest block SNR {self.min_snr_db:.1f} dB)")
        listed = "; ".join(f"{f.block} ({', '.join(f.problems)})" for f in self.findings)
        return f"fp16 pre-check: {len(self.findings)} of {self.blocks} blocks at risk in fp16: {listed}"

    def to_dict(self) -> dict:
        return {"images": self.images, "blocks": self.blocks, "max_abs": plain(self.max_abs),
                "min_snr_db": plain(self.min_snr_db), "block_snr_db": {b: plain(v) for b, v in self.block_snr_db.items()},
                "findings": [f.to_dict() for f in self.findings],
                "summary": self.summary(), "limits": {"fp16_max": FP16_MAX, "underflow_fraction": UNDERFLOW_FRACTION,
                                                      "min_snr_db": MIN_SNR_DB}}


def _block_modules(model: nn.Module) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    return {name: modules[name] for name in block_names(model) if name in modules}


def _peak(peaks: dict[str, float], block: str, output) -> None:
    for tensor in output if isinstance(output, (tuple, list)) else (output,):
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            peaks[block] = max(peaks[block], float(tensor.abs().max()))


@torch.no_grad()
def _record_fp32(model: nn.Module, blocks: dict[str, nn.Module], images: torch.Tensor):
    """Each block's input and output, and the largest |value| of any module inside it."""
    inputs, outputs, peaks, hooks = {}, {}, {name: 0.0 for name in blocks}, []
    for name, block in blocks.items():
        hooks.append(block.register_forward_pre_hook(lambda m, a, n=name: inputs.__setitem__(n, a[0])))
        hooks.append(block.register_forward_hook(lambda m, a, o, n=name: outputs.__setitem__(n, o)))
        for module in block.modules():
            hooks.append(module.register_forward_hook(lambda m, a, o, n=name: _peak(peaks, n, o)))
    try:
        model(images)
    finally:
        for hook in hooks:
            hook.remove()
    return inputs, outputs, peaks


def _judge(name: str, out16: torch.Tensor, ref: torch.Tensor, peak: float) -> BlockFinding:
    out16, ref = out16.float(), ref.float()
    finite = bool(torch.isfinite(out16).all())
    nonzero = ref != 0
    underflow = float(((out16 == 0) & nonzero).sum() / max(int(nonzero.sum()), 1))
    snr = sqnr_db(out16.numpy(), ref.numpy()) if finite else float("-inf")
    problems = []
    if peak > FP16_MAX or not finite:
        problems.append(f"overflow: max |activation| {peak:.3g} > {FP16_MAX:g}" if peak > FP16_MAX
                        else "overflow: non-finite fp16 output")
    if underflow > UNDERFLOW_FRACTION:
        problems.append(f"underflow: {underflow:.1%} of values become 0")
    if finite and snr < MIN_SNR_DB:
        problems.append(f"SNR {snr:.1f} dB < {MIN_SNR_DB:g} dB")
    return BlockFinding(name, problems, peak, underflow, snr)


def _to_fp16(output):
    if isinstance(output, (tuple, list)):
        return type(output)(_to_fp16(o) for o in output)
    return output.half().float() if isinstance(output, torch.Tensor) and output.is_floating_point() else output


@torch.no_grad()
def run_emulated_fp16(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`block` (not changed) on `x` with weights, input and each module's output held in float16."""
    block = copy.deepcopy(block)
    for tensor in [*block.parameters(), *block.buffers()]:
        if tensor.is_floating_point():
            tensor.copy_(tensor.half().float())
    hooks = [m.register_forward_hook(lambda m, a, o: _to_fp16(o)) for m in block.modules()]
    try:
        return block(_to_fp16(x))
    finally:
        for hook in hooks:
            hook.remove()


def _round_to_fp16(module: nn.Module) -> None:
    """`module`'s own float weights and buffers (not its children's) rounded to float16."""
    for tensor in [*module.parameters(recurse=False), *module.buffers(recurse=False)]:
        if tensor.is_floating_point():
            tensor.copy_(tensor.half().float())


@torch.no_grad()
def run_mixed_fp16(model: nn.Module, images: np.ndarray, fp32_blocks: tuple[str, ...] = (),
                   batch: int = 64) -> np.ndarray:
    """`model`'s output (not changed) on `images` with fp16 emulated as `run_emulated_fp16`
    does it everywhere but inside `fp32_blocks`, whose inputs arrive rounded to float16 as an
    fp16 program feeds them."""
    model = copy.deepcopy(model).float().eval()
    named = dict(model.named_modules())
    inside = {id(sub) for name in fp32_blocks for sub in named[name].modules()}
    hooks = []
    for module in model.modules():
        if id(module) in inside:
            continue
        _round_to_fp16(module)
        if module is not model:
            hooks.append(module.register_forward_hook(lambda m, a, o: _to_fp16(o)))
    try:
        chunks = [model(_to_fp16(torch.from_numpy(np.asarray(images[i:i + batch], np.float32))))
                  for i in range(0, len(images), batch)]
    finally:
        for hook in hooks:
            hook.remove()
    return torch.cat(chunks).numpy()


@torch.no_grad()
def fp16_precheck(model: nn.Module, images: np.ndarray) -> Fp16Report:
    """Run every block of `model` (eval, float32; not changed) alone in emulated fp16 on `images`."""
    model = copy.deepcopy(model).float().eval()
    blocks = _block_modules(model)
    inputs, outputs, peaks = _record_fp32(model, blocks, torch.from_numpy(np.asarray(images, np.float32)))
    report = Fp16Report(len(images), len(blocks))
    for name, block in blocks.items():
        finding = _judge(name, run_emulated_fp16(block, inputs[name]), outputs[name], peaks[name])
        report.max_abs = max(report.max_abs, finding.max_abs)
        report.min_snr_db = min(report.min_snr_db, finding.snr_db)
        report.block_snr_db[name] = finding.snr_db
        if finding.problems:
            report.findings.append(finding)
    return report


def block_of_each_node(program, model: nn.Module) -> dict[str, str]:
    """FX node name -> the block that owns it: the block in its module stack, else (glue
    such as the pooling before the head) the next block in graph order."""
    blocks = [b for b in block_names(model) if b != FINAL_OUTPUT]
    owner, pending = {}, []
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        paths = [path for path, _ in (node.meta.get("nn_module_stack") or {}).values()]
        block = next((b for b in blocks for p in paths if p == b or p.startswith(b + ".")), None)
        if block is None:
            block = FINAL_OUTPUT if any(p == FINAL_OUTPUT or p.startswith(FINAL_OUTPUT + ".") for p in paths) else None
        if block is None:
            pending.append(node.name)
            continue
        owner.update({name: block for name in pending}, **{node.name: block})
        pending = []
    owner.update({name: FINAL_OUTPUT for name in pending})
    return owner


def keep_fp32_ops(program, model: nn.Module, blocks: list[str]) -> set[str]:
    """FX node names (= MIL op names) of every op in `blocks`."""
    wanted = set(blocks)
    return {name for name, block in block_of_each_node(program, model).items() if block in wanted}


def fp16_selector(names: set[str]):
    """coremltools op selector: True (compute in fp16) unless the op is one of `names`.
    A MIL op carries its FX node's name, or that name with "_0" when one node became
    several ops (the head's `linear` -> `linear_0`)."""
    def select(op) -> bool:
        name = op.name[:-2] if op.name.endswith("_0") and op.name[:-2] in names else op.name
        return name not in names and op.outputs[0].name not in names

    return select
