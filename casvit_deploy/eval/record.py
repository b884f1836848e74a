"""Each artifact's result, recorded in its manifest (store/manifests.py `append_evaluation`,
under the folder's lock) and tied to the bytes that were evaluated: an artifact that differs
from its manifest, or that changed while it was evaluated, gets no record (a note says so)."""

from __future__ import annotations

from casvit_deploy.artifacts.records import DatasetRecord, EvaluationRecord
from casvit_deploy.errors import CasvitError
from casvit_deploy.eval.report import EvalReport, ModelResult
from casvit_deploy.eval.subjects import Subjects
from casvit_deploy.store import manifests


def dataset_record(report: EvalReport) -> DatasetRecord:
    data, fingerprint = report.dataset, report.dataset.fingerprint
    return DatasetRecord(str(data.source.resolve()), data.kind, fingerprint.files, fingerprint.sha256, data.classes)


def evaluation_record(result: ModelResult, reference: ModelResult, sha256: str, report: EvalReport) -> EvaluationRecord:
    drop = result.drop
    return EvaluationRecord(sha256, dataset_record(report), result.top1, result.top5, reference.top1, reference.top5,
                            drop.drop_pp, (drop.low_pp, drop.high_pp), result.agreement, result.engine,
                            max_top1_drop=report.max_top1_drop, passed=result.passed)


def record_results(report: EvalReport, subjects: Subjects) -> None:
    """Append each artifact's record to its manifest; what stops one becomes a note on its result."""
    by_name = {r.name: r for r in report.results}
    for subject in subjects.subjects:
        result = by_name[subject.name]
        if subject.sha256 != subject.manifest.sha256:
            result.notes.append("not recorded in the manifest: the artifact differs from it (sha256)")
            continue
        record = evaluation_record(result, by_name[result.reference], subject.sha256, report)
        try:
            manifests.append_evaluation(subject.path, record, subject.manifest.sha256)
        except CasvitError as err:
            result.notes.append(f"not recorded in the manifest: {err}")
        except OSError as err:
            result.notes.append(f"not recorded in the manifest: {err.strerror or err}")
