"""Safe checkpoint reading: weights only, never code, one-line errors for bad files.

Accepted: official training checkpoints (`model`, optional `model_ema`, `optimizer`,
`epoch`, `scaler`, `args` as an `argparse.Namespace`), bare state dicts, `state_dict`-keyed
files (mmcv/mmdet/mmseg detection and segmentation: the `backbone.` keys are loaded, the
others counted and reported as ignored), keys prefixed `module.`/`_orig_mod.`, and
`.safetensors`. The only class allowed through the unpickler is `argparse.Namespace`.

Everything read is untrusted: any failure of the unpickler is a CheckpointError, and the
state dict is checked before a model sees it (string keys; dense, real floating-point tensors
whose storage holds their data and whose values training can produce: finite, within
MAX_MAGNITUDE, variances not negative; the shapes the architecture needs).
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from casvit_deploy.errors import CheckpointError, first_line
from casvit_deploy.model.casvit import CASViT
from casvit_deploy.model.factory import build_model
from casvit_deploy.model.variants import VARIANTS

SAFE_GLOBALS = [argparse.Namespace]
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
BACKBONE_PREFIX = "backbone."
STATE_DICT_KEYS = ("model", "state_dict", "model_ema", "state_dict_ema")
WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
COUNTERS = ("num_batches_tracked",)  # integer buffers that carry no weights
MAX_CLASSES = 100_000
TEXT_BYTES = frozenset(range(32, 127)) | {9, 10, 13}
MAX_MAGNITUDE = 1e10  # the largest |value| a trained weight or BN statistic can have (see _value_problem)
DENSE_RULE = "a CAS-ViT weight must be a dense floating-point tensor"
VALUE_RULE = "no usable trained model holds that: use another checkpoint (download it again if it should be good)"


@dataclass
class CheckpointInfo:
    """What a checkpoint is, as read from its contents."""

    path: str
    sha256: str
    variant: str
    num_classes: int
    distillation: bool
    fork_feat: bool
    has_ema: bool
    used_ema: bool
    epoch: int | None = None
    input_size: int | None = None
    extra: dict = field(default_factory=dict)
    ignored_keys: dict[str, int] = field(default_factory=dict)  # outside `backbone.`, by first name

    @property
    def notes(self) -> list[str]:
        """What a user should know about how the file was read (e.g. the keys left out)."""
        if not self.ignored_keys:
            return []
        parts = ", ".join(f"{name} ({n})" for name, n in sorted(self.ignored_keys.items(), key=lambda i: -i[1]))
        total = sum(self.ignored_keys.values())
        return [f"{Path(self.path).name}: loaded the backbone, ignored {total} key{'s' * (total != 1)} "
                f"outside 'backbone.': {parts}"]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sniff_foreign(path: Path, head: bytes) -> str | None:
    """A description of `head` when it is plainly not a checkpoint, else None."""
    if head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8\xff") or head.startswith(b"GIF8"):
        return "an image"
    if path.suffix == ".onnx" or (head[:1] == b"\x08" and b"onnx" in head[:64].lower()):
        return "an ONNX model"
    if head[4:8] == b"ET12" or path.suffix == ".pte":
        return "an ExecuTorch program"
    if path.suffix in (".mlpackage", ".mlmodel"):
        return "a CoreML model"
    if set(head) <= TEXT_BYTES:
        return "a text file"
    return None


def _read_torch(path: Path) -> object:
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found is None:
            raise CheckpointError(f"{path} is truncated or corrupt (not a readable pickle); download it again") from None
        raise CheckpointError(
            f"refused {path}: it asks the unpickler for {found.group(1)}, which a weights-only "
            "checkpoint never needs (nothing was executed); re-save it with torch.save(state_dict)"
        ) from None
    except Exception as err:  # noqa: BLE001  the unpickler fails on malformed data in many ways
        raise CheckpointError(f"{path} is truncated or corrupt ({_reason(err)}); download it again") from None


def _reason(err: Exception) -> str:
    """The first line of an exception, with its type when the message alone says little."""
    text = first_line(err, 120)
    if isinstance(err, (RuntimeError, EOFError, ValueError, OSError)) or text == type(err).__name__:
        return text
    return f"{type(err).__name__}: {text}"


def _read_safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001  malformed headers fail in many ways
        raise CheckpointError(f"{path} is not a valid safetensors file ({_reason(err)}); download it again") from None


def read_raw(path: Path) -> object:
    """The deserialised contents of `path`, read without executing any code."""
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path")
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise CheckpointError(f"{path} is empty; download it again")
    foreign = _sniff_foreign(path, head)
    if foreign:
        raise CheckpointError(f"{path} is {foreign}, not a PyTorch checkpoint; pass a .pth/.pt/.safetensors file")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    return _read_torch(path)


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def select_state_dict(raw: object, path: Path, ema: bool) -> tuple[dict, bool, bool]:
    """(state dict, EMA weights present, EMA weights used) from a checkpoint's contents."""
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} holds a {type(raw).__name__}, not a state dict or training checkpoint")
    has_ema = _is_state_dict(raw.get("model_ema")) or _is_state_dict(raw.get("state_dict_ema"))
    if ema and not has_ema:
        raise CheckpointError(f"{path} has no EMA weights (no 'model_ema' key); drop --ema")
    order = ("model_ema", "state_dict_ema") if ema else ("model", "state_dict")
    for key in order:
        if _is_state_dict(raw.get(key)):
            return raw[key], has_ema, ema
    if _is_state_dict(raw):
        return raw, False, False
    raise CheckpointError(
        f"{path} has no state dict: expected a 'model' or 'state_dict' entry of tensors "
        f"or a bare state dict (found keys: {', '.join(map(str, list(raw)[:6]))})"
    )


def check_tensors(state_dict: dict, path: Path) -> None:
    """CheckpointError naming the first entry that cannot be a CAS-ViT weight: a key that is
    not a string; a sparse, meta, quantized or non-floating-point tensor (integer counters
    aside); a tensor whose storage is smaller than its data; a value no training produces
    (see `_value_problem`)."""
    for key, tensor in state_dict.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: state dict key {key!r:.40} is not a string (parameter names are)")
        _refuse(path, key, _tensor_problem(key, tensor))
    weights = [(k, t) for k, t in state_dict.items() if t.dtype in WEIGHT_DTYPES and t.numel()]
    if weights and not _all_plausible(weights):
        for key, tensor in weights:
            _refuse(path, key, _value_problem(key, tensor), VALUE_RULE)


def _refuse(path: Path, key: str, problem: str | None, rule: str = DENSE_RULE) -> None:
    if problem:
        raise CheckpointError(f"{path}: tensor {key[:120]} {problem}; {rule}")


def _is_variance(key: str) -> bool:
    return key.endswith(".running_var")


def _all_plausible(weights: list[tuple[str, torch.Tensor]]) -> bool:
    """No value of `weights` that `_value_problem` refuses, checked over their values joined
    (hundreds of small per-tensor ops cost far more than one large one; NaN fails every
    comparison)."""
    low, high = torch.aminmax(torch.cat([t.reshape(-1).float() for _, t in weights]))
    variances = [t.reshape(-1).float() for k, t in weights if _is_variance(k)]
    return (bool(-MAX_MAGNITUDE <= low) and bool(high <= MAX_MAGNITUDE)
            and (not variances or bool(torch.cat(variances).min() >= 0)))


def _value_problem(key: str, tensor: torch.Tensor) -> str | None:
    """What no training produces: NaN or Inf; a magnitude above MAX_MAGNITUDE; a negative
    BatchNorm running variance. None if the values are plausible.

    MAX_MAGNITUDE (1e10) sits orders of magnitude above anything training gives: an optimizer
    step moves a weight by about the learning rate (AdamW; 1e-3 to 1e-2 in CAS-ViT's recipes),
    and BatchNorm statistics are moments of activations that float32 inference must hold, so a
    larger value is corruption (a flipped exponent bit) or a crafted file. It is far above
    float16's 65504 on purpose: trained-like weights past fp16's range are the fp16 pre-check's
    business (it names the blocks, --fp16-safe keeps them in fp32), not a bad checkpoint. And
    the square of a value within it (variances, CATM's product of two branches) still fits
    float32 (1e20 < 3.4e38), where 3e38 itself overflows at the first product."""
    values = tensor.detach().double()
    if not bool(torch.isfinite(values).all()):
        return f"holds {int((~torch.isfinite(values)).sum())} NaN/Inf value(s)"
    largest = float(values.abs().max())
    if largest > MAX_MAGNITUDE:
        return f"holds a value of magnitude {largest:.3g}, beyond the {MAX_MAGNITUDE:.0e} trained weights stay within"
    if _is_variance(key) and float(values.min()) < 0:
        return f"holds a negative variance ({float(values.min()):.3g})"
    return None


def _tensor_problem(key: str, tensor: torch.Tensor) -> str | None:
    """What makes `tensor` unusable as a weight, apart from its values; None if nothing."""
    if tensor.layout is not torch.strided:
        return f"has layout {tensor.layout} (sparse)"
    if tensor.is_meta:
        return "is a meta tensor (it has no data)"
    if tensor.is_quantized:
        return f"is quantized ({tensor.dtype})"
    if key.rsplit(".", 1)[-1] in COUNTERS:
        return None
    if tensor.dtype not in WEIGHT_DTYPES:
        return f"has dtype {str(tensor.dtype).removeprefix('torch.')}"
    if tensor.numel() and tensor.untyped_storage().nbytes() < tensor.numel() * tensor.element_size():
        return f"claims {tuple(tensor.shape)} but its storage holds {tensor.untyped_storage().nbytes()} bytes"
    return None


def _strip_wrappers(key: str) -> str:
    while key.startswith(WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def normalize_keys(state_dict: dict) -> tuple[dict, dict[str, int]]:
    """(the model's state dict, ignored keys counted by their first name component).

    Wrapper prefixes (`module.`, `_orig_mod.`) are stripped. A detection/segmentation
    checkpoint (mmdet/mmseg: keys under `backbone.`) keeps only the backbone; every other
    key (neck, heads, EMA copies, ...) is ignored and counted.
    """
    keys = {_strip_wrappers(k): v for k, v in state_dict.items()}
    if not any(k.startswith(BACKBONE_PREFIX) for k in keys):
        return keys, {}
    kept, ignored = {}, Counter()
    for key, value in keys.items():
        if key.startswith(BACKBONE_PREFIX):
            kept[_strip_wrappers(key[len(BACKBONE_PREFIX):])] = value
        else:
            ignored[key.split(".", 1)[0]] += 1
    return kept, dict(ignored)


def _weight(sd: dict, key: str, ndim: int, path: Path) -> torch.Tensor:
    """sd[key], which must have `ndim` dimensions."""
    weight = sd[key]
    if weight.dim() != ndim:
        raise CheckpointError(f"{path}: {key} has shape {tuple(weight.shape)}, expected {ndim} dimensions")
    return weight


def _stage_layout(sd: dict, path: Path) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(blocks per stage, channels per stage) read from tensor names and shapes."""
    layers, dims = [], []
    for stage in (0, 2, 4, 6):
        prefix = f"network.{stage}."
        blocks = {k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)}
        if f"{prefix}0.attn.dwc.weight" not in sd:
            raise CheckpointError(f"missing key {prefix}0.attn.dwc.weight: this is not a CAS-ViT checkpoint")
        layers.append(len(blocks))
        dims.append(int(_weight(sd, f"{prefix}0.attn.dwc.weight", 4, path).shape[0]))
    return tuple(layers), tuple(dims)


def infer_variant(sd: dict, path: Path) -> str:
    """The variant whose (layers, dims) match the state dict's tensors."""
    layers, dims = _stage_layout(sd, path)
    for variant in VARIANTS.values():
        if variant.layers == layers and variant.dims == dims:
            return variant.name
    raise CheckpointError(
        f"{path}: layers {layers} and dims {dims} match no CAS-ViT variant ({', '.join(VARIANTS)})"
    )


def _load_strict(model: CASViT, sd: dict, path: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected and not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise CheckpointError(f"{path}: keys do not fit CAS-ViT-{model.variant.name.upper()}: {'; '.join(parts)}")
    for key, tensor in expected.items():
        if sd[key].shape != tensor.shape:
            raise CheckpointError(
                f"{path}: {key} has shape {tuple(sd[key].shape)}, expected {tuple(tensor.shape)}"
            )
    try:
        model.load_state_dict({k: sd[k] for k in expected}, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the weights do not load ({_reason(err)})") from None


def _num_classes(sd: dict, fork_feat: bool, path: Path) -> int:
    """Classes of the classifier head (0 for a dense-prediction backbone, 1000 without a head)."""
    if fork_feat:
        return 0
    if "head.weight" not in sd:
        return 1000
    classes = int(_weight(sd, "head.weight", 2, path).shape[0])
    if not 1 <= classes <= MAX_CLASSES:
        raise CheckpointError(f"{path}: head.weight has {classes} classes; expected 1 to {MAX_CLASSES}")
    return classes


def _input_size(raw: object, path: Path) -> int | None:
    """The training resolution recorded in `args.input_size` (an int, or timm's (3, H, H)),
    None when absent; anything else is refused. Its range is checked where it is used."""
    args = raw.get("args") if isinstance(raw, dict) else None
    size = vars(args).get("input_size") if isinstance(args, argparse.Namespace) else None
    if isinstance(size, (list, tuple)) and len(size) == 3 and size[0] == 3 and size[1] == size[2]:
        size = size[1]
    if size is None or (isinstance(size, int) and not isinstance(size, bool)):
        return size
    shown = repr(size) if isinstance(size, (str, float, list, tuple)) else type(size).__name__
    raise CheckpointError(f"{path}: args.input_size is {shown[:40]}, not an image size (an integer); "
                          "re-save the checkpoint without it")


def _epoch(raw: object) -> int | None:
    """The training epoch: top level (official checkpoints) or under `meta` (mmcv)."""
    if not isinstance(raw, dict):
        return None
    meta = raw.get("meta")
    epoch = raw.get("epoch", meta.get("epoch") if isinstance(meta, dict) else None)
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def load_checkpoint(path: str | Path, variant: str | None = None, ema: bool = False) -> tuple[CASViT, CheckpointInfo]:
    """An eval-mode model with the checkpoint's weights, and what was learnt about it.

    Variant, classes, distillation head and dense-prediction form are inferred from tensor
    shapes; a `variant` that contradicts them is an error naming the one that fits.
    """
    path = Path(path)
    raw = read_raw(path)
    sd, has_ema, used_ema = select_state_dict(raw, path, ema)
    check_tensors(sd, path)
    input_size = _input_size(raw, path)
    sd, ignored = normalize_keys(sd)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    found = infer_variant(sd, path)
    if variant is not None and variant.lower() != found:
        raise CheckpointError(
            f"{path} holds CAS-ViT-{found.upper()}, not {variant.upper()}: pass --variant {found} or omit --variant"
        )
    fork_feat = "head.weight" not in sd and "norm0.weight" in sd
    num_classes = _num_classes(sd, fork_feat, path)
    distillation = "dist_head.weight" in sd
    model = build_model(found, num_classes=num_classes or 1000, distillation=distillation, fork_feat=fork_feat)
    _load_strict(model, sd, path)
    info = CheckpointInfo(
        path=str(path), sha256=sha256_of(path), variant=found, num_classes=num_classes,
        distillation=distillation, fork_feat=fork_feat, has_ema=has_ema, used_ema=used_ema,
        epoch=_epoch(raw), input_size=input_size, ignored_keys=ignored,
    )
    return model.eval(), info
