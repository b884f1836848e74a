"""A generator of hostile and malformed inputs for the `casvit` command line.

Each `Case` writes its inputs (checkpoints, manifests, artifacts, report paths, option
values) into a fresh folder and returns a command line. Every case must end with exit
code 2 (1 for an artifact modified after export: the parity gate fails), exactly one line
`error: ...` on stderr, no traceback, no file written, and no file ever appearing in the
sentinel folder: every payload that would run code (os.system, eval, open, torch.save,
...) aims at it. tests/test_hostile.py runs them all.

`python -m tests.hostile OUT` writes the checkpoints and manifests to OUT for inspection.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import struct
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from casvit_deploy.artifacts.files import artifact_sha256
from casvit_deploy.model import random_model
from casvit_deploy.store.manifests import manifest_path

RESOLUTION = 32
PARITY_FAST = ("--inputs", "random", "--samples", "1")


@dataclass
class Workspace:
    """Where a case writes: `folder` (fresh per case), `public` (fresh, world-traversable,
    for cases run as an unprivileged user), `sentinel` (must stay empty), and the good
    inputs cases start from (built once, copied before a case changes them)."""

    folder: Path
    public: Path
    sentinel: Path
    good_checkpoint: Path
    good_artifact: Callable[[str], Path]  # format name -> a good exported artifact

    def path(self, name: str) -> Path:
        return self.folder / name

    def write(self, name: str, data: bytes | str) -> Path:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
        return path

    def artifact(self, fmt: str) -> Path:
        """A private copy of the good artifact of `fmt` and its manifest."""
        source = self.good_artifact(fmt)
        target = self.folder / "art" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
        shutil.copy(manifest_path(source), manifest_path(target))
        return target

    def state_dict(self) -> dict:
        return torch.load(self.good_checkpoint, weights_only=False)["model"]

    def unprivileged_folder(self, name: str, mode: int) -> Path:
        """A folder with `mode` in `public` (so an unprivileged user reaches it)."""
        path = self.public / name
        path.mkdir()
        path.chmod(mode)
        return path


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Workspace], list[str]]
    exit_code: int = 2
    message: str = ""            # a regular expression the error line must match
    unprivileged: bool = False   # permissions only mean something to a non-root process


CASES: list[Case] = []


def case(name: str, exit_code: int = 2, message: str = "", unprivileged: bool = False):
    def register(build):
        CASES.append(Case(name, build, exit_code, message, unprivileged))
        return build
    return register


# --- payloads ------------------------------------------------------------------------------

def _binunicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def call_pickle(module: str, name: str, *args: str) -> bytes:
    """A protocol-2 pickle of `module.name(*args)` (string arguments)."""
    tuple_op = {0: b")", 1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(args)]
    return (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n"
            + b"".join(_binunicode(a) for a in args) + tuple_op + b"R.")


class _Reduces:
    """Pickles as `fn(*args)` (with an optional BUILD `state`), whatever fn is."""

    def __init__(self, fn, args=(), state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def with_data_pkl(archive: bytes, data_pkl: bytes | None) -> bytes:
    """`archive` (a torch.save zip) with its data.pkl replaced (None: removed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename.endswith("/data.pkl"):
                if data_pkl is not None:
                    dst.writestr(info, data_pkl)
            else:
                dst.writestr(info, src.read(info))
    return out.getvalue()


def _code_payloads(target: Path) -> dict[str, tuple]:
    """name -> (callable, args): each would create a file at `target` if it ever ran."""
    import pickle
    import subprocess

    import numpy

    t = str(target)
    return {
        "os-system": (os.system, (f"touch {t}",)),
        "subprocess": (subprocess.getoutput, (f"touch {t}",)),
        "eval": (eval, (f"open({t!r}, 'w')",)),
        "exec": (exec, (f"open({t!r}, 'w')",)),
        "open": (open, (t, "w")),
        "copyfile": (shutil.copyfile, ("/dev/null", t)),
        "torch-save": (torch.save, ({}, t)),
        "numpy-save": (numpy.save, (t, numpy.zeros(1))),
        "nested-pickle": (pickle.loads, (pickle.dumps(_Reduces(os.system, (f"touch {t}",))),)),
    }


# --- checkpoints: malformed pickles and files ---------------------------------------------

MALFORMED_PICKLES = {
    "stop-only": b"\x80\x02.",
    "memo-miss": b"\x80\x02h\x05.",
    "short-binint": b"\x80\x02J\x01\x00",
    "reduce-on-empty-stack": b"\x80\x02R.",
    "tuple-without-mark": b"\x80\x02t.",
    "huge-string-length": b"\x80\x02X\xff\xff\xff\x7f" + b"a" * 16 + b".",
    "setitem-on-list": b"\x80\x02]K\x01K\x02s.",
    "build-on-int": b"\x80\x02K\x01}b.",
}


def _export_args(ws: Workspace, checkpoint: Path, *extra: str) -> list[str]:
    return ["export", "-f", "onnx", "--no-check", "-o", str(ws.path("out")), "-c", str(checkpoint), *extra]


for _name, _data in MALFORMED_PICKLES.items():
    case(f"ckpt-legacy-{_name}", message="truncated or corrupt")(
        lambda ws, d=_data: _export_args(ws, ws.write("c.pth", d)))
    case(f"ckpt-zip-{_name}", message="truncated or corrupt")(
        lambda ws, d=_data: _export_args(ws, ws.write("c.pth", with_data_pkl(torch_bytes({"a": 1}), d))))


@case("ckpt-zip-without-data-pkl", message="truncated or corrupt")
def _(ws):
    return _export_args(ws, ws.write("c.pth", with_data_pkl(torch_bytes({"a": 1}), None)))


@case("ckpt-etc-passwd", message="text file")
def _(ws):
    passwd = Path("/etc/passwd")
    return _export_args(ws, passwd if passwd.is_file() else ws.write("passwd", "root:x:0:0:root:/root:/bin/sh\n"))


@case("ckpt-empty", message="is empty")
def _(ws):
    return _export_args(ws, ws.write("c.pth", b""))


@case("ckpt-truncated", message="truncated or corrupt")
def _(ws):
    data = ws.good_checkpoint.read_bytes()
    return _export_args(ws, ws.write("c.pth", data[: len(data) // 2]))


@case("ckpt-random-bytes", message="truncated or corrupt")
def _(ws):
    return _export_args(ws, ws.write("c.pth", bytes(range(1, 256)) * 64))


@case("ckpt-png", message="an image")
def _(ws):
    return _export_args(ws, ws.write("c.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64))


@case("ckpt-is-a-folder", message="is a folder")
def _(ws):
    return _export_args(ws, ws.path("."))


@case("ckpt-missing", message="does not exist")
def _(ws):
    return _export_args(ws, ws.path("nothing.pth"))


@case("ckpt-zip-not-torch", message="truncated or corrupt")
def _(ws):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("hello.txt", "hi")
    return _export_args(ws, ws.write("c.pth", out.getvalue()))


# --- checkpoints: code that must never run ------------------------------------------------

for _name in _code_payloads(Path("x")):
    case(f"ckpt-runs-code-{_name}", message="refused|truncated or corrupt")(
        lambda ws, n=_name: _export_args(ws, ws.write("c.pth", torch_bytes(
            {"model": {}, "x": _Reduces(*_code_payloads(ws.sentinel / n)[n])}))))

for _name, (_module, _fn) in {"os-system": ("os", "system"), "posix-system": ("posix", "system"),
                              "builtins-exec": ("builtins", "exec")}.items():
    case(f"ckpt-legacy-runs-code-{_name}", message="refused|truncated or corrupt")(
        lambda ws, m=_module, f=_fn, n=_name: _export_args(ws, ws.write("c.pth", call_pickle(
            m, f, f"open({str(ws.sentinel / n)!r}, 'w')" if f == "exec" else f"touch {ws.sentinel / n}"))))


# --- checkpoints: argparse.Namespace tricks and args fields -------------------------------

NAMESPACE_TRICKS = {
    "positional-args": _Reduces(argparse.Namespace, (1, 2)),
    "build-list-state": _Reduces(argparse.Namespace, (), ["not", "a", "dict"]),
    "build-int-state": _Reduces(argparse.Namespace, (), 5),
    "build-slot-state-int-key": _Reduces(argparse.Namespace, (), (None, {1: 2})),
}
for _name, _trick in NAMESPACE_TRICKS.items():
    case(f"ckpt-namespace-{_name}", message="truncated or corrupt")(
        lambda ws, t=_trick: _export_args(ws, ws.write("c.pth", torch_bytes({"model": ws.state_dict(), "args": t}))))

INPUT_SIZES = {"string": ("abc", "args.input_size"), "tensor": (torch.tensor(224), "args.input_size"),
               "float": (224.0, "args.input_size"), "bool": (True, "args.input_size"),
               "non-square": ([3, 224, 256], "args.input_size"), "zero": (0, r"args.input_size 0 "),
               "huge": (32000, r"args.input_size 32000 "), "negative": (-32, "args.input_size -32 "),
               "not-multiple": (100, "args.input_size 100 ")}
for _name, (_size, _message) in INPUT_SIZES.items():
    case(f"ckpt-input-size-{_name}", message=_message)(
        lambda ws, s=_size: _export_args(ws, ws.write("c.pth", torch_bytes(
            {"model": ws.state_dict(), "args": argparse.Namespace(input_size=s)}))))


# --- checkpoints: state dicts ---------------------------------------------------------------

def _state_dict_case(name: str, change: Callable[[dict], dict], message: str):
    case(f"ckpt-{name}", message=message)(
        lambda ws: _export_args(ws, ws.write("c.pth", torch_bytes({"model": change(ws.state_dict())}))))


def _replace(key: str, make: Callable[[torch.Tensor], object]) -> Callable[[dict], dict]:
    return lambda sd: {**sd, key: make(sd[key])}


def _with_value(value: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def make(t):
        t = t.clone()
        t.view(-1)[3] = value
        return t
    return make


def _expanded(t: torch.Tensor) -> torch.Tensor:
    """A (10^6, 220) head that stores one float: a million-class model from 4 bytes."""
    return torch.zeros(1).expand(10**6, t.shape[1])


_HEAD, _DWC = "head.weight", "network.0.0.attn.dwc.weight"
for _name, _change, _message in [
    ("integer-keys", lambda sd: {i: v for i, v in enumerate(sd.values())}, "not a string"),
    ("tuple-key", lambda sd: {**sd, ("a", 1): torch.zeros(1)}, "not a string"),
    ("0-dim-head", _replace(_HEAD, lambda t: torch.tensor(1.0)), "head.weight has shape"),
    ("0-dim-conv", _replace(_DWC, lambda t: torch.tensor(1.0)), "dwc.weight has shape"),
    ("meta-tensor", _replace(_HEAD, lambda t: torch.empty(t.shape, device="meta")), "meta tensor"),
    ("quantized-tensor", _replace(_HEAD, lambda t: torch.quantize_per_tensor(t, 0.1, 0, torch.qint8)), "quantized"),
    ("sparse-tensor", _replace(_HEAD, lambda t: t.to_sparse()), "sparse"),
    ("complex-tensor", _replace(_HEAD, lambda t: t.to(torch.complex64)), "dtype complex64"),
    ("bool-tensor", _replace(_HEAD, lambda t: t > 0), "dtype bool"),
    ("integer-tensor", _replace(_HEAD, lambda t: t.long()), "dtype int64"),
    ("nan-weight", _replace(_HEAD, _with_value(float("nan"))), "NaN/Inf"),
    ("negative-running-var", _replace("norm.running_var", _with_value(-5.0)), "norm.running_var holds a negative"),
    ("huge-weight", _replace(_DWC, _with_value(3e38)), "dwc.weight holds a value of magnitude 3e"),
    ("huge-fp64-weight", _replace(_HEAD, lambda t: _with_value(1e300)(t.double())), "head.weight holds a value"),
    ("inf-weight", _replace(_DWC, _with_value(float("inf"))), "NaN/Inf"),
    ("negative-inf-bn", _replace("norm.running_var", _with_value(float("-inf"))), "NaN/Inf"),
    ("expanded-million-classes", _replace(_HEAD, _expanded), "storage holds"),
    ("not-casvit", lambda sd: {"fc.weight": torch.zeros(2, 2)}, "not a CAS-ViT checkpoint"),
    ("missing-key", lambda sd: {k: v for k, v in sd.items() if k != "network.0.0.mlp.fc1.weight"}, "1 missing"),
    ("wrong-shape", _replace("network.0.0.mlp.fc1.weight", lambda t: torch.zeros(3, 3, 3, 3)), "has shape"),
    ("model-is-a-list", lambda sd: [1, 2], "no state dict"),
]:
    _state_dict_case(_name, _change, _message)


@case("ckpt-top-level-tensor", message="not a state dict")
def _(ws):
    return _export_args(ws, ws.write("c.pth", torch_bytes(torch.zeros(3))))


@case("ckpt-storage-too-small", message="truncated or corrupt|storage")
def _(ws):
    storage = torch.zeros(4).untyped_storage()
    big = _Reduces(torch._utils._rebuild_tensor_v2, (storage, 0, (10**10,), (1,), False, OrderedDict()))
    return _export_args(ws, ws.write("c.pth", torch_bytes({"model": {**ws.state_dict(), _HEAD: big}})))


@case("ckpt-safetensors-bad-header", message="not a valid safetensors file")
def _(ws):
    return _export_args(ws, ws.write("c.safetensors", struct.pack("<Q", 10**12) + b"{}"))


@case("ckpt-safetensors-integer-weight", message="dtype int32")
def _(ws):
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in ws.state_dict().items()}
    sd[_HEAD] = sd[_HEAD].int()
    path = ws.path("c.safetensors")
    save_file(sd, str(path))
    return _export_args(ws, path)


@case("ckpt-ema-absent", message="no EMA weights")
def _(ws):
    return _export_args(ws, ws.write("c.pth", torch_bytes({"model": ws.state_dict()})), "--ema")


@case("ckpt-variant-contradicted", message="holds CAS-ViT-XS, not T")
def _(ws):
    return _export_args(ws, ws.good_checkpoint, "--variant", "t")


@case("ckpt-detection-backbone-int8", message="int8 export is for classifiers")
def _(ws):
    sd = {"backbone." + k: v for k, v in random_model("xs", fork_feat=True).state_dict().items()}
    return _export_args(ws, ws.write("c.pth", torch_bytes({"state_dict": sd})), "-p", "int8")


@case("ckpt-detection-backbone-int8-auto-keep-float", message="--auto-keep-float searches by the agreement of the logits")
def _(ws):
    sd = {"backbone." + k: v for k, v in random_model("xs", fork_feat=True).state_dict().items()}
    args = _export_args(ws, ws.write("c.pth", torch_bytes({"state_dict": sd})), "-p", "int8", "--auto-keep-float")
    return [("litert" if a == "onnx" else a) for a in args]


@case("info-ckpt-input-size-zero", message="args.input_size 0 ")
def _(ws):
    path = ws.write("c.pth", torch_bytes({"model": ws.state_dict(), "args": argparse.Namespace(input_size=0)}))
    return ["info", "-c", str(path)]


@case("info-ckpt-negative-running-var", message="norm.running_var holds a negative variance")
def _(ws):
    path = ws.write("c.pth", torch_bytes({"model": _replace("norm.running_var", _with_value(-5.0))(ws.state_dict())}))
    return ["info", "-c", str(path)]


@case("bench-ckpt-input-size-huge", message="args.input_size 32000 ")
def _(ws):
    path = ws.write("c.pth", torch_bytes({"model": ws.state_dict(), "args": argparse.Namespace(input_size=32000)}))
    return ["bench", "-b", "eager", "-c", str(path), "--iters", "1", "--warmup", "0"]


# --- manifests --------------------------------------------------------------------------------

def _edit_manifest(ws: Workspace, change: Callable[[dict], object]) -> Path:
    artifact = ws.artifact("onnx")
    path = manifest_path(artifact)
    data = json.loads(path.read_text())
    result = change(data)
    path.write_text(result if isinstance(result, str) else json.dumps(data if result is None else result))
    return artifact


def _set(dotted: str, value) -> Callable[[dict], None]:
    def change(data):
        *parents, last = dotted.split(".")
        for key in parents:
            data = data[int(key)] if key.isdigit() else data[key]
        data[last] = value
    return change


MANIFEST_FIELDS = [
    ("resolution", "abc"), ("resolution", 1e9), ("resolution", 100), ("batch", "x"), ("batch", 0),
    ("seed", 1e30), ("seed", -1), ("precision", ["fp32"]), ("outputs", 5), ("preprocessing.resize", 6_900_000),
    ("preprocessing.resize", 8192), ("preprocessing.crop", 1024), ("preprocessing.mean", [0.5] * 10**5),
    ("preprocessing.std", [0, 1, 1]), ("schema", 1), ("format", "tflite"), ("sha256", "abc"),
    ("checkpoint", {"path": "a.pth", "sha256": "z" * 64, "used_ema": False}), ("options", {"opset": 99}),
    ("parity", [{"status": "maybe"}]), ("dynamic_batch", "yes"), ("inputs.0.shape", [1, 3, "x" * 100]),
    ("tools", {"torch": 5}), ("details", [1]), ("file", "x" * 300), ("variant", "xxl"), ("num_classes", -1),
    ("block_outputs", {"a": 1}), ("inputs", [{"name": "image"}]),
]
for _field, _value in MANIFEST_FIELDS:
    _named = _field.replace(".0.", "[0].")
    case(f"manifest-{_field}={json.dumps(_value)[:24]}", message=re.escape(f"'{_named}"))(
        lambda ws, f=_field, v=_value: ["parity", str(_edit_manifest(ws, _set(f, v))), *PARITY_FAST])

for _name, _text, _message in [
    ("nan-literal", lambda d: json.dumps(d).replace('"export_seconds": ', '"export_seconds": NaN, "x": '),
     "export_seconds"),
    ("top-level-list", lambda d: "[1, 2]", "must be an object"),
    ("not-json", lambda d: "{not json", "not readable JSON"),
    ("empty", lambda d: "", "not readable JSON"),
    ("deeply-nested", lambda d: '{"a": ' * 100_000, "not readable JSON"),
    ("not-utf8", lambda d: "\udcff", "not readable JSON"),
    ("too-large", lambda d: json.dumps(d | {"pad": "x" * (17 << 20)}), "too large"),
]:
    case(f"manifest-{_name}", message=_message)(
        lambda ws, t=_text: ["parity", str(_write_raw_manifest(ws, t)), *PARITY_FAST])


def _write_raw_manifest(ws: Workspace, text: Callable[[dict], str]) -> Path:
    artifact = ws.artifact("onnx")
    path = manifest_path(artifact)
    content = text(json.loads(path.read_text()))
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    return artifact


@case("manifest-missing", message="has no manifest")
def _(ws):
    artifact = ws.artifact("onnx")
    manifest_path(artifact).unlink()
    return ["parity", str(artifact), *PARITY_FAST]


@case("manifest-is-a-folder", message="manifest")
def _(ws):
    artifact = ws.artifact("onnx")
    manifest_path(artifact).unlink()
    manifest_path(artifact).mkdir()
    return ["parity", str(artifact), *PARITY_FAST]


@case("manifest-checkpoint-missing", message="not there")
def _(ws):
    return ["parity", str(_edit_manifest(ws, _set("checkpoint", {"path": "gone.pth", "sha256": "0" * 64,
                                                                   "used_ema": False}))), *PARITY_FAST]


@case("manifest-points-at-hostile-pickle", message="refused|truncated or corrupt")
def _(ws):
    """The manifest records a code-running pickle as its checkpoint, with its true sha256."""
    hostile = ws.write("art/evil.pth", torch_bytes(
        {"model": {}, "x": _Reduces(os.system, (f"touch {ws.sentinel / 'manifest'}",))}))
    record = {"path": hostile.name, "sha256": artifact_sha256(hostile), "used_ema": False}
    return ["parity", str(_edit_manifest(ws, _set("checkpoint", record))), *PARITY_FAST]


# --- artifacts ----------------------------------------------------------------------------------

def _flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _onnx_edit(ws: Workspace, edit: Callable) -> Path:
    import onnx

    artifact = ws.artifact("onnx")
    model = onnx.load(str(artifact))
    edit(model)
    onnx.save(model, str(artifact))
    return artifact


def _flip_initializer(model) -> None:
    init = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    raw = bytearray(init.raw_data)
    raw[len(raw) // 2] ^= 0x01
    init.raw_data = bytes(raw)


def _edit_metadata(model) -> None:
    prop = next(p for p in model.metadata_props if p.key == "variant")
    prop.value = "t"


def _rename_input(model, new: str = "input") -> None:
    old = model.graph.input[0].name
    model.graph.input[0].name = new
    for node in model.graph.node:
        node.input[:] = [new if name == old else name for name in node.input]


def _rename_output(model, new: str = "scores") -> None:
    old = model.graph.output[0].name
    model.graph.output[0].name = new
    for node in model.graph.node:
        node.output[:] = [new if name == old else name for name in node.output]


def _weight_file(package: Path) -> Path:
    return next(package.rglob("weight.bin"))


MODIFIED_ARTIFACTS = {
    "onnx-initializer-bit-flip": lambda ws: _onnx_edit(ws, _flip_initializer),
    "onnx-metadata-edited": lambda ws: _onnx_edit(ws, _edit_metadata),
    "onnx-input-renamed": lambda ws: _onnx_edit(ws, _rename_input),
    "onnx-output-renamed": lambda ws: _onnx_edit(ws, _rename_output),
    "pte-bit-flip": lambda ws: _flipped(ws.artifact("executorch")),
    "mlpackage-weight-bit-flip": lambda ws: _package_changed(ws, lambda p: _flip_bit(
        _weight_file(p), _weight_file(p).stat().st_size // 2)),
    "mlpackage-extra-file": lambda ws: _package_changed(ws, lambda p: (p / "Data" / "notes.txt").write_text("x")),
    "tflite-weight-bit-flip": lambda ws: _flipped(ws.artifact("litert")),
}


def _flipped(artifact: Path) -> Path:
    _flip_bit(artifact, artifact.stat().st_size // 2)
    return artifact


def _package_changed(ws: Workspace, change: Callable[[Path], object]) -> Path:
    package = ws.artifact("coreml")
    change(package)
    return package


for _name, _make in MODIFIED_ARTIFACTS.items():
    case(f"artifact-{_name}", exit_code=1, message="differs from its manifest")(
        lambda ws, m=_make: ["parity", str(m(ws)), *PARITY_FAST])


def _tflite_op_replaced(ws: Workspace, custom: str | None) -> Path:
    """The good .tflite with its GELU op code replaced: by a builtin code no runtime has
    (250), or by a custom op named `custom` that no runtime registers."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils

    artifact = ws.artifact("litert")
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(artifact.read_bytes()))
    code = next(c for c in model.operatorCodes if c.builtinCode == fb.BuiltinOperator.GELU)
    code.builtinCode, code.deprecatedBuiltinCode = (250, 127) if custom is None else (fb.BuiltinOperator.CUSTOM,) * 2
    code.customCode = custom
    artifact.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    return artifact


def _truncated(artifact: Path) -> Path:
    artifact.write_bytes(artifact.read_bytes()[:4096])
    return artifact


def _emptied(artifact: Path) -> Path:
    artifact.write_bytes(b"")
    return artifact


CORRUPT_ARTIFACTS = {
    "onnx-truncated": (lambda ws: _truncated(ws.artifact("onnx")), "cannot load"),
    "onnx-random-bytes": (lambda ws: ws.write("art/x.onnx", bytes(range(256)) * 64), "cannot load|has no manifest"),
    "pte-truncated": (lambda ws: _truncated(ws.artifact("executorch")), "cannot load"),
    "pte-empty": (lambda ws: _emptied(ws.artifact("executorch")), "cannot load"),
    "mlpackage-without-manifest-json": (lambda ws: _package_changed(
        ws, lambda p: (p / "Manifest.json").unlink()), "cannot load|cannot read"),
    "mlpackage-without-weights": (lambda ws: _package_changed(ws, lambda p: _weight_file(p).unlink()),
                                  "cannot load"),
    "folder-named-onnx": (lambda ws: ws.path("art/dir.onnx").mkdir(parents=True) or ws.path("art/dir.onnx"),
                          "cannot load|has no manifest"),
    "missing": (lambda ws: ws.path("art/none.onnx"), "does not exist"),
    "tflite-truncated": (lambda ws: _truncated(ws.artifact("litert")), "cannot load"),
    "tflite-empty": (lambda ws: _emptied(ws.artifact("litert")), "cannot load"),
    "tflite-unknown-builtin-op": (lambda ws: _tflite_op_replaced(ws, None), "cannot load"),
    "tflite-unregistered-custom-op": (lambda ws: _tflite_op_replaced(ws, "MyGelu"), "cannot load"),
    "tflite-random-bytes": (lambda ws: ws.write("art/x.tflite", bytes(range(256)) * 64), "cannot load|has no manifest"),
    "unknown-suffix": (lambda ws: ws.write("art/model.engine", b"x"), "unknown artifact format"),
}
for _name, (_make, _message) in CORRUPT_ARTIFACTS.items():
    case(f"parity-{_name}", message=_message)(lambda ws, m=_make: ["parity", str(m(ws)), *PARITY_FAST])

for _name in ("onnx-truncated", "pte-truncated", "onnx-random-bytes", "tflite-truncated", "tflite-unknown-builtin-op"):
    case(f"bench-{_name}", message=CORRUPT_ARTIFACTS[_name][1])(
        lambda ws, m=CORRUPT_ARTIFACTS[_name][0]: ["bench", str(m(ws)), "--iters", "1", "--warmup", "0",
                                                   "--no-baseline", "-r", str(RESOLUTION)])


for _name in ("tflite-truncated", "tflite-random-bytes"):  # described from the file alone: it must load
    case(f"info-{_name}-without-manifest", message="not a loadable .tflite file")(
        lambda ws, m=CORRUPT_ARTIFACTS[_name][0]: ["info", str(_without_manifest(m(ws)))])


def _without_manifest(artifact: Path) -> Path:
    manifest_path(artifact).unlink(missing_ok=True)
    return artifact


# --- report paths -------------------------------------------------------------------------------

REPORT_OPTIONS = {
    ("parity", "--json"), ("parity", "--junit"), ("bench", "--json"), ("bench", "--csv"),
    ("bench", "--markdown"), ("bench", "--plot"), ("export", "--json"), ("info", "--json"),
}


def _command(ws: Workspace, command: str) -> list[str]:
    return {"parity": lambda: ["parity", str(ws.path("model.onnx"))],
            "bench": lambda: ["bench", "-b", "eager", "--iters", "1", "-r", str(RESOLUTION)],
            "export": lambda: ["export", "-f", "onnx", "-o", str(ws.path("out")), "-r", str(RESOLUTION)],
            "info": lambda: ["info"]}[command]()


for _command_name, _option in sorted(REPORT_OPTIONS):
    case(f"{_command_name}{_option}-is-a-folder", message="is a folder")(
        lambda ws, c=_command_name, o=_option: [*_command(ws, c), o, str(ws.folder)])
    case(f"{_command_name}{_option}-in-missing-folder", message="does not exist")(
        lambda ws, c=_command_name, o=_option: [*_command(ws, c), o, str(ws.path("nowhere/r.out"))])
    case(f"{_command_name}{_option}-in-read-only-folder", message="not writable", unprivileged=True)(
        lambda ws, c=_command_name, o=_option: [*_command(ws, c), o,
                                                str(ws.unprivileged_folder("ro", 0o555) / "r.out")])


# --- option values -------------------------------------------------------------------------------

def _baseline(ws: Workspace, p50, change: Callable[[dict], object] = lambda data: None) -> Path:
    """A one-result baseline of the case `_bench` runs, with p50 `p50`, then `change`d in place."""
    result = {"model": "xs", "form": "deploy", "backend": "eager", "device": "cpu", "precision": "fp32",
              "batch": 1, "resolution": 32, "channels_last": False, "variant": "xs", "weights": "w", "passes": [],
              "engine": "e", "threads": 1, "round_p50_ms": [1.0], "load_s": 0.1, "first_inference_ms": 1.0,
              "peak_rss_mb": 1.0, "iters": 1, "p50_ms": p50, "p90_ms": 1.0, "p99_ms": 1.0, "mean_ms": 1.0,
              "std_ms": 0.0, "min_ms": 1.0, "throughput": 1.0}
    data = {"schema": "casvit-bench/1", "environment": {}, "config": {}, "gemm": {}, "results": [result]}
    change(data)
    return ws.write("baseline.json", json.dumps(data))


def _compare(ws: Workspace, dotted: str, value) -> list[str]:
    return _bench(ws, "--compare", str(_baseline(ws, 1.0, _set(dotted, value))))


BASELINE_FIELDS = [("results.0.batch", "1", "results\\[0\\].batch is '1'"), ("gemm", "fast", "gemm is 'fast'"),
                   ("results.0.std_ms", "x", "std_ms is 'x'"), ("results.0.iqr_ms", "x", "iqr_ms is 'x'"),
                   ("results.0.p25_ms", "x", "p25_ms is 'x'"), ("results.0.variant", 5, "variant is 5"),
                   ("results", {}, "results is \\{\\}"), ("results", [], "results is \\[\\]"),
                   ("results.0.resolution", {"height": 33, "width": 32}, "resolution is"),
                   ("gemm", {"cpu": {"fp32_gflops": "many"}}, "gemm.cpu.fp32_gflops is 'many'"),
                   ("results.0.channels_last", "no", "channels_last is 'no'"), ("failed", [{"backend": 1}], "failed")]
for _field, _value, _message in BASELINE_FIELDS:
    case(f"bench-compare-{_field.replace('results.0.', '')}={json.dumps(_value)[:24]}", message=_message)(
        lambda ws, f=_field, v=_value: _compare(ws, f, v))


def _bench(ws: Workspace, *extra: str) -> list[str]:
    return ["bench", "-b", "eager", "--iters", "1", "--warmup", "0", "-r", str(RESOLUTION), *extra]


def _parity_good(ws: Workspace, *extra: str) -> list[str]:
    return ["parity", str(ws.artifact("onnx")), *extra]


def _export(ws: Workspace, *extra: str) -> list[str]:
    return ["export", "-o", str(ws.path("out")), "-r", str(RESOLUTION), "--no-check", *extra]


OPTION_CASES = {
    "parity-atol-nan": (lambda ws: _parity_good(ws, "--atol", "nan"), "--atol nan"),
    "parity-rtol-negative": (lambda ws: _parity_good(ws, "--rtol", "-1"), "--rtol"),
    "parity-min-cosine-above-1": (lambda ws: _parity_good(ws, "--min-cosine", "2"), "--min-cosine"),
    "parity-min-top1-inf": (lambda ws: _parity_good(ws, "--min-top1", "inf"), "--min-top1"),
    "parity-samples-zero": (lambda ws: _parity_good(ws, "--samples", "0"), "--samples 0"),
    "parity-samples-huge": (lambda ws: _parity_good(ws, "--samples", "99999999999999999999"), "--samples"),
    "parity-images-missing": (lambda ws: _parity_good(ws, "--images", str(ws.path("none"))), "not a folder"),
    "parity-engine-unknown": (lambda ws: _parity_good(ws, "--engine", "gpu"), "'gpu' is not one of"),
    "parity-inputs-unknown": (lambda ws: _parity_good(ws, "--inputs", "noise"), "'noise' is not one of"),
    "bench-threads-negative": (lambda ws: _bench(ws, "--threads", "-3"), "--threads -3"),
    "bench-threads-zero": (lambda ws: _bench(ws, "--threads", "0"), "--threads 0"),
    "bench-batch-huge": (lambda ws: _bench(ws, "--batch", "99999999999999999999"), "--batch"),
    "bench-batch-zero": (lambda ws: _bench(ws, "--batch", "0"), "--batch"),
    "bench-rounds-zero": (lambda ws: _bench(ws, "--rounds", "0"), "--rounds"),
    "bench-warmup-negative": (lambda ws: _bench(ws, "--warmup", "-1"), "--warmup"),
    "bench-iters-zero": (lambda ws: _bench(ws, "--iters", "0"), "--iters"),
    "bench-min-time-nan": (lambda ws: ["bench", "-b", "eager", "--min-time", "nan"], "--min-time"),
    "bench-threshold-nan": (lambda ws: _bench(ws, "--threshold", "nan"), "--threshold nan"),
    "bench-threshold-negative": (lambda ws: _bench(ws, "--threshold", "-5"), "--threshold -5"),
    "bench-compare-zero-p50": (lambda ws: _bench(ws, "--compare", str(_baseline(ws, 0))), "p50_ms is 0"),
    "bench-compare-text-p50": (lambda ws: _bench(ws, "--compare", str(_baseline(ws, "fast"))), "p50_ms is 'fast'"),
    "bench-compare-negative-p50": (lambda ws: _bench(ws, "--compare", str(_baseline(ws, -1.0))), "p50_ms is -1"),
    "bench-compare-list-p50": (lambda ws: _bench(ws, "--compare", str(_baseline(ws, [1]))), "p50_ms is"),
    "bench-compare-not-json": (lambda ws: _bench(ws, "--compare", str(ws.write("b.json", "{"))), "not readable"),
    "bench-compare-deeply-nested": (lambda ws: _bench(ws, "--compare", str(ws.write("b.json", "[" * 100_000))),
                                    "not readable"),
    "bench-compare-not-a-report": (lambda ws: _bench(ws, "--compare", str(ws.write("b.json", "[]"))),
                                   "not a casvit bench report"),
    "bench-compare-missing": (lambda ws: _bench(ws, "--compare", str(ws.path("none.json"))), "does not exist"),
    "bench-compare-matches-no-case": (lambda ws: _compare(ws, "results.0.resolution", {"height": 64, "width": 64}),
                                      "no case of this run is in the baseline"),
    "bench-compare-folder": (lambda ws: _bench(ws, "--compare", str(ws.folder)), "not readable"),
    "bench-backend-unknown": (lambda ws: ["bench", "-b", "tpu"], "unknown backend 'tpu'"),
    "bench-device-unknown": (lambda ws: _bench(ws, "--device", "tpu"), "'tpu' is not one of"),
    "bench-resolution-zero": (lambda ws: ["bench", "-b", "eager", "-r", "0"], "--resolution 0"),
    "export-batch-huge": (lambda ws: _export(ws, "-f", "onnx", "--batch", "99999999999999999999"), "--batch"),
    "export-resolution-huge": (lambda ws: _export(ws, "-f", "onnx", "-r", "4096"), "--resolution 4096"),
    "export-labels-with-onnx": (lambda ws: _export(ws, "-f", "onnx", "--labels", str(ws.write("l.txt", "a"))),
                                "--labels applies to coreml only"),
    "export-image-input-with-executorch": (lambda ws: _export(ws, "-f", "executorch", "--image-input"),
                                           "--image-input applies to coreml only"),
    "export-deployment-target-with-onnx": (lambda ws: _export(ws, "-f", "onnx", "--deployment-target", "iOS17"),
                                           "--deployment-target applies to coreml only"),
    "export-delegate-with-onnx": (lambda ws: _export(ws, "-f", "onnx", "--delegate", "portable"),
                                  "--delegate applies to executorch only"),
    "export-allow-portable-with-coreml": (lambda ws: _export(ws, "-f", "coreml", "--allow-portable"),
                                          "--allow-portable applies to executorch only"),
    "export-labels-file-missing": (lambda ws: _export(ws, "-f", "coreml", "--labels", str(ws.path("no.txt"))),
                                   "no such file"),
    "export-labels-dev-zero": (lambda ws: _export(ws, "-f", "coreml", "--labels", "/dev/zero"), "character device"),
    "export-labels-fifo": (lambda ws: _export(ws, "-f", "coreml", "--labels", str(_fifo(ws, "labels.txt"))), "FIFO"),
    "export-labels-folder": (lambda ws: _export(ws, "-f", "coreml", "--labels", str(ws.folder)), "is a folder"),
    "export-labels-nul-byte": (lambda ws: _labels(ws, "\0"), "line 4 holds the control character '\\\\x00'"),
    "export-labels-whitespace-line": (lambda ws: _labels(ws, " \t "), "line 4 is blank"),
    "export-labels-long-line": (lambda ws: _labels(ws, "x" * 10**6), "line 4 is longer than 256 characters"),
    "export-labels-line-separator": (lambda ws: _labels(ws, "a\u2028b"), "control character"),
    "export-labels-not-utf8": (lambda ws: _labels(ws, "\udcff"), "not UTF-8"),
    "export-labels-more-than-read": (lambda ws: _labels(ws, "x\n" * 600_000), "holds more than 25000 labels"),
    "export-dynamic-batch-coreml": (lambda ws: _export(ws, "-f", "coreml", "--dynamic-batch"),
                                    "drop --dynamic-batch"),
    "export-out-is-a-file": (lambda ws: ["export", "-f", "onnx", "-o", str(ws.write("f", "x")), "--no-check"],
                             "is a file"),
    "export-out-in-read-only-folder": (lambda ws: ["export", "-f", "onnx", "--no-check", "-o", str(
        ws.unprivileged_folder("ro", 0o555) / "out")], "not writable"),
    "info-resolution-zero": (lambda ws: ["info", "-r", "0"], "--resolution 0"),
}
for _name, (_build, _message) in OPTION_CASES.items():
    case(_name, message=_message, unprivileged="read-only" in _name)(_build)


def _fifo(ws: Workspace, name: str) -> Path:
    """A named pipe with no writer: reading it would block forever."""
    path = ws.path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def _labels(ws: Workspace, line: str) -> list[str]:
    """A CoreML classifier export whose labels file has `line` as its 4th line among 1000."""
    lines = [f"class {i}" for i in range(1000)]
    lines[3] = line
    path = ws.write("labels.txt", ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
    return _export(ws, "-f", "coreml", "--labels", str(path))


# --- image folders (--calibration, --images) ---------------------------------------------------

def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header says width x height (RGB, 8 bits) and whose image data is missing:
    only a reader that decides from the header alone gives more than "truncated"."""
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


IMAGE_FOLDERS = {
    "fifo-named-png": (lambda ws: _fifo(ws, "imgs/a.png").parent, "a.png is a FIFO"),
    "folder-named-jpg": (lambda ws: ws.path("imgs/b.jpg").mkdir(parents=True) or ws.path("imgs"), "b.jpg is a folder"),
    "png-of-8000x8000": (lambda ws: ws.write("imgs/big.png", _png_header(8000, 8000)).parent,
                         "8000x8000 pixels, above the 40 megapixels"),
    "empty-png": (lambda ws: ws.write("imgs/e.png", b"").parent, "cannot read image"),
}
for _name, (_make, _message) in IMAGE_FOLDERS.items():
    case(f"parity-images-{_name}", message=_message)(
        lambda ws, m=_make: ["parity", str(ws.artifact("onnx")), "--inputs", "images", "--images", str(m(ws))])
# Refused before the model is loaded, or (labels per class, an artifact already there) before any
# format is exported, whether one format or several are asked for (issue 25, items 8 and 10).
UP_FRONT = {
    "export-calibration-empty-folder": (lambda ws: _export(ws, "-f", "onnx", "-p", "int8", "--calibration", str(
        ws.path("cal").mkdir() or ws.path("cal"))), "holds no images"),
    "export-calibration-zero-byte-png": (lambda ws: _export(ws, "-f", "onnx,executorch", "-p", "int8", "--calibration",
                                                            str(ws.write("cal/a.png", b"").parent)), "cannot read image"),
    "export-palettize-4-below-ios18": (lambda ws: _export(ws, "-f", "coreml", "--palettize", "4"),
                                       "--palettize 4 needs --deployment-target iOS18"),
    "export-w8a8-target-unknown": (lambda ws: _export(ws, "-f", "coreml", "-p", "w8a8", "--deployment-target", "iOS99"),
                                   "unknown or too old deployment target"),
    "export-labels-one-per-class": (lambda ws: _export(ws, "-f", "onnx,coreml", "--labels", str(
        ws.write("three.txt", "a\nb\nc\n"))), "has 3 labels, the model has 1000 classes"),
    "export-named-format-cannot": (lambda ws: _export(ws, "-f", "onnx,ort", "-p", "int8"),
                                   "ort export supports precision fp32"),
    "export-artifact-already-there": (lambda ws: ws.write("out/casvit_xs_32_fp32_opset18.onnx", "x") and _export(
        ws, "-f", "onnx,executorch", "--opset", "18"), "casvit_xs_32_fp32_opset18.onnx already exists"),
}
for _name, (_build, _message) in UP_FRONT.items():
    case(_name, message=_message)(_build)
case("export-calibration-fifo-named-png", message="a.png is a FIFO")(  # W8A8 reads its calibration set first
    lambda ws: _export(ws, "-f", "coreml", "-p", "w8a8", "--deployment-target", "iOS17", "--calibration",
                       str(_fifo(ws, "cal/a.png").parent)))


def write_corpus(folder: Path) -> list[str]:
    """Write the inputs of every case that needs no exported artifact into `folder`."""
    from tests.conftest import official_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / "good.pth"
    torch.save(official_checkpoint(random_model("xs")), checkpoint)

    def no_artifacts(fmt):
        raise LookupError(fmt)

    written = []
    for c in CASES:
        ws = Workspace(folder / c.name, folder / c.name / "public", folder / "sentinel", checkpoint, no_artifacts)
        ws.public.mkdir(parents=True, exist_ok=True)
        try:
            c.build(ws)
            written.append(c.name)
        except LookupError:
            shutil.rmtree(ws.folder)
    return written


if __name__ == "__main__":
    names = write_corpus(Path(sys.argv[1]))
    print(f"{len(names)} of {len(CASES)} cases written to {sys.argv[1]}")
