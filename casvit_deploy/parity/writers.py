"""Writing parity reports for machines: JSON, and JUnit XML that CI systems display."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from casvit_deploy.parity.report import ParityReport


def to_json(reports: Sequence[ParityReport]) -> str:
    """{"passed": all passed, "reports": [...]}."""
    data = {"passed": all(r.passed for r in reports), "reports": [r.to_dict() for r in reports]}
    return json.dumps(data, indent=2, allow_nan=False, default=str) + "\n"


def _testcase(suite: ET.Element, classname: str, name: str, failures: list[str], seconds: float,
              details: str = "", kind: str = "ParityFailure") -> None:
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{seconds:.3f}")
    if failures:
        failure = ET.SubElement(case, "failure", message=failures[0], type=kind)
        failure.text = "\n".join(failures + ([details] if details else []))
    elif details:
        ET.SubElement(case, "system-out").text = details


def _integrity_case(suite: ET.Element, report: ParityReport) -> int:
    """The "integrity" testcase (the artifact is the one its manifest describes); 1 if it failed."""
    integrity = report.integrity
    if integrity is None:
        return 0
    details = f"sha256 checked {integrity.sha256}, exported {integrity.expected_sha256}"
    if integrity.modified and integrity.allowed:
        details += "\nmodified, checked as it is (--allow-modified): " + "; ".join(integrity.differences)
    _testcase(suite, f"parity.{report.format}", "integrity", integrity.failures, 0.0, details, "ModifiedArtifact")
    return int(bool(integrity.failures))


def _localization_text(report: ParityReport) -> str:
    loc = report.localization
    if loc is None:
        return ""
    lines = [f"per-block comparison ({loc.engine}, {loc.input_set} sample {loc.sample}): "
             f"{report.divergence()}"]
    lines += [f"  {b.block:<14} {b.status:<9} rel {b.rel_err if b.rel_err is not None else '-'}" for b in loc.blocks]
    return "\n".join(lines + ([loc.note] if loc.note else []))


def junit_tree(reports: Sequence[ParityReport]) -> ET.ElementTree:
    """One <testsuite> per artifact, one <testcase> per input set and output."""
    root = ET.Element("testsuites", name="casvit parity")
    for report in reports:
        suite = ET.SubElement(root, "testsuite", name=Path(report.artifact).name)
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="engine", value=report.engine)
        share = report.seconds / max(1, len(report.input_sets))
        details = _localization_text(report)
        failed = _integrity_case(suite, report)
        for s in report.input_sets:
            _testcase(suite, f"parity.{report.format}", s.name, s.failures, share, details if s.failures else "")
        failed += sum(1 for s in report.input_sets if s.failures)
        suite.set("tests", str(len(report.input_sets) + (report.integrity is not None)))
        suite.set("failures", str(failed))
        suite.set("errors", "0")
        suite.set("time", f"{report.seconds:.3f}")
    root.set("tests", str(sum(int(s.get("tests")) for s in root)))
    root.set("failures", str(sum(int(s.get("failures")) for s in root)))
    return ET.ElementTree(root)


def to_junit(reports: Sequence[ParityReport]) -> str:
    """JUnit XML that CI systems display."""
    tree = junit_tree(reports)
    ET.indent(tree)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(tree.getroot(), encoding="unicode") + "\n"
