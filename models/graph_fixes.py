"""ONNX graph surgery, done once at fetch time (files) or at load time (in memory, for `dir:` packs).

- `repair_graph_inputs`: drop graph inputs that are really initializers, node outputs or unused
  (onnxruntime refuses the SFace int8 file as shipped because of these).
- `fold_constants`: evaluate every node that depends only on initializers (the int8 block
  dequantisation) and store the results as float32 weights; the float graph is faster on CPU.
- `make_batch_dynamic` / `make_detector_dynamic`: free the batch (and for SCRFD the spatial) dims so
  faces can be embedded in batches and whole photos detected at any size.
- `rewrite_prelu`: express PRelu with ops onnxruntime's CPU kernels run fast (in memory, at load).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import helper, numpy_helper

logger = logging.getLogger(__name__)


def repair_graph_inputs(model: onnx.ModelProto) -> int:
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    produced = {o for n in graph.node for o in n.output}
    consumed = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [i for i in graph.input if i.name not in initializers and i.name not in produced and i.name in consumed]
    removed = len(graph.input) - len(keep)
    del graph.input[:]
    graph.input.extend(keep)
    return removed


def fold_constants(model: onnx.ModelProto) -> int:
    """Replace initializer-only subgraphs by their float values. Returns the number of folded nodes."""
    import onnxruntime as ort  # local: graph_fixes is also used where only onnx is needed

    graph = model.graph
    initializer_names = {i.name for i in graph.initializer}
    constant = set(initializer_names)
    constant_nodes, other_nodes = [], []
    for node in graph.node:
        if all(i == "" or i in constant for i in node.input):
            constant_nodes.append(node)
            constant.update(node.output)
        else:
            other_nodes.append(node)
    if not constant_nodes:
        return 0
    frontier = sorted({i for n in other_nodes for i in n.input if i in constant and i not in initializer_names})
    const_graph = helper.make_graph(
        constant_nodes,
        "constants",
        [],
        [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in frontier],
        list(graph.initializer),
    )
    const_model = helper.make_model(const_graph, opset_imports=model.opset_import)
    const_model.ir_version = model.ir_version
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(const_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    values = dict(zip(frontier, session.run(frontier, {}), strict=True))
    used = {i for n in other_nodes for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(other_nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in values.items())
    del graph.value_info[:]
    return len(constant_nodes)


def make_batch_dynamic(model: onnx.ModelProto) -> None:
    """Free the batch dim of inputs/outputs, and turn `Reshape(x, [1, ...])` (exported with a batch
    of one baked in) into `Reshape(x, [0, ...])`, where 0 keeps the incoming batch size."""
    graph = model.graph
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"
    shape_inputs = {n.input[1] for n in graph.node if n.op_type == "Reshape" and len(n.input) > 1}
    for init in graph.initializer:
        if init.name in shape_inputs:
            value = numpy_helper.to_array(init)
            if value.ndim == 1 and value.size >= 2 and value[0] == 1:
                value = value.copy()
                value[0] = 0
                init.CopyFrom(numpy_helper.from_array(value, init.name))
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] in shape_inputs:
            for attr in node.attribute:
                if attr.name == "value":
                    value = numpy_helper.to_array(attr.t)
                    if value.ndim == 1 and value.size >= 2 and value[0] == 1:
                        value = value.copy()
                        value[0] = 0
                        attr.t.CopyFrom(numpy_helper.from_array(value))
    del graph.value_info[:]


def make_detector_dynamic(model: onnx.ModelProto) -> bool:
    """Free batch, height and width of an SCRFD graph exported at a fixed 640x640.

    Two things pin the size in such exports: the input shape, and the FPN's nearest `Resize` nodes
    given explicit output `sizes`. Those upsample by exactly 2, so they become `scales=[1,1,2,2]`.
    The head `Reshape`s to [1,-1,k] become [0,-1,k] (0 = keep the batch dim). Idempotent.
    """
    graph = model.graph
    changed = False
    dims = graph.input[0].type.tensor_type.shape.dim
    for index, name in ((0, "N"), (2, "H"), (3, "W")):
        if dims[index].HasField("dim_value"):
            dims[index].ClearField("dim_value")
            dims[index].dim_param = name
            changed = True
    for out in graph.output:
        for index, name in ((0, "N"), (1, "A")):
            odims = out.type.tensor_type.shape.dim
            if len(odims) > index and odims[index].HasField("dim_value"):
                odims[index].ClearField("dim_value")
                odims[index].dim_param = name
                changed = True
    if not any(i.name == "picsort_up2" for i in graph.initializer):
        resize_with_sizes = [n for n in graph.node if n.op_type == "Resize" and len(n.input) == 4 and n.input[3]]
        if resize_with_sizes:
            graph.initializer.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "picsort_up2"))
            for node in resize_with_sizes:
                node.input[2] = "picsort_up2"
                del node.input[3]
            changed = True
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.INT64 and len(init.dims) == 1 and init.dims[0] == 3:
            value = numpy_helper.to_array(init)
            if value[0] == 1 and value[1] == -1:
                value = value.copy()
                value[0] = 0
                init.CopyFrom(numpy_helper.from_array(value, init.name))
                changed = True
    del graph.value_info[:]
    return changed


def rewrite_prelu(model: onnx.ModelProto) -> int:
    """Replace every `PRelu(x, slope)` whose slope is a float weight by `slope*x + (1-slope)*Relu(x)`.

    Why: onnxruntime's CPU PRelu kernel is slow with a per-channel slope, and it is not one of the ops
    its blocked (NCHWc) convolution layout understands, so every PRelu also converts the tensor out of
    that layout and back. Profiled on SFace (27 PRelus): 48% of the time went to PRelu and another 8% to
    those conversions. Mul-by-constant, Relu and Add stay in the blocked layout (the Mul becomes a
    depthwise 1x1 convolution, the Add is fused into it). For the CPU only: CUDA's PRelu is fine.
    The result is the same up to float rounding (x >= 0: slope*x + (1-slope)*x; x < 0: slope*x + 0),
    and Mul broadcasts at least as widely as PRelu does (opset 7 on), so every valid slope shape works.
    Left alone: slopes that are not initializers (Constant nodes, runtime inputs, initializers also
    declared as graph inputs, which a caller may override), integer slopes, PRelus in subgraphs, and
    graphs older than opset 7. Graphs without PRelu (SCRFD, MobileFaceNet) are untouched.
    Returns the number of nodes replaced."""
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 7:  # PRelu-6 and Mul-6 broadcast differently
        return 0
    inputs = {i.name for i in graph.input}
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
    weights = {i.name: i for i in graph.initializer if i.name not in inputs and i.data_type in floats}
    taken = {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output} | inputs
    complements: dict[str, str] = {}  # slope name -> its (1 - slope) weight, shared like the slope
    nodes: list[onnx.NodeProto] = []
    added: list[onnx.TensorProto] = []
    replaced = 0
    for index, node in enumerate(graph.node):
        slope_name = node.input[1] if node.op_type == "PRelu" and len(node.input) == 2 else ""
        if slope_name not in weights:
            nodes.append(node)
            continue
        prefix = f"picsort_prelu{index}"
        while any(name.startswith(prefix) for name in taken):
            prefix += "_"
        keep_name = complements.get(slope_name)
        if keep_name is None:
            keep_name = f"{prefix}_one_minus_slope"
            slope = numpy_helper.to_array(weights[slope_name])
            added.append(numpy_helper.from_array((1 - slope).astype(slope.dtype), keep_name))
            complements[slope_name] = keep_name
        x, y = node.input[0], node.output[0]
        nodes += [
            helper.make_node("Mul", [x, slope_name], [f"{prefix}_neg"], name=f"{prefix}_mul_slope"),
            helper.make_node("Relu", [x], [f"{prefix}_relu"], name=f"{prefix}_relu"),
            helper.make_node("Mul", [f"{prefix}_relu", keep_name], [f"{prefix}_pos"], name=f"{prefix}_mul_keep"),
            helper.make_node("Add", [f"{prefix}_neg", f"{prefix}_pos"], [y], name=f"{prefix}_add"),
        ]
        replaced += 1
    if replaced:
        del graph.node[:]
        graph.node.extend(nodes)
        graph.initializer.extend(added)
        logger.debug("rewrote %d PRelu nodes", replaced)
    return replaced
