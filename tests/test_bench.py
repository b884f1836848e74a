"""The benchmark machinery: statistics, report files, the compare gate, error paths.

No assertion here depends on how fast the machine is.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from casvit_deploy.bench import BenchConfig, ModelSource, Schedule, plan, summarize
from casvit_deploy.bench.compare import compare, load_baseline, regressions
from casvit_deploy.bench.results import BenchReport, BenchResult, baseline_for, fill_derived
from casvit_deploy.bench.session import select_backends
from casvit_deploy.bench.timing import measure
from casvit_deploy.bench.writers import CSV_FIELDS, RESULT_HEADERS, to_csv, to_json, to_markdown
from casvit_deploy.cli import app
from casvit_deploy.errors import UsageError
from casvit_deploy.formats.executorch.options import ExecuTorchOptions
from casvit_deploy.formats.onnx.options import OnnxOptions
from casvit_deploy.settings import Form

runner = CliRunner()


def test_summarize_known_samples():
    stats = summarize([0.001, 0.002, 0.003, 0.004, 0.010], batch=4)
    assert stats.iters == 5
    assert stats.p50_ms == pytest.approx(3.0)
    assert stats.p90_ms == pytest.approx(7.6)  # 4 + 0.6 * (10 - 4), linear interpolation
    assert stats.p99_ms == pytest.approx(9.76)
    assert stats.mean_ms == pytest.approx(4.0)
    assert stats.std_ms == pytest.approx(3.5355339, rel=1e-6)  # sample std, ddof=1
    assert stats.min_ms == pytest.approx(1.0)
    assert stats.throughput == pytest.approx(4 / 0.003)


def test_summarize_spread_and_noise_on_synthetic_timings():
    from casvit_deploy.bench.stats import noise

    stats = summarize([t / 1e3 for t in (8, 9, 10, 11, 12, 40)], batch=1)
    assert (stats.min_ms, stats.max_ms) == (8.0, 40.0)
    assert stats.p25_ms == pytest.approx(9.25) and stats.p75_ms == pytest.approx(11.75)
    quiet = noise(stats, [10.4, 10.6])
    assert quiet.iqr_pct == pytest.approx(100 * 2.5 / 10.5) and quiet.round_spread_pct == pytest.approx(100 * 0.2 / 10.5)
    assert quiet.reasons() == ["IQR 24% of the median (limit 10%)"]
    steady = summarize([t / 1e3 for t in (10.0, 10.1, 10.2, 10.3)], batch=1)
    assert noise(steady, [10.1]).reasons() == []  # one round: no round spread to judge
    assert noise(steady, [9.0, 10.5]).reasons() == ["round medians differ by 15% (limit 10%)"]


def test_noisy_results_are_flagged_in_every_output():
    from casvit_deploy.bench.tables import results_table

    noisy = _result("eager", runs_ms=[5, 10, 10, 20, 30], rounds_ms=[10, 10])
    report = _report([noisy, _result("onnxruntime", 5.0)])
    fill_derived(report.results, {"cpu": 400.0})
    assert "noisy: xs deploy eager fp32 b1: IQR 100% of the median" in results_table(report).caption
    assert "- noisy: xs deploy eager fp32 b1" in to_markdown(report)
    rows = json.loads(to_json(report))["results"]
    assert [r["noisy"] for r in rows] == [True, False] and rows[0]["iqr_pct"] == pytest.approx(100.0)


def test_compare_calls_a_change_within_the_noise_inconclusive():
    from casvit_deploy.bench.compare import INCONCLUSIVE, inconclusive

    base = [_result("eager", runs_ms=[8, 9, 10, 11, 12]), _result("onnxruntime", 5.0)]
    now = [_result("eager", runs_ms=[9, 10, 11.5, 20, 30]), _result("onnxruntime", 6.0)]
    changes = {c.key[2]: c for c in compare(now, base, threshold_pct=10.0)}
    assert changes["eager"].change_pct == pytest.approx(15.0) and changes["eager"].noise_pct > 15.0
    assert changes["eager"].status == INCONCLUSIVE and inconclusive(list(changes.values())) == [changes["eager"]]
    assert changes["onnxruntime"].status == "regressed" and changes["onnxruntime"].noise_pct == 0.0
    assert [c.key[2] for c in regressions(list(changes.values()))] == ["onnxruntime"]
    # beyond both the threshold and the noise: a regression, however noisy
    assert compare([_result("eager", runs_ms=[18, 20, 23, 40, 60])], base[:1], 10.0)[0].status == "regressed"


def test_a_change_in_the_machines_gemm_rate_counts_as_noise():
    from casvit_deploy.bench.compare import INCONCLUSIVE, machine_change_pct

    before, now = _report([_result("onnxruntime", 5.0)]), _report([_result("onnxruntime", 8.0)])
    now.gemm["cpu"]["fp32_gflops"] = 200.0  # the machine runs GEMM at half the baseline's rate
    machine = machine_change_pct(now, before)
    assert machine == {"cpu": pytest.approx(100.0)}
    assert compare(now.results, before.results, 10.0, machine)[0].status == INCONCLUSIVE  # +60% < 100%
    assert compare(now.results, before.results, 10.0)[0].status == "regressed"


def test_a_baseline_saved_before_the_spread_fields_still_loads():
    row = _result("eager", 10.0).to_dict()
    for name in ("p10_ms", "p25_ms", "p75_ms", "max_ms", "iqr_ms", "iqr_pct", "round_spread_pct", "noisy"):
        row.pop(name)
    old = BenchResult.from_dict(row)
    assert old.stats.iqr_ms is None and old.noise.pct == 0.0


def test_summarize_single_run_and_bad_input():
    assert summarize([0.5], 1).std_ms == 0.0
    with pytest.raises(ValueError):
        summarize([], 1)
    with pytest.raises(ValueError):
        summarize([0.1], 0)


def test_measure_counts_warmup_and_iters():
    calls = []
    samples = measure(lambda: calls.append(1), Schedule(warmup=3, iters=7))
    assert len(samples) == 7 and len(calls) == 10 and all(s >= 0 for s in samples)


def test_measure_min_time_runs_until_budget():
    samples = measure(lambda: None, Schedule(warmup=0, iters=None, min_time=0.02, min_iters=4))
    assert len(samples) >= 4


def test_fitted_schedule_cuts_slow_cases_to_the_budget():
    fits = Schedule(warmup=10, iters=50)
    assert fits.fitted(0.01, budget_s=20) is fits  # 60 runs x 10 ms = 0.6 s: unchanged
    cut = fits.fitted(2.0, budget_s=20)  # 60 runs x 2 s = 120 s
    assert (cut.warmup, cut.iters, cut.min_time) == (0, 10, None)
    assert fits.fitted(30.0, budget_s=20).iters == 3  # never fewer than min_runs
    assert Schedule(warmup=0, iters=None, min_time=60).fitted(2.0, 20).iters == 10


def _result(backend="eager", p50=10.0, precision="fp32", batch=1, form="deploy", model="xs", cl=False,
            runs_ms=None, rounds_ms=None):
    stats = summarize([ms / 1e3 for ms in runs_ms or [p50] * 3], batch)
    return BenchResult(model=model, variant="xs", weights="random weights, not pretrained", form=form, passes=[],
                       backend=backend, engine="e", device="cpu", precision=precision, batch=batch, resolution=64,
                       channels_last=cl, threads=2, stats=stats, round_p50_ms=rounds_ms or [p50], load_s=0.1,
                       first_inference_ms=p50, peak_rss_mb=100.0, gflop_per_image=2.0)


def _report(results):
    env = {"cpu": "test cpu", "cores_usable": 2, "memory_gb": 1.0, "gpu": None, "os": "os", "python": "3",
           "packages": {"torch": "x"}}
    return BenchReport(env, {}, {"cpu": {"fp32_gflops": 400.0, "fp32_gflops_start": 400.0,
                                         "fp32_gflops_end": 390.0, "threads": 2}}, results)


def test_derived_speedup_and_gflops():
    results = [_result("eager", 20.0), _result("onnxruntime", 5.0), _result("eager", 30.0, batch=8),
               _result("onnxruntime", 10.0, form="upstream")]
    fill_derived(results, {"cpu": 400.0})
    assert results[1].speedup_vs_eager == pytest.approx(4.0)
    assert results[1].achieved_gflops == pytest.approx(2.0 / 0.005)
    assert results[1].gemm_fraction == pytest.approx(1.0)
    assert results[2].speedup_vs_eager == pytest.approx(1.0)
    assert results[3].speedup_vs_eager is None  # no eager upstream row: no made-up baseline


def test_table_names_the_fastest_result_per_image():
    from casvit_deploy.bench.tables import results_table

    report = _report([_result("eager", 30.0), _result("executorch", 8.0), _result("onnxruntime", 20.0, batch=4)])
    fill_derived(report.results, {"cpu": 400.0})
    caption = results_table(report).caption
    assert "Fastest here: onnxruntime (deploy form, fp32, batch 4, cpu) 20.00 ms p50, 200.0 img/s" in caption


def test_baseline_prefers_contiguous_fp32_eager():
    rows = [_result("eager", 9.0, cl=True), _result("eager", 12.0), _result("eager", 4.0, precision="fp16")]
    assert baseline_for(_result("compile", 1.0), rows) is rows[1]


def test_json_round_trip_and_csv_and_markdown(tmp_path):
    report = _report([_result("eager", 20.0), _result("executorch", 4.0)])
    fill_derived(report.results, {"cpu": 400.0})
    data = json.loads(to_json(report))
    assert data["schema"] == "casvit-bench/1" and data["environment"]["cpu"] == "test cpu"
    again = BenchReport.from_dict(data)
    assert [r.key() for r in again.results] == [r.key() for r in report.results]
    assert again.results[1].stats == report.results[1].stats
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert list(rows[0]) == list(CSV_FIELDS) and len(rows) == 2
    assert float(rows[1]["p50_ms"]) == pytest.approx(4.0) and float(rows[1]["speedup_vs_eager"]) == pytest.approx(5.0)
    md = to_markdown(report).splitlines()
    table = [line for line in md if line.startswith("|")]
    assert len(table) == 4 and len({line.count("|") for line in table}) == 1
    assert any("test cpu" in line for line in md) and any("GEMM fp32" in line for line in md)


def test_compare_flags_regressions_beyond_threshold():
    base = [_result("eager", 10.0), _result("onnxruntime", 5.0), _result("executorch", 4.0)]
    now = [_result("eager", 10.9), _result("onnxruntime", 5.6), _result("compile", 3.0)]
    changes = {c.key[2]: c for c in compare(now, base, threshold_pct=10.0)}
    assert changes["eager"].status == "same"
    assert changes["onnxruntime"].status == "regressed" and changes["onnxruntime"].change_pct == pytest.approx(12.0)
    assert changes["compile"].status == "new" and changes["executorch"].status == "missing"
    assert [c.key[2] for c in regressions(list(changes.values()))] == ["onnxruntime"]
    assert compare([_result("eager", 8.0)], base[:1], 10.0)[0].status == "improved"


def test_bad_baseline_files(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_baseline(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(UsageError, match="not readable JSON"):
        load_baseline(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"results": []}))
    with pytest.raises(UsageError, match="not a casvit bench report"):
        load_baseline(tmp_path / "y.json")


def test_select_backends():
    with pytest.raises(UsageError, match="unknown backend 'nope'"):
        select_backends(["nope"], "cpu")
    with pytest.raises(UsageError, match="cudagraph cannot run here"):
        select_backends(["cudagraph"], "cpu")
    chosen, skipped = select_backends(["all"], "cpu")
    assert "eager" in chosen and "cudagraph" not in chosen
    assert any(s.backend == "cudagraph" for s in skipped)


@pytest.mark.skipif(sys.platform == "darwin", reason="CoreML runs on macOS")
def test_coreml_skipped_under_all_and_refused_explicitly():
    chosen, skipped = select_backends(["all"], "cpu")
    assert "coreml" not in chosen
    assert "macOS" in next(s.reason for s in skipped if s.backend == "coreml")
    with pytest.raises(UsageError, match="macOS"):
        select_backends(["coreml"], "cpu")


def test_plan_adds_eager_fp32_baseline_first():
    src = ModelSource("xs", object(), 64)
    cases = plan([src], BenchConfig(("onnxruntime",), batches=(1, 4), precisions=("fp32",),
                                    forms=(Form.UPSTREAM, Form.DEPLOY)))
    assert [(c.backend, c.batch, c.form.value) for c in cases] == [
        ("eager", 1, "upstream"), ("onnxruntime", 1, "upstream"), ("eager", 4, "upstream"), ("onnxruntime", 4, "upstream"),
        ("eager", 1, "deploy"), ("onnxruntime", 1, "deploy"), ("eager", 4, "deploy"), ("onnxruntime", 4, "deploy")]


@pytest.mark.parametrize("args, message", [
    (["-b", "nope"], "unknown backend 'nope'"),
    (["-b", "cudagraph"], "CUDA graphs need --device cuda"),
    (["-b", "eager", "--iters", "3", "--min-time", "1"], "not both"),
    (["-b", "eager", "--batch", "0"], "--batch must be from 1"),
    (["-b", "eager", "--precision", "int4"], "'int4' is not one of"),
    (["-b", "eager", "--threads", "-3"], "--threads -3: must be from 1"),
    (["-b", "eager", "--compile-mode", "turbo"], "--compile-mode 'turbo'"),
    (["-b", "eager", "--device", "tpu"], "'tpu' is not one of"),
    (["-b", "eager", "--resolution", "100"], "multiple of 32"),
    (["-b", "eager", "--json", "/no/such/dir/out.json"], "does not exist"),
    (["missing.onnx"], "does not exist"),
])
def test_cli_usage_errors_exit_2(args, message, tmp_path):
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_exits_2():
    result = runner.invoke(app, ["bench", "-b", "eager", "--device", "cuda"])
    assert result.exit_code == 2 and "no CUDA GPU" in result.output


def test_cli_eager_run_writes_every_output_and_gates_on_compare(tmp_path):
    files = {k: tmp_path / f"out.{k}" for k in ("json", "csv", "md")}
    args = ["bench", "-b", "eager", "--resolution", "64", "--iters", "3", "--warmup", "1", "--threads", "1",
            "--both-forms", "--json", str(files["json"]), "--csv", str(files["csv"]), "--markdown", str(files["md"])]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(files["json"].read_text())
    assert {r["form"] for r in data["results"]} == {"upstream", "deploy"}
    assert all(r["threads"] == 1 and r["iters"] == 3 for r in data["results"])
    assert data["environment"]["packages"]["torch"] == __import__("importlib.metadata").metadata.version("torch")
    assert files["csv"].read_text().count("\n") == 3 and "| xs | deploy | eager |" in files["md"].read_text()
    # a baseline 1000x faster than anything real: the comparison must report a regression, exit 1
    for row in data["results"]:
        for name in [k for k, v in row.items() if k.endswith("_ms") and isinstance(v, float)]:
            row[name] /= 1000
        row["round_p50_ms"] = [ms / 1000 for ms in row["round_p50_ms"]]
    fast = tmp_path / "fast.json"
    fast.write_text(json.dumps(data))
    gated = runner.invoke(app, ["bench", "-b", "eager", "--resolution", "64", "--iters", "3", "--warmup", "1",
                                "--threads", "1", "--compare", str(fast)])
    assert gated.exit_code == 1 and "regressed" in gated.output


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_backends_run(tmp_path):
    out = tmp_path / "gpu.json"
    result = runner.invoke(app, ["bench", "-b", "eager", "-b", "cudagraph", "--device", "cuda", "--resolution", "64",
                                 "--precision", "fp16", "--channels-last", "--iters", "5", "--warmup", "2",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert {r["backend"] for r in data["results"]} == {"eager", "cudagraph"}
    assert all(r["cuda_peak_mb"] > 0 for r in data["results"]) and data["environment"]["gpu"]["name"]


def test_onnxruntime_exports_once_into_the_cache(tmp_path):
    args = ["bench", "-b", "onnxruntime", "--resolution", "64", "--iters", "3", "--warmup", "1", "--threads", "1",
            "--cache-dir", str(tmp_path / "cache")]
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    assert runner.invoke(app, [*args, "--json", str(first)]).exit_code == 0
    assert runner.invoke(app, [*args, "--json", str(second)]).exit_code == 0
    rows = [next(r for r in json.loads(p.read_text())["results"] if r["backend"] == "onnxruntime")
            for p in (first, second)]
    assert rows[0]["export_s"] > 0 and rows[1]["export_s"] is None  # second run: cache hit
    assert rows[0]["artifact"] == rows[1]["artifact"] and rows[0]["artifact_mb"] > 0
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_cache_key_changes_with_the_exporter_code():
    """A changed exporter (or rewrite, or backend version) must not be served a stale artifact."""
    from casvit_deploy.bench.cache import ExportKey, exporter_fingerprint

    args = ("seed:0", "xs", 224, "fp32", 1, "onnx", "deploy", ("fold_conv_bn",), OnnxOptions())
    assert ExportKey(*args).code == exporter_fingerprint() and len(exporter_fingerprint()) == 16
    assert ExportKey(*args, code="a").folder() != ExportKey(*args, code="b").folder()
    assert ExportKey(*args).folder() == ExportKey(*args).folder()
    other = ("seed:0", "xs", 224, "fp32", 1, "executorch", "deploy", ("fold_conv_bn",))
    assert ExportKey(*other, ExecuTorchOptions()).folder() != ExportKey(*other, ExecuTorchOptions(allow_portable=True)).folder()


@pytest.mark.slow  # a second ExecuTorch lowering, on reference kernels
def test_executorch_portable_runs_on_reference_kernels_within_its_budget(tmp_path):
    """The undelegated lowering: no XNNPACK subgraph, every op on portable kernels."""
    out = tmp_path / "p.json"
    result = runner.invoke(app, ["bench", "-b", "executorch-portable", "--resolution", "64", "--iters", "3", "--warmup", "1",
                                 "--threads", "1", "--no-baseline", "--cache-dir", str(tmp_path / "cache"),
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text())["results"][0]
    manifest = json.loads((tmp_path / "cache").glob("*/*.manifest.json").__next__().read_text())
    assert manifest["options"]["delegate"] == "portable"
    delegation = manifest["details"]["delegation"]
    assert delegation["delegated_subgraphs"] == 0 and delegation["portable_nodes"] > 100
    assert row["backend"] == "executorch-portable" and row["iters"] == 3
    # the same .pte given as an artifact is recognised from its manifest as undelegated
    again = runner.invoke(app, ["bench", row["artifact"], "--iters", "2", "--warmup", "0", "--threads", "1",
                                "--no-baseline", "--json", str(out)])
    assert again.exit_code == 0, again.output
    assert json.loads(out.read_text())["results"][0]["backend"] == "executorch-portable"
    # benchmarks/profile_executorch.py reads the per-op trace of the same program
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "profile_executorch.py"
    profile = subprocess.run([sys.executable, str(script), row["artifact"], "--runs", "2"],
                             capture_output=True, text=True, timeout=300)
    assert profile.returncode == 0, profile.stderr[-2000:]
    assert "portable convolution.out" in profile.stdout and "untraced time" in profile.stdout


def test_int8_rows_get_speedup_and_size_vs_the_same_backends_fp32_and_their_agreement():
    results = [_result("executorch", 8.0), _result("executorch", 4.0, precision="int8"),
               _result("onnxruntime", 9.0), _result("onnxruntime", 10.0, precision="int8")]
    for r, mb in zip(results, (12.0, 3.0, 12.5, 3.5)):
        r.artifact_mb = mb
    results[1].agreement = {"cosine": 0.9991, "top1": 1.0}
    fill_derived(results, {"cpu": 400.0})
    assert results[1].speedup_vs_fp32 == pytest.approx(2.0) and results[1].size_vs_fp32 == pytest.approx(0.25)
    assert results[3].speedup_vs_fp32 == pytest.approx(0.9) and results[0].speedup_vs_fp32 is None
    markdown = to_markdown(_report(results))
    assert "| vs fp32 |" in markdown and "2.00x" in markdown and "0.99910" in markdown and "25%" in markdown
    row = next(csv.DictReader(io.StringIO(to_csv(_report(results)))))
    assert set(CSV_FIELDS) >= {"speedup_vs_fp32", "cosine"} and row["backend"] == "executorch"


def test_pytorch_backends_refuse_int8_with_a_reason():
    from casvit_deploy.bench.backends import known_backends
    from casvit_deploy.settings import Precision

    BACKENDS = known_backends()

    for name in ("eager", "compile", "cudagraph"):
        assert "int8 runs on onnxruntime and executorch" in BACKENDS[name].unsupported(Precision.INT8)
    assert BACKENDS["onnxruntime"].unsupported(Precision.INT8) is None
    assert BACKENDS["executorch"].unsupported(Precision.INT8) is None
    assert BACKENDS["coreml"].unsupported(Precision.INT8) is None  # int8 weights (CoreML compression)
    assert "onnx exporter supports" in BACKENDS["onnxruntime"].unsupported(Precision.W8A8)


def test_a_matching_export_under_models_exports_is_reused(tmp_path, monkeypatch):
    """`casvit export` output is timed as it is, not exported again into the cache; an
    artifact whose manifest differs from the case (or whose bytes changed) is not used."""
    monkeypatch.chdir(tmp_path)
    exported = runner.invoke(app, ["export", "-f", "onnx", "-r", "64", "--no-check"])
    assert exported.exit_code == 0, exported.output
    artifact = tmp_path / "models/exports/xs_64_fp32/casvit_xs_64_fp32.onnx"
    args = ["bench", "-b", "onnxruntime", "-r", "64", "--iters", "2", "--warmup", "0", "--threads", "1",
            "--no-baseline", "--json", "-"]
    row = json.loads(runner.invoke(app, args).stdout)["results"][0]
    assert Path(row["artifact"]).resolve() == artifact.resolve() and row["export_s"] is None
    assert not (tmp_path / "models/cache").exists()
    # another case (batch 2) does not match the batch-1 export: exported into the cache
    row = json.loads(runner.invoke(app, [*args, "--batch", "2"]).stdout)["results"][0]
    assert "models/cache" in row["artifact"] and row["export_s"] > 0
    from casvit_deploy.bench.cache import ExportKey, exported_match, weights_key
    from casvit_deploy.model import load_model
    from casvit_deploy.rewrite import deploy_form

    loaded = load_model(None, "xs")
    passes = tuple(deploy_form(loaded.model, Form.DEPLOY, ())[1])
    from casvit_deploy.settings import Resolution

    key = ExportKey(weights_key(loaded), "xs", Resolution(64, 64), "fp32", 1, "onnx", "deploy", passes, OnnxOptions())
    assert exported_match(loaded, key, Path("models/exports")) == Path("models/exports") / artifact.relative_to(
        tmp_path / "models/exports")
    with open(artifact, "ab") as fh:
        fh.write(b"\0")  # modified after export: its manifest no longer vouches for it
    assert exported_match(loaded, key, Path("models/exports")) is None


def test_plot_has_spread_values_weights_note_and_machine(tmp_path):
    from casvit_deploy.bench.plot import footer, iqr_images_per_s, write_plot

    report = _report([_result("eager", runs_ms=[8, 10, 10, 12, 14]), _result("onnxruntime", 5.0)])
    low, high = iqr_images_per_s(report.results[0])
    assert (low, high) == (pytest.approx(1e3 / 12), pytest.approx(1e3 / 10))
    assert "test cpu" in footer(report) and "random weights, not pretrained" in footer(report)
    assert "GEMM fp32 cpu: 400 GFLOP/s" in footer(report)
    write_plot(report, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("field, value", [("p25_ms", "fast"), ("round_p50_ms", ["x"]), ("p75_ms", -1.0)])
def test_a_baseline_with_unusable_spread_fields_is_refused_in_one_line(tmp_path, field, value):
    data = json.loads(to_json(_report([_result("eager", 10.0)])))
    data["results"][0][field] = value
    data["gemm"] = {"cpu": {"fp32_gflops": "many"}}  # refused too, after the results
    path = tmp_path / "base.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=field.split("[")[0]):
        load_baseline(path)


def test_a_baseline_sharing_no_case_with_the_run_is_refused_not_passed():
    from casvit_deploy.bench.compare import check_matched

    changes = compare([_result("eager", 10.0, batch=2)], [_result("eager", 10.0), _result("compile", 5.0)], 10.0)
    assert {c.status for c in changes} == {"new", "missing"}
    with pytest.raises(UsageError, match="no case of this run is in the baseline \\(ran xs deploy eager cpu fp32 b2 "
                                         "64; the baseline holds xs deploy eager cpu fp32 b1 64\\)"):
        check_matched(changes, "base.json")
    with pytest.raises(UsageError, match="ran nothing"):
        check_matched(compare([], [_result("eager", 10.0)], 10.0), "base.json")
    check_matched(compare([_result("eager", 10.0), _result("eager", 9.0, batch=2)], [_result("eager", 10.0)], 10.0),
                  "base.json")  # one case compared: the gate can pass


def test_an_int8_artifact_exported_for_npus_is_not_shown_as_a_slowdown():
    from casvit_deploy.bench.writers import NPU_ONLY, npu_lines, result_cells

    results = [_result("onnxruntime", 9.0), _result("onnxruntime", 10.0, precision="int8"),
               _result("executorch", 8.0), _result("executorch", 9.0, precision="int8")]
    results[1].npu_only = True  # its export found it slower than fp32 on the CPU EP
    fill_derived(results, {"cpu": 400.0})
    vs_fp32 = RESULT_HEADERS.index("vs fp32")
    assert result_cells(results[1])[vs_fp32] == NPU_ONLY
    assert result_cells(results[3])[vs_fp32] == "0.89x"  # a slowdown not labelled for NPUs stays a result
    (line,) = npu_lines(results)
    assert "0.90x fp32 on this CPU" in line and "NPU execution providers" in line
    assert f"- {NPU_ONLY}: " in to_markdown(_report(results))


def test_machine_lines_name_the_int8_instructions(monkeypatch):
    from casvit_deploy import machine
    from casvit_deploy.bench.environment import capture_environment, describe_machine

    monkeypatch.setattr(machine, "_cpuinfo", lambda: ["model name : Intel Xeon", "flags : avx2 avx512_vnni amx_int8"])
    assert machine.int8_isa() == ["AVX-512 VNNI", "AMX int8"]
    assert "int8: AVX-512 VNNI, AMX int8" in describe_machine(capture_environment())
    monkeypatch.setattr(machine, "_cpuinfo", lambda: ["model name : AMD EPYC", "flags : avx2 fma"])
    assert "int8: no dot-product instructions" in describe_machine(capture_environment())


def test_profile_says_where_the_time_goes_per_op_kind(small_artifact, tmp_path):
    onnx, pte = small_artifact("onnx"), small_artifact("executorch")
    result = runner.invoke(app, ["bench", str(onnx), str(pte), "--iters", "2", "--warmup", "1", "--threads", "1",
                                 "--no-baseline", "--profile", "--cache-dir", str(tmp_path), "--json", "-"])
    assert result.exit_code == 0, result.output
    profiles = {p["backend"]: p for p in json.loads(result.stdout)["profiles"]}
    assert set(profiles) == {"onnxruntime", "executorch"}
    kinds = {b: {op["kind"] for op in p["ops"]} for b, p in profiles.items()}
    assert "Conv 1x1 (pointwise)" in kinds["onnxruntime"] and "Conv 3x3 depthwise" in kinds["onnxruntime"]
    assert any("GEMM" in k for k in kinds["executorch"]) and any("DWConv" in k for k in kinds["executorch"])
    for p in profiles.values():
        covered = sum(op["ms"] for op in p["ops"][:-1])
        assert p["total_ms"] > 0 and p["ops"][-1]["kind"] == "untraced time"
        assert p["ops"][-1]["ms"] == pytest.approx(max(p["total_ms"] - covered, 0.0))
    assert not any(tmp_path.glob(".profile-*"))  # the trace files went with their folder


def test_an_artifacts_cases_take_its_precision_from_its_manifest(small_artifact):
    """An int8 .pte given to bench is an int8 case whatever --precision says (it was labelled fp32)."""
    from dataclasses import replace

    from casvit_deploy.bench.sources import artifact_source
    from casvit_deploy.settings import Precision

    src = artifact_source(small_artifact("executorch"), None)
    assert src.precision is Precision.FP32  # the manifest's
    config = BenchConfig(("executorch",), precisions=("fp32", "int8"), baseline=False)
    assert [c.precision for c in plan([src], config)] == [Precision.FP32]
    int8 = replace(src, precision=Precision.INT8)
    assert [(c.backend, c.precision) for c in plan([int8], config)] == [("executorch", Precision.INT8)]
