"""Tiny YOLOv8-shaped ONNX detectors for ADetailer tests: fixed candidate boxes, written with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_yolo(
    path: Path,
    candidates: list[tuple[float, float, float, float, float]],
    size: int = 640,
    protos: np.ndarray | None = None,
) -> Path:
    """A detector whose output0 is [1, 5, N]: each candidate (cx, cy, w, h, score) in letterboxed pixels, one class.

    With `protos` ([32, mh, mw]) it is a -seg model: every candidate gets mask coefficients 1 on the first
    prototype, and output1 is the prototypes. The image feeds a ReduceMean x 0 so the graph uses its input.
    """
    import onnx
    from onnx import TensorProto, helper

    rows = [list(c) for c in candidates]
    if protos is not None:
        rows = [r + [1.0] + [0.0] * (protos.shape[0] - 1) for r in rows]
    table = np.asarray(rows, dtype=np.float32).T[None]  # (1, 4 + 1 [+ 32], N)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["table", "nothing"], ["output0"]),
    ]
    inits = [
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("table", TensorProto.FLOAT, table.shape, table.flatten().tolist()),
    ]
    outputs = [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(table.shape))]
    if protos is not None:
        nodes.append(helper.make_node("Add", ["protos", "nothing"], ["output1"]))
        inits.append(helper.make_tensor("protos", TensorProto.FLOAT, [1, *protos.shape], protos.flatten().tolist()))
        outputs.append(helper.make_tensor_value_info("output1", TensorProto.FLOAT, [1, *protos.shape]))
    graph = helper.make_graph(
        nodes,
        "tiny-yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
