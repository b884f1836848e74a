"""Install extras: the core runs without any format backend, each format names its extra
when missing, and pyproject's extras match the format table.

"Not installed" is simulated in a subprocess by setting the packages' entries in
sys.modules to None: `import` then raises ModuleNotFoundError and importlib's find_spec
returns None, as without the distribution.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from casvit_deploy.formats import FORMATS

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
PLOT = ("matplotlib",)
PHOTOS = ("skimage",)
BACKEND_MODULES = {"onnx": ("onnx", "onnxruntime", "onnxscript", "onnx_ir"), "coreml": ("coremltools",),
                   "executorch": ("executorch", "torchao"),
                   "litert": ("litert_torch", "ai_edge_litert", "litert_converter", "ai_edge_quantizer")}
OUTSIDE_ALL = {"litert"}  # ~0.9 GB more (jax, the converter): an extra of its own, README "LiteRT"
CORE_ONLY = tuple(m for mods in BACKEND_MODULES.values() for m in mods) + PLOT + PHOTOS
RUN_WITHOUT = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
sys.argv = ["casvit", *sys.argv[2:]]
from casvit_deploy.cli import run
run()
"""


def casvit_without(missing, *args, cwd: Path | None = None):
    return subprocess.run([sys.executable, "-c", RUN_WITHOUT, ",".join(missing), *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=cwd or ROOT, env={
                              "COLUMNS": "80", "PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
                              "PYTHONPATH": str(ROOT)})


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_core_only_runs_info_and_names_the_extra_of_a_missing_backend():
    info = casvit_without(CORE_ONLY, "info", "-r", "64", "--json", "-")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["op_census"]["deploy"]["conv2d"] > 0
    for fmt in FORMATS.values():
        assert f"pip install 'casvit-deploy[{fmt.extra}]'" in one_line_error(
            casvit_without(CORE_ONLY, "export", "-f", fmt.name))
    assert "pip install 'casvit-deploy[onnx]'" in one_line_error(casvit_without(CORE_ONLY, "bench", "-b",
                                                                                "onnxruntime"))
    assert "no format's backend is installed: pip install 'casvit-deploy[all]'" in one_line_error(
        casvit_without(CORE_ONLY, "export", "-f", "all"))


@pytest.mark.parametrize("command", [("bench", "-b", "eager", "-r", "64"), ("eval", "a.onnx", "--data", "x")])
def test_plot_without_matplotlib_fails_before_any_work(tmp_path, command):
    result = casvit_without(PLOT, *command, "--plot", tmp_path / "chart.png")
    assert "pip install 'casvit-deploy[plot]'" in one_line_error(result)  # no progress line: nothing ran


@pytest.mark.slow  # CI time: a second fresh interpreter exporting; the core-only case stays fast
def test_core_plus_onnx_exports_onnx_and_names_the_coreml_extra(tmp_path):
    missing = BACKEND_MODULES["coreml"] + BACKEND_MODULES["executorch"] + PLOT
    result = casvit_without(missing, "export", "-f", "onnx", "-r", "32", "-o", tmp_path, "--json", "-")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["results"][0]["parity"] == "pass"
    assert "pip install 'casvit-deploy[coreml]'" in one_line_error(casvit_without(missing, "export", "-f", "coreml"))


def test_pyproject_extras_match_the_format_table():
    core = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert core == {"torch", "numpy", "typer", "rich", "safetensors", "psutil"}
    for fmt in FORMATS.values():
        extra = {requirement_name(r) for r in EXTRAS[fmt.extra]}
        assert {p.pip for p in fmt.export_packages + fmt.run_packages} | {"scikit-image"} <= extra, fmt.name
    assert requirement_name(EXTRAS["plot"][0]) == "matplotlib"
    everything = EXTRAS["all"][0]
    inside = [f.extra for f in FORMATS.values() if f.extra not in OUTSIDE_ALL] + ["plot"]
    assert all(name in everything for name in inside) and not any(name in everything for name in OUTSIDE_ALL)
    assert "casvit-deploy[all,litert]" in EXTRAS["test"]  # the tests (and CI) cover every format


def test_every_requirement_is_pinned_and_python_is_what_the_pins_need():
    pinned = {requirement_name(line) for line in (ROOT / "constraints.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    wanted = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    wanted |= {requirement_name(r) for reqs in EXTRAS.values() for r in reqs if not r.startswith("casvit-deploy")}
    assert wanted <= pinned, wanted - pinned
    assert PYPROJECT["project"]["requires-python"].startswith(">=3.11")
    assert sys.version_info >= (3, 11)
