"""What one `casvit eval` run evaluates: the artifacts (each opened once through `open_runner`)
and the eager fp32 models they came from (one per checkpoint or random-weights seed and
preprocessing), each predicting class scores for a batch of preprocessed images.

Every artifact must be a classifier with the same number of classes: one labelled set has
one label space. Artifacts and references are grouped by preprocessing, so each group reads
and preprocesses every image once.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from casvit_deploy.artifacts.files import artifact_sha256, artifact_size
from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.data.batches import run_in_batches
from casvit_deploy.errors import UsageError
from casvit_deploy.formats import format_for_path
from casvit_deploy.model.loading import LoadedModel
from casvit_deploy.numerics.accuracy import top_classes
from casvit_deploy.parity.execute import run_all
from casvit_deploy.parity.reference import reference_model
from casvit_deploy.quantize.targets import RESIDUAL_ADDS
from casvit_deploy.runtime.base import RunnerOptions
from casvit_deploy.runtime.eager import EagerRunner
from casvit_deploy.settings import Head
from casvit_deploy.store import manifests
from casvit_deploy.store.runners import open_runner

EAGER = "eager fp32"
EAGER_BATCH = 64  # images per eager forward pass


@dataclass
class Predictor:
    """One model being evaluated: its name in the report, how it runs a batch into class
    scores, and its top classes per image so far."""

    name: str
    description: str
    predictions: list[np.ndarray] = field(default_factory=list)

    def scores(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def add(self, images: np.ndarray) -> None:
        self.predictions.append(top_classes(self.scores(images)))

    @property
    def top(self) -> np.ndarray:
        """(N, k) top classes, best first, for every image added."""
        return np.concatenate(self.predictions)


@dataclass
class Reference(Predictor):
    """Eager PyTorch fp32 (upstream form) of the model artifacts were exported from."""

    runner: EagerRunner | None = None
    loaded: LoadedModel | None = None

    def scores(self, images: np.ndarray) -> np.ndarray:
        return run_in_batches(self.runner.run, images, EAGER_BATCH)["logits"]


@dataclass
class Subject(Predictor):
    """An artifact, opened, with what its manifest says and the bytes it has now."""

    path: Path | None = None
    manifest: Manifest | None = None
    runner: object = None
    sha256: str = ""
    reference: Reference | None = None

    @property
    def output(self) -> str:
        """The output that holds class scores: a classifier's probabilities, else the logits."""
        return "probabilities" if self.manifest.head is Head.CLASSIFIER else self.manifest.output_names[0]

    def scores(self, images: np.ndarray) -> np.ndarray:
        return run_all(self.runner, images, self.manifest.fixed_batch)[self.output]

    @property
    def size_bytes(self) -> int:
        return artifact_size(self.path)

    @property
    def format(self) -> str:
        return self.manifest.format

    @property
    def precision(self) -> str:
        """The precision, with a CoreML compression, or the blocks an int8 artifact keeps float."""
        label = self.manifest.details.compression_label()
        quantization = self.manifest.quantization
        kept = [k for k in quantization.kept_float if k.target != RESIDUAL_ADDS] if quantization else []
        if kept:
            label = f"{len(kept)} blocks float"
        return self.manifest.precision.value + (f" ({label})" if label else "")


@dataclass
class Group:
    """Predictors fed the same preprocessed images."""

    preprocessing: Preprocessing
    references: list[Reference] = field(default_factory=list)
    subjects: list[Subject] = field(default_factory=list)

    @property
    def predictors(self) -> list[Predictor]:
        return [*self.references, *self.subjects]


def _geometry(pre: Preprocessing) -> Preprocessing:
    """The transform that makes the float input: a model that normalizes itself (CoreML
    `--image-input`) is fed the same normalized floats, which its runner turns back into pixels."""
    return replace(pre, in_model=False)


def _model_key(manifest: Manifest) -> tuple:
    if manifest.checkpoint is not None:
        return ("checkpoint", manifest.checkpoint.sha256, manifest.checkpoint.used_ema)
    return ("random", manifest.variant, manifest.seed or 0)


def _check_classifier(manifest: Manifest, artifact: Path, classes: int | None) -> int:
    if manifest.is_backbone:
        raise UsageError(f"{artifact} is a dense-prediction backbone (feature maps); casvit eval measures "
                         "classifiers")
    if classes is not None and manifest.num_classes != classes:
        raise UsageError(f"{artifact} has {manifest.num_classes} classes, another artifact {classes}: one labelled "
                         "set has one label space; evaluate them separately")
    return manifest.num_classes


class Subjects:
    """The artifacts and references of one run, opened in `stack` (closed with it)."""

    def __init__(self, artifacts: list[Path], checkpoint: Path | None, threads: int | None, stack: ExitStack,
                 progress=lambda text: None):
        self.groups: dict[Preprocessing, Group] = {}
        self._models: dict[tuple, LoadedModel] = {}
        self.num_classes: int | None = None
        manifests_ = []
        for artifact in map(Path, artifacts):
            format_for_path(artifact)
            manifest = manifests.load(artifact)
            self.num_classes = _check_classifier(manifest, artifact, self.num_classes)
            manifests_.append((artifact, manifest))
        for artifact, manifest in manifests_:
            progress(f"open {artifact.name}")
            self._add(artifact, manifest, checkpoint, threads, stack)
        for group in self.groups.values():
            for reference in group.references:
                reference.name = self._eager_name(reference.loaded, group)
        self._unique_names()

    def _reference(self, manifest: Manifest, artifact: Path, checkpoint: Path | None, group: Group) -> Reference:
        key = _model_key(manifest)
        loaded = reference_model(manifest, artifact, checkpoint, self._models.get(key))
        self._models[key] = loaded
        found = next((r for r in group.references if r.loaded is loaded), None)
        if found is None:
            runner = EagerRunner(loaded.model)
            found = Reference(EAGER, runner.description, runner=runner, loaded=loaded)
            group.references.append(found)
        return found

    def _eager_name(self, loaded: LoadedModel, group: Group) -> str:
        """"eager fp32 32", the input size, and the weights when the artifacts come from several models."""
        name = f"{EAGER} {group.preprocessing.crop}"
        return name if len(self._models) < 2 else f"{name} ({loaded.weights})"

    def _add(self, artifact: Path, manifest: Manifest, checkpoint: Path | None, threads: int | None,
             stack: ExitStack) -> None:
        group = self.groups.setdefault(_geometry(manifest.preprocessing), Group(_geometry(manifest.preprocessing)))
        reference = self._reference(manifest, artifact, checkpoint, group)
        options = RunnerOptions(threads=threads, preprocessing=manifest.preprocessing,
                                output_names=tuple(manifest.output_names))
        sha256 = artifact_sha256(artifact)
        runner = stack.enter_context(open_runner(artifact, options))
        group.subjects.append(Subject(artifact.name, runner.description, path=artifact, manifest=manifest,
                                      runner=runner, sha256=sha256, reference=reference))

    def _unique_names(self) -> None:
        """Artifacts are named by file name, or by path where two share a name (results are keyed by name)."""
        names = [s.name for s in self.subjects]
        for subject in self.subjects:
            if names.count(subject.name) > 1:
                subject.name = str(subject.path)

    @property
    def subjects(self) -> list[Subject]:
        return [s for g in self.groups.values() for s in g.subjects]

    @property
    def references(self) -> list[Reference]:
        return [r for g in self.groups.values() for r in g.references]
