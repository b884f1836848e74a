"""`casvit info`: what a variant or checkpoint is, and what the deploy rewrite does to it;
or, given an exported artifact, what that artifact is and how to feed it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from casvit_deploy.commands.common import (
    BackboneOpt,
    CheckpointOpt,
    EmaOpt,
    JsonOpt,
    ResolutionOpt,
    VariantOpt,
    check_report_paths,
    console,
    emit,
    guarded,
    json_text,
    to_stdout,
)
from casvit_deploy.commands.render import show


def describe(checkpoint=None, variant=None, ema=False, resolution=None, backbone=False) -> dict:
    """Everything `info` reports, as plain data."""
    from casvit_deploy.analysis import count_params, macs_per_stage, op_census
    from casvit_deploy.model import get_variant, load_model
    from casvit_deploy.model.blocks import model_outputs
    from casvit_deploy.rewrite import PASSES, to_deploy

    loaded = load_model(checkpoint, variant, ema, backbone=backbone)
    resolution = loaded.input_resolution(resolution)
    deployed, applied = to_deploy(loaded.model)
    spec = get_variant(loaded.variant)
    upstream_ops, deploy_ops = op_census(loaded.model), op_census(deployed)
    return {
        "variant": spec.name,
        "architecture": {"layers": spec.layers, "dims": spec.dims},
        "weights": loaded.weights,
        "params": count_params(loaded.model),
        "params_deploy": count_params(deployed),
        "resolution": resolution.to_record(),
        "outputs": [{"name": o.name, "stride": o.stride, "shape": list(o.shape(1, resolution))}
                    for o in model_outputs(loaded.model)],
        "gmacs_per_stage": {k: v / 1e9 for k, v in macs_per_stage(loaded.model, resolution).items()},
        "published": {"params_m_with_dist_head": spec.params_m, "gmacs_224": spec.gmacs_224,
                      "top1_paper": spec.top1_paper, "top1_zoo": spec.top1_zoo},
        "checkpoint": asdict(loaded.checkpoint) if loaded.checkpoint else None,
        "notes": loaded.notes,
        "passes": [{"name": p.name, "applied": p.name in applied, "identity": p.summary} for p in PASSES],
        "op_census": {"upstream": dict(upstream_ops), "deploy": dict(deploy_ops)},
    }


def _overview_table(facts: dict) -> Table:
    table = Table(title=f"CAS-ViT-{facts['variant'].upper()}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    arch = facts["architecture"]
    table.add_row("weights", facts["weights"])
    table.add_row("layers / dims", f"{arch['layers']} / {arch['dims']}")
    table.add_row("parameters", f"{facts['params'] / 1e6:.3f} M (deploy form {facts['params_deploy'] / 1e6:.3f} M)")
    table.add_row("outputs", ", ".join(f"{o['name']} {'x'.join(map(str, o['shape']))}"
                                       + (f" (stride {o['stride']})" if o["stride"] else "") for o in facts["outputs"]))
    ckpt = facts["checkpoint"]
    if ckpt:
        table.add_row("classes", str(ckpt["num_classes"]) if not ckpt["fork_feat"] else "backbone (4 feature maps)")
        table.add_row("distillation head", "yes" if ckpt["distillation"] else "no")
        table.add_row("EMA weights", f"{'present' if ckpt['has_ema'] else 'absent'}{', used' if ckpt['used_ema'] else ''}")
        table.add_row("epoch", str(ckpt["epoch"]))
        table.add_row("native resolution", str(ckpt["input_size"] or "not recorded"))
        table.add_row("sha256", ckpt["sha256"])
    for note in facts["notes"]:
        table.add_row("note", note)
    return table


def _macs_table(facts: dict) -> Table:
    size = facts["resolution"]
    table = Table(title=f"GMACs per stage at {size['height']}x{size['width']}")
    table.add_column("stage")
    table.add_column("GMACs", justify="right")
    for stage, gmacs in facts["gmacs_per_stage"].items():
        table.add_row(stage, f"{gmacs:.4f}")
    table.add_row("total", f"{sum(facts['gmacs_per_stage'].values()):.4f}", style="bold")
    return table


def _census_table(facts: dict) -> Table:
    census = facts["op_census"]
    table = Table(title="Op census (one forward pass)")
    table.add_column("op")
    table.add_column("upstream", justify="right")
    table.add_column("deploy", justify="right")
    for op in sorted(set(census["upstream"]) | set(census["deploy"])):
        table.add_row(op, str(census["upstream"].get(op, 0)), str(census["deploy"].get(op, 0)))
    return table


def _passes_table(facts: dict) -> Table:
    table = Table(title="Deploy-form passes, in order")
    table.add_column("pass")
    table.add_column("applied")
    table.add_column("identity")
    for p in facts["passes"]:
        table.add_row(p["name"], "yes" if p["applied"] else "no", p["identity"])
    return table


def _yes_no(flag: bool) -> str:
    return "[green]yes[/]" if flag else "[bold red]NO[/]"


def _tensor_rows(table: Table, kind: str, specs: list[dict]) -> None:
    for spec in specs:
        shape = "x".join(str(d) for d in spec["shape"])
        table.add_row(f"{kind} {spec['name']}", f"{shape} {spec['dtype']}" + (
            f"\n{spec['description']}" if spec.get("description") else ""))


def _quantization_text(q: dict) -> str:
    """Kept float, agreement with fp32 and the CPU speed ratio measured at export, in words."""
    agreement = {k: v for k, v in q["agreement"].items() if isinstance(v, float)}
    lines = [f"kept float: {', '.join(q['kept_float']) or 'nothing'}",
             "agreement with fp32: " + ", ".join(f"{k} {v:.4g}" for k, v in agreement.items())]
    if q["cpu_speed"]:
        from casvit_deploy.machine import describe_int8

        speed = q["cpu_speed"]
        lines.append(f"int8 vs fp32 on {speed.get('cpu', 'the exporting CPU')} "
                     f"({describe_int8(speed.get('int8_isa', []))}): {speed['ratio']:.2f}x; for "
                     f"{speed.get('intended_for', 'CPU')}")
    if q.get("search"):
        lines.append(_search_text(q["search"]))
    if q.get("speed_choice"):
        lines.append(_speed_choice_text(q["speed_choice"]))
    return "\n".join(lines)


def _search_text(search: dict) -> str:
    """Which criterion stopped --auto-keep-float, and where."""
    text = f"--auto-keep-float: chosen by {search['chosen_by']} after {search['trials']} trial(s)"
    data = search.get("labelled_data")
    if data and search.get("top1_drop_pp") is not None:
        return (text + f": top-1 drop {search['top1_drop_pp']:.2f} pp (budget {search['max_top1_drop']:g} pp) "
                f"on {data['files']} labelled images of {data['source']}")
    return text + (f": cosine {search['cosine']:.5f} (target {search['min_cosine']:g})" if search.get("cosine") else "")


def _speed_choice_text(choice: dict) -> str:
    """Per op kind fp32 and int8 time, each candidate tried and the one chosen, in words."""
    kinds = ", ".join(f"{k} fp32 {t['fp32_ms']:.3f} / int8 {t['int8_ms']:.3f} ms"
                      for k, t in choice["op_kinds"].items())
    tried = "; ".join(f"{' + '.join(t['kept_float']) + ' float' if t['kept_float'] else 'as planned'}: "
                      f"{t['vs_fp32']:.2f}x, cosine {t['cosine']:.5f}" for t in choice["trials"])
    chosen = " + ".join(choice["chosen"]) or "nothing more"
    return f"speed choice ({choice['threads']} threads): {kinds}; tried {tried}; kept float for speed: {chosen}"


def _artifact_table(facts: dict) -> Table:
    table = Table(title=f"{Path(facts['artifact']).name} ({facts['format']})", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    model = facts["model"]
    table.add_row("model", f"CAS-ViT-{model['variant'].upper()}, {model['num_classes']} classes, "
                           f"{model['form']} form; {model['weights']}")
    table.add_row("precision", f"{facts['precision']}, {facts['resolution']}x{facts['resolution']}, "
                               f"batch {facts['batch']}, outputs: {facts['head']}")
    _tensor_rows(table, "input", facts["inputs"])
    _tensor_rows(table, "output", facts["outputs"])
    pre = facts["preprocessing"]
    table.add_row("normalization", "inside the model" if pre["normalized_by"] == "model" else "by the app")
    table.add_row("target", ", ".join(f"{k} {v}" for k, v in facts["target"].items()) or "-")
    if facts["mobile_usability"]:
        table.add_row("mobile", facts["mobile_usability"])
    if facts["quantization"]:
        table.add_row("quantization", _quantization_text(facts["quantization"]))
    if facts.get("choices"):
        table.add_row("chosen", "\n".join(facts["choices"]))
    _file_row(table, facts)
    table.add_row("size", f"{facts['size_bytes'] / 1e6:.2f} MB")
    table.add_row("matches manifest", f"{_yes_no(facts['matches_manifest'])} (sha256 {facts['sha256'][:16]}...)")
    parity = facts["parity"]
    checked = "" if "checked_these_bytes" not in parity else (
        f", {parity['checked_at']}, on these bytes: {'yes' if parity['checked_these_bytes'] else 'NO'}")
    table.add_row("parity", f"{parity['status']}{checked}" + (f" ({parity['reason']})" if parity.get("reason") else ""))
    table.add_row("accuracy", _accuracy(facts["evaluation"]))
    table.add_row("tools", ", ".join(f"{k} {v}" for k, v in facts["tools"].items()))
    table.add_row("exported", facts["exported_at"])
    return table


def _file_row(table: Table, facts: dict) -> None:
    """What the file itself says it computes in (formats that read their files), flagged
    when it is not the manifest's precision."""
    found = facts.get("file")
    if not found:
        return
    summary = found["summary"]
    if facts.get("precision") and found.get("computes") not in (None, facts["precision"]):
        summary = f"[bold red]NOT {facts['precision']}[/]: {summary}"
    table.add_row("computes (file)", summary)


def _bare_table(facts: dict) -> Table:
    table = Table(title=f"{Path(facts['artifact']).name} ({facts['format']})", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("manifest", "[bold red]none[/]: described from the file alone (not exported by casvit, or its "
                              "manifest was lost)")
    _file_row(table, facts)
    table.add_row("size", f"{facts['size_bytes'] / 1e6:.2f} MB")
    table.add_row("sha256", facts["sha256"])
    return table


def _accuracy(record: dict | None) -> str:
    """The latest `casvit eval` result in one cell."""
    if record is None:
        return "not evaluated (casvit eval ARTIFACT --data DIR)"
    data, (low, high) = record["dataset"], record["ci95_pp"]
    gate = "" if record["passed"] is None else (
        f", gate {'pass' if record['passed'] else 'FAIL'} (max {record['max_top1_drop']:g} pp)")
    return (f"top-1 {100 * record['top1']:.2f}%, top-5 {100 * record['top5']:.2f}% (eager fp32 "
            f"{100 * record['reference_top1']:.2f}%: drop {record['drop_pp']:.2f} pp [{low:.2f}, {high:.2f}]){gate}; "
            f"{data['files']} images of {data['classes']} classes, {data['source']} (list sha256 "
            f"{data['sha256'][:12]}...), {record['evaluated_at']}, on these bytes: "
            f"{'yes' if record['evaluated_these_bytes'] else 'NO'}")


def _describe_artifact(artifact: Path, json, model_flags: dict) -> None:
    from casvit_deploy.errors import UsageError
    from casvit_deploy.store.describe import describe_artifact

    given = [flag for flag, value in model_flags.items() if value]
    if given:
        raise UsageError(f"{given[0]} describes a model, not an artifact; give either an ARTIFACT or model options")
    facts = describe_artifact(artifact)
    emit(json, lambda: json_text(facts))
    if not to_stdout(json):
        show(console(), _artifact_table(facts) if facts.get("manifest", True) is not None else _bare_table(facts))


@guarded
def info(artifact: Annotated[Optional[Path], typer.Argument(
             help="An exported artifact (.onnx, .ort, .mlpackage, .pte, .tflite) to describe from its manifest.",
             metavar="ARTIFACT", show_default=False)] = None,
         checkpoint: CheckpointOpt = None, variant: VariantOpt = None, ema: EmaOpt = False,
         backbone: BackboneOpt = False, resolution: ResolutionOpt = None, json: JsonOpt = None) -> None:
    """Describe a model (variant or checkpoint) or an exported ARTIFACT.

    A model: parameters, outputs, GMACs per stage, checkpoint facts, passes, op census. An
    artifact: interface and what to feed it, preprocessing, target, size, parity, integrity.
    """
    check_report_paths(json=json)
    if artifact is not None:
        flags = {"--checkpoint": checkpoint, "--variant": variant, "--ema": ema, "--resolution": resolution,
                 "--backbone": backbone}
        return _describe_artifact(artifact, json, flags)
    facts = describe(checkpoint, variant, ema, resolution, backbone)
    emit(json, lambda: json_text(facts))
    if to_stdout(json):
        return
    show(console(), _overview_table(facts), _macs_table(facts), _passes_table(facts), _census_table(facts))
