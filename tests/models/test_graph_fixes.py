"""Graph rewrites must keep what the model computes: checked by running both graphs in onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from models.graph_fixes import make_batch_dynamic, rewrite_prelu

if TYPE_CHECKING:
    from models.engine import FaceEngine


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [np.asarray(v) for v in session.run(None, feed)]


def _prelu_net(rng: np.random.Generator) -> onnx.ModelProto:
    """Conv -> PRelu (per-channel slope, some negative, some above 1) -> Flatten -> Gemm -> PRelu (1-D slope),
    plus a PRelu whose slope is a graph input and so cannot be rewritten."""
    conv_w = rng.normal(size=(6, 3, 3, 3)).astype(np.float32)
    slope4 = np.array([0.25, -0.5, 1.2, 0.0, 1.0, 0.07], np.float32).reshape(6, 1, 1)
    gemm_w = rng.normal(size=(6 * 8 * 8, 5)).astype(np.float32)
    slope2 = np.array([0.1, 0.2, -0.3, 0.4, 2.0], np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["c", "s4"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "g"], ["e"]),
        helper.make_node("PRelu", ["e", "s2"], ["y"]),
        helper.make_node("PRelu", ["e", "free_slope"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes,
        "prelu-net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8]),
         helper.make_tensor_value_info("free_slope", TensorProto.FLOAT, [5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(conv_w, "w"), numpy_helper.from_array(slope4, "s4"),
         numpy_helper.from_array(gemm_w, "g"), numpy_helper.from_array(slope2, "s2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_prelu_rewrite_computes_the_same() -> None:
    rng = np.random.default_rng(7)
    model = _prelu_net(rng)
    feed = {"x": rng.normal(size=(4, 3, 8, 8)).astype(np.float32),
            "free_slope": np.array([0.5, 0.5, 0.5, 0.5, 0.5], np.float32)}
    before = _run(model, feed)

    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    assert rewrite_prelu(rewritten) == 2  # the slope that is a graph input is left alone
    onnx.checker.check_model(rewritten)
    ops = [n.op_type for n in rewritten.graph.node]
    assert ops.count("PRelu") == 1
    after = _run(rewritten, feed)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    assert rewrite_prelu(rewritten) == 0  # idempotent: nothing left to rewrite


def test_prelu_left_alone_where_the_rewrite_could_change_the_result() -> None:
    rng = np.random.default_rng(3)
    # A slope that is also a graph input can be overridden at run time: 1-slope must not be baked in.
    overridable = _prelu_net(rng)
    overridable.graph.input.append(helper.make_tensor_value_info("s2", TensorProto.FLOAT, [5]))
    assert rewrite_prelu(overridable) == 1
    assert [n.input[1] for n in overridable.graph.node if n.op_type == "PRelu"] == ["s2", "free_slope"]
    # Before opset 7 PRelu and Mul broadcast differently.
    old = _prelu_net(rng)
    del old.opset_import[:]
    old.opset_import.append(helper.make_opsetid("", 6))
    assert rewrite_prelu(old) == 0


def test_rewrite_is_for_the_cpu_only(engine: FaceEngine) -> None:
    from models.engine import _embedder_bytes
    from models.packs import load_pack

    pack = load_pack(engine.settings.models_dir, engine.settings.pack)
    for_gpu = onnx.load_from_string(_embedder_bytes(pack, for_cpu=False))
    for_cpu = onnx.load_from_string(_embedder_bytes(pack, for_cpu=True))
    assert sum(n.op_type == "PRelu" for n in for_gpu.graph.node) == 27
    assert sum(n.op_type == "PRelu" for n in for_cpu.graph.node) == 0


def test_graph_without_prelu_is_untouched(engine: FaceEngine) -> None:
    from models.packs import load_pack

    pack = load_pack(engine.settings.models_dir, engine.settings.pack)
    detector = onnx.load(str(pack.detector_path))
    serialized = detector.SerializeToString()
    assert rewrite_prelu(detector) == 0
    assert detector.SerializeToString() == serialized


def test_engine_embeddings_match_the_graph_as_shipped(engine: FaceEngine, insightface_t1: Path) -> None:
    """The default pack's embedder after the rewrite gives the shipped graph's embeddings on real faces."""
    from models.alignment import similarity_transforms, warp_faces
    from models.packs import load_pack
    from picsort_local.images import decode_image

    pack = load_pack(engine.settings.models_dir, engine.settings.pack)
    shipped = onnx.load(str(pack.embedder_path))
    assert any(n.op_type == "PRelu" for n in shipped.graph.node), "SFace is expected to use PRelu"
    make_batch_dynamic(shipped)

    image = decode_image(insightface_t1.read_bytes())
    faces = engine.detect(image)
    crops = warp_faces(image.pixels, similarity_transforms(faces.kps))
    crops = np.concatenate([crops, crops[:, :, ::-1]])  # mirrored faces too: 12 real inputs
    blob = engine.embedder._blob(crops)  # the pack's own preprocessing
    reference = _run(shipped, {shipped.graph.input[0].name: blob})[0].reshape(len(crops), -1)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)

    ours = engine.embedder.embed(crops)
    cosine = np.einsum("ij,ij->i", ours, reference)
    assert cosine.min() > 0.99999, cosine
