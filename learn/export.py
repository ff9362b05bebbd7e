"""The trained network as an ONNX file the car runs with OpenCV's DNN module (nodes.pilot_model).

The layers of learn.network are written one for one with the `onnx` helper: Conv and Relu
for each convolution, Flatten, Gemm and Relu, Gemm. Opset 13, which OpenCV 4.9 and later
read. The model's metadata (`metadata_props`) says what it was trained on (file hashes),
with which parameters and by which versions, and what it scored on validation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from learn.network import CONVS, PilotNet
from nodes.pilot_model import INPUT_HEIGHT, INPUT_NAME, INPUT_WIDTH

OUTPUT_NAME = "decision"
OPSET = 13


def to_onnx(model: PilotNet, metadata: dict[str, Any]) -> onnx.ModelProto:
    """The network as an ONNX model; `metadata` values are written as JSON under `car.KEY`."""
    nodes, weights = [], []
    previous = INPUT_NAME
    for k, (conv, shape) in enumerate(zip(model.convs, CONVS, strict=True)):
        w, b = f"conv{k}.weight", f"conv{k}.bias"
        weights.append(numpy_helper.from_array(np.asarray(conv.weight, np.float32), w))
        weights.append(numpy_helper.from_array(np.asarray(conv.bias, np.float32).reshape(-1), b))
        pads = [shape.padding] * 4
        strides = [shape.stride] * 2
        nodes.append(
            helper.make_node(
                "Conv", [previous, w, b], [f"conv{k}"], kernel_shape=[shape.kernel] * 2, pads=pads, strides=strides
            )
        )
        nodes.append(helper.make_node("Relu", [f"conv{k}"], [f"relu{k}"]))
        previous = f"relu{k}"
    nodes.append(helper.make_node("Flatten", [previous], ["flat"], axis=1))
    for name, layer, source, target in (
        ("hidden", model.hidden, "flat", "hidden"),
        ("out", model.out, "hidden_relu", OUTPUT_NAME),
    ):
        weights.append(numpy_helper.from_array(np.asarray(layer.weight, np.float32), f"{name}.weight"))
        assert layer.bias is not None
        weights.append(numpy_helper.from_array(np.asarray(layer.bias, np.float32), f"{name}.bias"))
        nodes.append(helper.make_node("Gemm", [source, f"{name}.weight", f"{name}.bias"], [target], transB=1))
        if name == "hidden":
            nodes.append(helper.make_node("Relu", ["hidden"], ["hidden_relu"]))
    graph = helper.make_graph(
        nodes,
        "pilot",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, INPUT_HEIGHT, INPUT_WIDTH])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, 3])],
        weights,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="car train")
    proto.ir_version = 8  # readable by onnxruntime and OpenCV alike
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"car.{key}", json.dumps(value, sort_keys=True)
    onnx.checker.check_model(proto)
    return proto


def save(model: PilotNet, path: Path, metadata: dict[str, Any]) -> None:
    """Write the model to `path` (atomically)."""
    temporary = path.with_name(path.name + ".partial")
    onnx.save(to_onnx(model, metadata), str(temporary))
    temporary.replace(path)


def read_metadata(path: Path) -> dict[str, Any]:
    """A model file's `car.*` metadata, parsed."""
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key[4:]: json.loads(p.value) for p in proto.metadata_props if p.key.startswith("car.")}
