"""Property-based fuzzing (hypothesis) of the parsers of untrusted files: checkpoints,
manifests and bench baselines. Whatever the bytes or field values, the outcome is a result
or the parser's own one-line error, never another exception (a traceback at the CLI), and
no code from a pickle ever runs.

Budget: EXAMPLES examples per target, derandomized (the same examples on every run, so a
CI failure reproduces); CASVIT_FUZZ_SCALE=N multiplies the budget and draws fresh examples.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casvit_deploy.bench.compare import load_baseline
from casvit_deploy.errors import CheckpointError, UsageError
from casvit_deploy.model import load_checkpoint, random_model
from casvit_deploy.store import manifests
from casvit_deploy.store.manifests import manifest_path
from tests.hostile import call_pickle, torch_bytes, with_data_pkl
from tests.manifest_helpers import minimal_manifest

SCALE = int(os.environ.get("CASVIT_FUZZ_SCALE", "1"))
EXAMPLES = {"checkpoint_byte_flips": 100, "pickle_opcodes": 300, "manifest_fields": 2000, "manifest_bytes": 400,
            "baseline_fields": 200}


def budget(target: str):
    return settings(max_examples=EXAMPLES[target] * SCALE, derandomize=SCALE == 1, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


# Values at the edges of what parsers convert: ints beyond float range, non-finite floats, ...
EDGES = [10**400, -10**400, 2**63, 2**31, -1, 0, 1e308, float("nan"), float("inf"), -0.0, "", "x" * 5000, True]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.sampled_from(EDGES),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8)


def flips(size: int, hot: list[tuple[int, int]]):
    """Up to 8 (offset, xor mask) pairs: mostly inside the `hot` byte ranges, some anywhere."""
    anywhere = st.integers(0, size - 1)
    in_hot = st.sampled_from(hot).flatmap(lambda r: st.integers(r[0], r[1] - 1))
    return st.lists(st.tuples(st.one_of(in_hot, in_hot, anywhere), st.integers(1, 255)), min_size=1, max_size=8)


def apply_flips(data: bytes, changes) -> bytes:
    out = bytearray(data)
    for offset, mask in changes:
        out[offset] ^= mask
    return bytes(out)


# --- checkpoints ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint_bytes() -> tuple[bytes, list[tuple[int, int]]]:
    """A small valid checkpoint and its structural byte ranges (the pickle, the zip records)."""
    data = torch_bytes({"model": random_model("xs").state_dict(), "epoch": 3,
                        "args": argparse.Namespace(input_size=224, model="rcvit_xs")})
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        pickle_info = next(i for i in z.infolist() if i.filename.endswith("data.pkl"))
    start = pickle_info.header_offset
    directory = data.rfind(b"PK\x01\x02")
    hot = [(start, start + 64 + pickle_info.compress_size), (directory, len(data))]
    return data, hot


def _load_or_refuse(path: Path) -> None:
    try:
        load_checkpoint(path)
    except CheckpointError as err:
        assert "\n" not in str(err)


@budget("checkpoint_byte_flips")
@given(data=st.data())
def test_checkpoint_byte_flips_load_or_are_refused(checkpoint_bytes, tmp_path_factory, data):
    original, hot = checkpoint_bytes
    path = tmp_path_factory.mktemp("flip") / "c.pth"
    path.write_bytes(apply_flips(original, data.draw(flips(len(original), hot))))
    _load_or_refuse(path)


OPCODES = [b"(", b")", b"]", b"}", b"t", b"\x85", b"\x86", b"\x87", b"R", b"b", b"s", b"u", b"a", b"e", b"0",
           b"2", b"N", b"\x88", b"\x89", b"K\x07", b"M\xff\xff", b"J\xff\xff\xff\x7f", b"h\x00", b"q\x00",
           b"j\x00\x00\x00\x00", b"X\x03\x00\x00\x00abc", b"\x8c\x05input", b"G@\x00\x00\x00\x00\x00\x00\x00",
           b"cargparse\nNamespace\n", b"ctorch._utils\n_rebuild_tensor_v2\n", b"ccollections\nOrderedDict\n",
           b"\x81", b"\x94", b"\x93", b"."]


def _sentinel_payloads(sentinel: Path) -> list[bytes]:
    """Opcode runs that would create a file in the sentinel folder if they ever ran."""
    return [call_pickle("os", "system", f"touch {sentinel / 'a'}")[2:-1],
            call_pickle("builtins", "exec", f"open({str(sentinel / 'b')!r}, 'w')")[2:-1]]


@budget("pickle_opcodes")
@given(data=st.data(), in_zip=st.booleans())
def test_malformed_pickles_are_refused_and_run_nothing(tmp_path_factory, data, in_zip):
    folder = tmp_path_factory.mktemp("pickle")
    sentinel = folder / "sentinel"
    sentinel.mkdir()
    pieces = st.sampled_from(OPCODES + _sentinel_payloads(sentinel)) | st.binary(max_size=6)
    body = b"\x80\x02" + b"".join(data.draw(st.lists(pieces, max_size=30))) + b"."
    path = folder / "c.pth"
    path.write_bytes(with_data_pkl(torch_bytes({}), body) if in_zip else body)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)
    assert not any(sentinel.iterdir())


# --- manifests ------------------------------------------------------------------------------

def _paths(value, prefix=()):
    """Every key path in a JSON document (dict keys and list indices), containers included."""
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, (*prefix, key))


VALID = json.loads(json.dumps(minimal_manifest().to_dict()))
DELETE = object()


def _changed(document: dict, path: tuple, value) -> object:
    if not path:
        return None if value is DELETE else value
    document = json.loads(json.dumps(document))
    target = document
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


def _parse_or_refuse(document) -> None:
    try:
        manifests.parse(document)
    except UsageError as err:
        assert "\n" not in str(err)


@budget("manifest_fields")
@given(path=st.sampled_from(list(_paths(VALID))), value=st.sampled_from(EDGES) | JSON | st.just(DELETE))
def test_manifest_field_values_parse_or_are_refused(path, value):
    _parse_or_refuse(_changed(VALID, path, value))


@budget("manifest_bytes")
@given(data=st.data())
def test_manifest_bytes_parse_or_are_refused(tmp_path_factory, data):
    artifact = tmp_path_factory.mktemp("manifest") / "a.onnx"
    artifact.write_bytes(b"")
    text = json.dumps(VALID, indent=2).encode()
    changed = apply_flips(text, data.draw(flips(len(text), [(0, len(text))])))
    manifest_path(artifact).write_bytes(changed[:data.draw(st.integers(0, len(changed)))])
    try:
        manifests.find(artifact)
    except UsageError as err:
        assert "\n" not in str(err)


# --- bench baselines --------------------------------------------------------------------------

def _baseline_document() -> dict:
    result = {"model": "xs", "variant": "xs", "weights": "w", "form": "deploy", "passes": [], "backend": "eager",
              "engine": "e", "device": "cpu", "precision": "fp32", "batch": 1, "resolution": 32,
              "channels_last": False, "threads": 1, "round_p50_ms": [1.0], "load_s": 0.1,
              "first_inference_ms": 1.0, "peak_rss_mb": 1.0, "iters": 1, "p50_ms": 1.0, "p90_ms": 1.0,
              "p99_ms": 1.0, "mean_ms": 1.0, "std_ms": 0.0, "min_ms": 1.0, "throughput": 1.0}
    return {"schema": "casvit-bench/1", "environment": {}, "config": {}, "gemm": {}, "results": [result]}


BASELINE = _baseline_document()


@budget("baseline_fields")
@given(path=st.sampled_from(list(_paths(BASELINE))), value=st.sampled_from(EDGES) | JSON | st.just(DELETE))
def test_bench_baseline_fields_load_or_are_refused(tmp_path_factory, path, value):
    from casvit_deploy.bench.compare import compare

    file = tmp_path_factory.mktemp("baseline") / "b.json"
    file.write_text(json.dumps(_changed(BASELINE, path, value)))
    try:
        report = load_baseline(file)
    except UsageError as err:
        assert "\n" not in str(err)
        return
    compare(report.results, report.results, 10.0)  # what --compare does with it


def test_the_readme_states_this_budget():
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    stated = {"checkpoint_byte_flips": "checkpoint byte flips", "pickle_opcodes": "pickle opcode streams",
              "manifest_fields": "manifest field values", "manifest_bytes": "manifest bytes",
              "baseline_fields": "bench baseline fields"}
    for target, words in stated.items():
        assert f"{words} {EXAMPLES[target]}" in readme, target
