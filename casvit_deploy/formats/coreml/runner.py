"""The Core ML runner: Apple's runtime on macOS, the MIL reference interpreter anywhere.

Engines: "coreml" (coremltools `predict`, macOS only), "mil-reference" (this package's
interpreter: an emulation of the program's arithmetic on CPU, not the Apple runtime),
"both" (Core ML's outputs from `run`, both engines' from `run_each`), and "auto"
(coreml on macOS, else mil-reference). `description` says which one produced the numbers.
"""

from __future__ import annotations

import platform

import numpy as np

from casvit_deploy.artifacts.records import Signature
from casvit_deploy.errors import BackendMissingError, UsageError
from casvit_deploy.formats.coreml.options import CoreMLEngine
from casvit_deploy.runtime.base import Runner, RunnerOptions
from casvit_deploy.settings import Head, choice

PROBABILITIES, LABEL = Head.CLASSIFIER.outputs
INTERPRETER_LABEL = ("MIL reference interpreter (coremltools {ct} program, executed op by op with torch {torch} "
                     "on CPU; an emulation of the program's {precision} arithmetic, not the Apple Core ML runtime)")
COREML_LABEL = "Core ML runtime via coremltools {ct} predict (macOS {mac})"
INTERPRETER_THREADS = 1  # see mil.interpreter.Interpreter


def resolve_engines(engine: CoreMLEngine | None) -> tuple[CoreMLEngine, ...]:
    """The concrete engines that `engine` (None: auto) stands for on this machine."""
    engine = choice(CoreMLEngine, engine or CoreMLEngine.AUTO, "--engine")
    on_mac = platform.system() == "Darwin"
    if engine is CoreMLEngine.AUTO:
        return (CoreMLEngine.COREML,) if on_mac else (CoreMLEngine.MIL_REFERENCE,)
    engines = (CoreMLEngine.COREML, CoreMLEngine.MIL_REFERENCE) if engine is CoreMLEngine.BOTH else (engine,)
    if CoreMLEngine.COREML in engines and not on_mac:
        raise BackendMissingError(f"--engine {engine.value} needs the Core ML runtime, which only exists on macOS; "
                                  "use --engine mil-reference on this machine")
    return engines


class CoreMLRunner(Runner):
    """Runner for a `.mlpackage`: Apple's runtime and/or the MIL reference interpreter
    (`options.engine`); the interpreter runs on `options.threads` torch threads
    (default one)."""

    supports_intermediates = True

    def open(self) -> None:
        from casvit_deploy.formats.coreml.mil import load_mlpackage

        self.engines = resolve_engines(self.options.engine)
        self.package = load_mlpackage(self.path)
        if len(self.package.inputs) != 1:
            raise UsageError(f"{self.path} has {len(self.package.inputs)} inputs; a CAS-ViT model has one image input")
        self.input = self.package.inputs[0]
        self.threads = self.options.threads or INTERPRETER_THREADS
        self._interpreter = None
        if CoreMLEngine.MIL_REFERENCE in self.engines:
            self._interpreter = self._new_interpreter()
        self._to_pixels = self._pixels_from() if self.input.kind == "image" else None
        self._classify = self._classify_op()
        self._coreml = self._load_coreml() if CoreMLEngine.COREML in self.engines else None
        self.description = " + ".join(self._label(e) for e in self.engines)

    def close(self) -> None:
        self._interpreter = self._coreml = self.package = None

    def signature(self) -> Signature:
        return self.package.signature

    @property
    def program(self):
        """The package's MIL program (coremltools `Program`), weights included."""
        return self.package.program

    def _new_interpreter(self):
        from casvit_deploy.formats.coreml.mil import Interpreter

        return Interpreter(self.program, threads=self.threads)

    @property
    def interpreter(self):
        """The MIL reference interpreter (built on first use when only Core ML was asked for,
        so an op it lacks never blocks the real runtime)."""
        if self._interpreter is None:
            self._interpreter = self._new_interpreter()
        return self._interpreter

    @property
    def precision(self) -> str:
        """'fp16' when the program holds any value in float16, else 'fp32'."""
        from casvit_deploy.formats.coreml.mil.precision import dtype_name

        ops = self.program.functions["main"].operations
        held = {dtype_name(var) for op in ops if op.op_type != "const" for var in op.outputs}
        return "fp16" if "fp16" in held else "fp32"

    def _label(self, engine: CoreMLEngine) -> str:
        import coremltools
        import torch

        if engine is CoreMLEngine.COREML:
            return COREML_LABEL.format(ct=coremltools.__version__, mac=platform.mac_ver()[0])
        return INTERPRETER_LABEL.format(ct=coremltools.__version__, torch=torch.__version__, precision=self.precision)

    def _load_coreml(self):
        import coremltools as ct

        return ct.models.MLModel(str(self.path))

    def _pixels_from(self):
        """image -> raw pixels for an image input: the preprocessing given (`open_runner` takes
        the manifest's) inverted, else (no manifest) the program's own scale/bias inverted."""
        from casvit_deploy.formats.coreml.mil.preprocess import image_scale_bias, pixel_transform

        if self.options.preprocessing is not None:
            return pixel_transform(self.options.preprocessing)
        scale, bias = image_scale_bias(self.package.program, self.input.name)
        return lambda image: (image - bias) / scale

    def _program_input(self, image: np.ndarray) -> np.ndarray:
        """The values the program's input receives: for an image input, the raw pixels
        that preprocess to `image`; otherwise `image` itself."""
        image = np.asarray(image, dtype=np.float32)
        return image if self._to_pixels is None else self._to_pixels(image).astype(np.float32)

    def _classify_op(self):
        """The `classify` op that produces the outputs of a classifier export, or None."""
        op = self.program.functions["main"].outputs[0].op
        return op if op is not None and op.op_type == "classify" else None

    @property
    def class_labels(self) -> list[str] | None:
        """A classifier's labels in class order (the `classify` op's classes), else None."""
        if self._classify is None:
            return None
        classes = self._classify.inputs["classes"].val  # a list when read back, a MIL list when built
        return [str(c) for c in getattr(classes, "ls", classes)]

    def _named(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A classifier's outputs as "probabilities" (float32, class order) and "label" (class
        index); a sole output as "logits"; otherwise every output by its own name."""
        if self._classify is not None:
            label, probabilities = (var.name for var in self._classify.outputs)
            return {PROBABILITIES: outputs[probabilities].astype(np.float32), LABEL: outputs[label].astype(np.int64)}
        names = self.package.output_names
        if len(names) == 1:
            return {Head.LOGITS.outputs[0]: outputs[names[0]]}
        return {name: outputs[name] for name in names}

    def _per_sample(self, image: np.ndarray, fn) -> dict[str, np.ndarray]:
        """`fn` on the whole batch if the program takes it, else sample by sample, stacked."""
        batch = self.program.functions["main"].inputs[self.input.name].shape[0]
        if not isinstance(batch, int) or batch == image.shape[0]:
            return fn(image)
        if batch != 1:
            raise UsageError(f"{self.path} takes batches of {batch}; got {image.shape[0]}")
        parts = [fn(image[i:i + 1]) for i in range(image.shape[0])]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _interpret(self, image: np.ndarray, capture=()) -> dict[str, np.ndarray]:
        feed = self._program_input(image)
        return self._per_sample(feed, lambda x: self.interpreter.run({self.input.name: x}, capture))

    def _predict(self, image: np.ndarray) -> dict[str, np.ndarray]:
        feed = self._program_input(image)

        def one(x):
            if self.input.kind == "image":
                from PIL import Image

                pixels = np.clip(np.rint(x[0]), 0, 255).astype(np.uint8).transpose(1, 2, 0)
                x = Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels)
            return self._from_coreml(self._coreml.predict({self.input.name: x}))

        return self._per_sample(feed, one)

    def _from_coreml(self, outputs: dict) -> dict[str, np.ndarray]:
        """Core ML's outputs as arrays; a classifier's label as its class index and its
        probability dictionary in class order."""
        if self._classify is None:
            return {k: np.asarray(v) for k, v in outputs.items()}
        classes = self.class_labels
        label, probabilities = (var.name for var in self._classify.outputs)
        scores = outputs[probabilities]
        return {probabilities: np.asarray([[scores[c] for c in classes]], dtype=np.float32),
                label: np.asarray([classes.index(outputs[label])], dtype=np.int64)}

    def run_each(self, image: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """Outputs of every selected engine, keyed by engine name."""
        run = {CoreMLEngine.COREML: self._predict, CoreMLEngine.MIL_REFERENCE: self._interpret}
        return {engine.value: self._named(run[engine](image)) for engine in self.engines}

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs by name ("logits", or a classifier's "probabilities" and "label") from the
        first selected engine."""
        if self.engines[0] is CoreMLEngine.COREML:
            return self._named(self._predict(image))
        return self._named(self._interpret(image))

    def run_intermediates(self, image: np.ndarray, names) -> dict[str, np.ndarray]:
        """Values of the MIL variables `names` (always from the interpreter: the Core ML
        runtime does not expose intermediates)."""
        names = list(names)
        values = self._interpret(image, names)
        return {name: values[name] for name in names}

    def block_tensors(self, block_outputs: dict[str, str]) -> dict[str, str | None]:
        """The MIL variable of each block in a manifest's "block_outputs" (see mil.blocks)."""
        from casvit_deploy.formats.coreml.mil import block_vars

        found = block_vars(self.package.program, block_outputs)
        return {block: found.get(block) for block in block_outputs}


def package_scores(path, preprocessing, images: np.ndarray, batch: int) -> np.ndarray:
    """A package's scores of preprocessed `images` ("probabilities" of a classifier, else
    "logits"), through this runner on its default engine, `batch` images per prediction."""
    from casvit_deploy.export.labelled import scores

    runner = CoreMLRunner(path, RunnerOptions(preprocessing=preprocessing))
    runner.open()
    with runner:
        return scores(runner.run, images, batch)
