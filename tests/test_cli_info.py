"""`casvit --version` and `casvit info`: tables, JSON, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from casvit_deploy import __version__
from casvit_deploy.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "160"})


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"casvit-deploy {__version__}"


def test_help_is_instant_and_lists_commands():
    """No heavy backend is imported just to print help."""
    code = ("import sys; from casvit_deploy.cli import app; "
            "heavy = [m for m in ('torch', 'onnx', 'coremltools', 'executorch') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert "info" in invoke("--help").output


def test_info_random_weights_json():
    result = invoke("info", "--variant", "xs", "--json", "-")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output)
    assert facts["weights"] == "random weights, not pretrained"
    assert facts["variant"] == "xs" and facts["resolution"] == {"height": 224, "width": 224}
    assert facts["outputs"] == [{"name": "logits", "stride": None, "shape": [1, 1000]}] and facts["notes"] == []
    assert facts["op_census"]["deploy"].get("batch_norm", 0) == 0
    # stem 2, embeddings 3, head 1, and per block: LI, norm1, norm2, two spatial gates
    assert facts["op_census"]["upstream"]["batch_norm"] == 2 + 3 + 1 + 10 * 5
    assert all(p["applied"] for p in facts["passes"])
    assert sum(facts["gmacs_per_stage"].values()) == pytest.approx(0.547, abs=0.002)


def test_info_checkpoint_table(xs_checkpoint):
    result = invoke("info", "--checkpoint", str(xs_checkpoint))
    assert result.exit_code == 0, result.output
    for text in ("CAS-ViT-XS", "present", "sha256", "fold_conv_bn", "batch_norm", "stage4"):
        assert text in result.output


def test_info_checkpoint_json_facts(checkpoint_factory):
    path = checkpoint_factory("s", distillation=True, num_classes=100, input_size=384)
    facts = json.loads(invoke("info", "-c", str(path), "--json", "-").output)
    ckpt = facts["checkpoint"]
    assert (ckpt["variant"], ckpt["num_classes"], ckpt["distillation"], ckpt["input_size"]) == ("s", 100, True, 384)
    assert facts["resolution"] == {"height": 384, "width": 384} and facts["weights"].startswith("checkpoint ")


@pytest.mark.parametrize("args, message", [
    (["--variant", "xl"], "unknown variant 'xl'"),
    (["--resolution", "200"], "not a multiple of 32 between 32 and 2048"),
    (["--checkpoint", "/nonexistent/x.pth"], "does not exist"),
])
def test_info_errors_are_one_line_exit_2(args, message):
    result = invoke("info", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_wrong_variant_for_checkpoint(xs_checkpoint):
    result = invoke("info", "-c", str(xs_checkpoint), "-v", "m")
    assert result.exit_code == 2 and "pass --variant xs" in result.output


def test_console_script_exit_code(tmp_path):
    bad = tmp_path / "empty.pth"
    bad.write_bytes(b"")
    out = subprocess.run([sys.executable, "-c", "from casvit_deploy.cli import run; run()", "info", "-c", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error:") and "is empty" in out.stderr
    assert "Traceback" not in out.stderr
