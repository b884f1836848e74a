"""`export_model` per format: artifacts that load in their runtime, match eager, and carry
complete manifests (XS at 64 from an official-format checkpoint; the larger variant is in
test_export_slow.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from casvit_deploy.artifacts.files import artifact_sha256
from casvit_deploy.formats import FORMATS
from casvit_deploy.formats.coreml.options import CoreMLOptions
from casvit_deploy.model import load_model
from casvit_deploy.model.blocks import block_names
from casvit_deploy.pipeline import export_model
from casvit_deploy.runtime.eager import EagerRunner
from casvit_deploy.settings import Form, Precision, Resolution
from casvit_deploy.store import manifests
from casvit_deploy.store.runners import open_runner

RES = 64
FP32_RTOL = 1e-4  # max abs error relative to max |logit|, float32 vs float32 eager


def image(batch: int = 2, res: int = RES) -> np.ndarray:
    return np.random.default_rng(7).standard_normal((batch, 3, res, res)).astype(np.float32)


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    assert got.shape == ref.shape
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def loaded(xs_checkpoint):
    return load_model(xs_checkpoint, ema=True)


@pytest.fixture(scope="module")
def exports(loaded, tmp_path_factory):
    """format -> ExportResult, each exported lazily once for the module."""
    out, done = tmp_path_factory.mktemp("exports"), {}

    def get(fmt: str):
        if fmt not in done:
            precision = "fp16" if fmt == "coreml" else "fp32"
            done[fmt] = export_model(loaded, fmt, out, resolution=RES, precision=precision)
        return done[fmt]

    return get


def test_format_table():
    assert list(FORMATS) == ["onnx", "ort", "coreml", "executorch", "litert"]
    assert [f.suffix for f in FORMATS.values()] == [".onnx", ".ort", ".mlpackage", ".pte", ".tflite"]


@pytest.mark.parametrize("fmt", [f if f not in ("executorch", "litert") else pytest.param(f, marks=pytest.mark.slow) for f in FORMATS])  # CI time (litert: test_litert.py)
def test_manifest_is_complete_and_correct(fmt, exports, loaded, xs_checkpoint):
    result = exports(fmt)
    manifest = manifests.load(result.artifact)
    assert manifest == result.manifest
    assert manifest.format == fmt and manifest.file == result.artifact.name
    assert manifest.sha256 == artifact_sha256(result.artifact)
    assert manifest.checkpoint_path(result.artifact).resolve() == xs_checkpoint.resolve()
    assert manifest.checkpoint.used_ema and manifest.checkpoint.sha256 == loaded.checkpoint.sha256
    assert manifest.seed is None and manifest.weights == loaded.weights
    assert manifest.variant == "xs" and manifest.num_classes == 1000 and manifest.resolution == Resolution(RES, RES)
    assert manifest.form is Form.DEPLOY and "fold_conv_bn" in manifest.passes
    assert [i.name for i in manifest.inputs] == ["image"] and manifest.inputs[0].shape == (1, 3, RES, RES)
    assert [o.name for o in manifest.outputs] == ["logits"] and manifest.outputs[0].shape == (1, 1000)
    assert manifest.outputs[0].layout == "NC" and manifest.outputs[0].stride is None and not manifest.is_backbone
    assert manifest.preprocessing.mean == (0.485, 0.456, 0.406)
    assert manifest.tools["torch"] == torch.__version__ and manifest.parity == []
    assert list(manifest.block_outputs) == block_names(loaded.model)
    check = manifest.details.load_check
    assert check["failures"] == [] and (check["ran"] and check["max_rel"] < FP32_RTOL * (50 if fmt == "coreml" else 1))
    assert not list(result.artifact.parent.glob(".casvit-staging-*"))


def test_random_weights_manifest_records_seed(tmp_path):
    result = export_model(load_model(variant="xs", seed=5), "onnx", tmp_path, resolution=32)
    assert result.manifest.weights == "random weights, not pretrained"
    assert result.manifest.seed == 5 and result.manifest.checkpoint is None


@pytest.mark.parametrize("fmt", ["onnx", pytest.param("executorch", marks=pytest.mark.slow)])  # ExecuTorch parity: test_parity_artifacts.py
def test_outputs_match_eager_fp32(fmt, exports, loaded):
    with open_runner(exports(fmt).artifact) as runner:
        got = runner.run(image(1))["logits"]
    ref = EagerRunner(loaded.model).run(image(1))["logits"]
    assert relative_error(got, ref) < FP32_RTOL


def test_onnx_metadata_and_checker(exports, loaded):
    import onnx

    model = onnx.load(str(exports("onnx").artifact))
    onnx.checker.check_model(model, full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["variant"] == "xs" and props["checkpoint_sha256"] == loaded.checkpoint.sha256
    assert props["passes"].startswith("fold_conv_bn") and model.opset_import[0].version >= 18


def test_onnx_block_outputs_are_value_names(exports, loaded):
    """Every block's FX name is an ONNX value holding that block's output."""
    result = exports("onnx")
    blocks = {b: n for b, n in result.manifest.block_outputs.items() if b != "head"}
    with open_runner(result.artifact) as runner:
        got = runner.run_intermediates(image(1), list(blocks.values()))
    ref = EagerRunner(loaded.model).run_intermediates(image(1), list(blocks))
    for block, name in blocks.items():
        assert relative_error(got[name], ref[block]) < FP32_RTOL, block
    assert result.manifest.details.load_check["blocks_missing"] == []


def test_onnx_dynamic_batch(loaded, tmp_path):
    result = export_model(loaded, "onnx", tmp_path, resolution=RES, dynamic_batch=True)
    assert result.artifact.name == f"casvit_xs_{RES}_fp32_dynamic.onnx"
    assert result.manifest.inputs[0].shape[0] == "batch" and result.manifest.dynamic_batch
    usability = result.manifest.details.mobile_usability  # no mobile EP takes dynamic shapes
    assert usability["dynamic_inputs"] and usability["nnapi"]["partitions"] == 0
    assert usability["with_fixed_shapes"]["coreml_mlprogram"]["whole_graph"]
    assert "with a fixed batch (--batch N): CoreML MLProgram EP takes the whole graph" in usability["summary"]
    ref = EagerRunner(loaded.model).run(image(3))["logits"]
    with open_runner(result.artifact) as runner:
        assert relative_error(runner.run(image(3))["logits"], ref) < FP32_RTOL


def test_executorch_is_fully_delegated(small_export):
    manifest = small_export("executorch").manifest
    assert manifest.options.delegate.value == "xnnpack"
    delegation = manifest.details.delegation
    assert delegation["portable_nodes"] == 0 and delegation["delegated_nodes"] > 100


def test_coreml_reads_back_as_mil_program_without_batch_norm(exports):
    from casvit_deploy.formats.coreml.mil import load_mlpackage

    result = exports("coreml")
    package = load_mlpackage(result.artifact)
    spec, program = package.spec, package.program
    ops = {op.op_type for fn in program.functions.values() for op in fn.operations}
    assert "batch_norm" not in ops and {"conv", "gelu", "sigmoid", "reduce_mean", "linear"} <= ops
    assert [i.name for i in spec.description.input] == ["image"]
    assert [o.name for o in spec.description.output] == ["logits"]
    assert spec.description.metadata.userDefined["variant"] == "xs"
    manifest = result.manifest
    assert manifest.options.deployment_target == "iOS16" and manifest.precision is Precision.FP16
    assert manifest.outputs[0].dtype == "float32" and manifest.details.mil_ops["conv"] > 100
    assert manifest.details.load_check["blocks_missing"] == []


def test_coreml_image_input_and_labels(loaded, tmp_path):
    from casvit_deploy.formats.coreml.mil import load_mlpackage

    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(1000)))
    result = export_model(loaded, "coreml", tmp_path, resolution=32, precision="fp32",
                          options=CoreMLOptions(image_input=True, labels=labels, deployment_target="iOS17"))
    spec = load_mlpackage(result.artifact).spec
    assert spec.description.input[0].type.WhichOneof("Type") == "imageType"
    assert spec.WhichOneof("Type") == "mlProgram" and spec.description.predictedFeatureName == "classLabel"
    assert list(spec.mlProgram.functions) == ["main"]
    assert result.manifest.options.image_input and result.manifest.details.classifier_labels == 1000
    assert result.manifest.options.deployment_target == "iOS17"
    assert result.manifest.details.load_check["failures"] == []


def test_coreml_upstream_form_keeps_batch_norm_and_maps_every_block(loaded, tmp_path):
    """The no-batch_norm check applies to the deploy form only; upstream BN outputs map
    to MIL variables through the op that produced them, not the FX getitem."""
    result = export_model(loaded, "coreml", tmp_path, resolution=RES, precision="fp32", form=Form.UPSTREAM)
    assert result.manifest.details.mil_ops["batch_norm"] > 0
    assert result.manifest.details.load_check["blocks_missing"] == []
    assert not any(name.startswith("getitem") for name in result.manifest.block_outputs.values())


def test_onnx_gelu_is_one_node_per_gelu(exports, loaded):
    """Every exact GELU of the model is one Gelu node in the artifact, with no Erf chain left."""
    import onnx

    result = exports("onnx")
    graph = onnx.load(str(result.artifact)).graph
    gelus = sum(isinstance(m, torch.nn.GELU) for m in loaded.model.modules())
    ops = [n.op_type for n in graph.node]
    assert gelus == 20 and ops.count("Gelu") == gelus
    assert "Erf" not in ops and "Div" not in ops
    details = result.manifest.details
    assert details.onnx_graph_rewrites == ["gelu_fusion"] and details.gelu_fused == gelus
    assert details.gelu_op.startswith("Gelu (ONNX opset 20") and details.opset == 20


def _gelu_chain_model(sqrt2: float = 2 ** 0.5, one: float = 1.0, half: float = 0.5, leak: bool = False,
                      numerator: str = "x"):
    """y = x * ((erf(numerator / sqrt2) + one) * half), as the dynamo exporter writes GELU;
    `leak` also exposes the Erf output as a graph output."""
    from onnx import TensorProto, helper, numpy_helper

    consts = [numpy_helper.from_array(np.array(v, np.float32), name) for name, v in
              (("s2", sqrt2), ("one", one), ("half", half))]
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Div", [numerator, "s2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["half", "a"], ["h"]),
             helper.make_node("Mul", ["x", "h"], ["y"])]
    spec = [2, 8]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, spec)]
    if leak:
        outputs.append(helper.make_tensor_value_info("e", TensorProto.FLOAT, spec))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, spec)],
                              outputs, consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("form", ["onnx", "com.microsoft"])
def test_gelu_fusion_matches_the_chain(form):
    import onnx
    import onnxruntime as ort

    from casvit_deploy.formats.onnx.gelu_fusion import fuse_exact_gelu

    model = _gelu_chain_model()
    fused = onnx.ModelProto()
    fused.CopyFrom(model)
    assert fuse_exact_gelu(fused, form) == 1
    assert [(n.domain, n.op_type) for n in fused.graph.node] == [("", "Relu"), ("" if form == "onnx" else form, "Gelu")]
    assert not fused.graph.initializer  # the chain's constants went with it
    onnx.checker.check_model(fused, full_check=True)
    x = {"x": np.linspace(-6, 6, 16, dtype=np.float32).reshape(2, 8)}
    run = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(["y"], x)[0]
           for m in (model, fused)]
    assert np.abs(run[0] - run[1]).max() < 1e-6


@pytest.mark.parametrize("change", [{"sqrt2": 1.4142}, {"one": 1.001}, {"half": 0.25}, {"leak": True},
                                    {"numerator": "r"}])
def test_gelu_fusion_leaves_other_chains_alone(change):
    from casvit_deploy.formats.onnx.gelu_fusion import fuse_exact_gelu

    model = _gelu_chain_model(**change)
    before = model.SerializeToString()
    assert fuse_exact_gelu(model, "onnx") == 0
    assert model.SerializeToString() == before


def _ort_optimized_ops(model, tmp_path) -> list[str]:
    """The ops of `model` after ONNX Runtime's own graph optimizations (extended level)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]


def test_gelu_order_keeps_values_and_lets_onnx_runtime_fuse(tmp_path):
    """Below opset 20: the same five standard ops, bit-identical values without ONNX Runtime's
    optimizations, and one Gelu kernel with them (the chain as exported gets none)."""
    import onnx
    import onnxruntime as ort

    from casvit_deploy.formats.onnx.gelu_fusion import order_exact_gelu

    model = _gelu_chain_model()
    ordered = onnx.ModelProto()
    ordered.CopyFrom(model)
    assert order_exact_gelu(ordered) == 1
    onnx.checker.check_model(ordered, full_check=True)
    assert sorted(n.op_type for n in ordered.graph.node) == sorted(n.op_type for n in model.graph.node)
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    x = {"x": np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32) * 4}
    run = [ort.InferenceSession(m.SerializeToString(), plain, providers=["CPUExecutionProvider"]).run(["y"], x)[0]
           for m in (model, ordered)]
    np.testing.assert_array_equal(run[0], run[1])
    assert "Gelu" in _ort_optimized_ops(ordered, tmp_path) and "Gelu" not in _ort_optimized_ops(model, tmp_path)


@pytest.mark.parametrize("change", [{"sqrt2": 1.4142}, {"leak": True}, {"numerator": "r"}])
def test_gelu_order_leaves_other_chains_alone(change):
    from casvit_deploy.formats.onnx.gelu_fusion import order_exact_gelu

    model = _gelu_chain_model(**change)
    before = model.SerializeToString()
    assert order_exact_gelu(model) == 0 and model.SerializeToString() == before


def test_gelu_form_falls_back_to_contrib_when_opset_20_would_change_an_op():
    from onnx import TensorProto, helper

    from casvit_deploy.formats.onnx.gelu_fusion import choose_form

    assert choose_form(_gelu_chain_model()) == "onnx"
    model = _gelu_chain_model()
    model.graph.node.append(helper.make_node("Cast", ["y"], ["z"], to=TensorProto.FLOAT))  # Cast changed in opset 19
    assert choose_form(model) == "com.microsoft"
