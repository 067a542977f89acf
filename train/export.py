"""Keras -> ONNX (tf2onnx), parity checks against Keras, and manifest entries.

The smoother is exported in its single-step form with its whole recurrent state as explicit
inputs and outputs (h_in, c_in, y_in, v_in -> h_out, c_out, y_out, v_out): a Keras
``stateful=True`` LSTM converts without error but the ONNX graph would not carry the state.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from posits.models import manifest
from posits.models.normalize import NORMALIZATION_VERSION

log = logging.getLogger(__name__)
OPSET = 17
PARITY_TOL = 1e-4


def _rename_io(model_proto, names: dict[str, str]) -> None:
    """Rename graph inputs/outputs (and every node reference) in place."""
    graph = model_proto.graph
    for value in list(graph.input) + list(graph.output):
        if value.name in names:
            value.name = names[value.name]
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]


def to_onnx(model, path: Path) -> Path:
    """Convert a functional Keras model to ONNX at ``path``, keeping its input/output names."""
    import onnx
    import tensorflow as tf
    import tf2onnx
    signature = [tf.TensorSpec((None, *t.shape[1:]), tf.float32, name=t.name.split(":")[0])
                 for t in model.inputs]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET)
    wanted_in = [t.name.split(":")[0] for t in model.inputs]
    wanted_out = list(model.output_names)
    names = {v.name: w for v, w in zip(proto.graph.input, wanted_in) if v.name != w}
    names.update({v.name: w for v, w in zip(proto.graph.output, wanted_out) if v.name != w})
    _rename_io(proto, names)
    proto.producer_name = "posits-train"
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path


def _io(path: Path) -> tuple[list[dict], list[dict]]:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    fmt = lambda v: {"name": v.name, "shape": [d if isinstance(d, int) else None for d in v.shape]}  # noqa: E731
    return [fmt(v) for v in sess.get_inputs()], [fmt(v) for v in sess.get_outputs()]


def lifter_parity(keras_model, onnx_path: Path, x: np.ndarray) -> float:
    """Max abs difference between Keras and ONNX lifter outputs on windows ``x`` (N, W, 33, 3)."""
    from posits.realtime.lift import OnnxModel
    ref = keras_model.predict(x, verbose=0, batch_size=256)
    got = OnnxModel(onnx_path)(keypoints=x.astype(np.float32))["pose"]
    return float(np.abs(ref - got).max())


def smoother_parity(seq_model, onnx_path: Path, pose: np.ndarray, kp: np.ndarray, dt=None) -> float:
    """Max abs difference between the Keras sequence output and the ONNX step model stepped
    frame by frame, its state fed back by the live loop's own Smoother: pose, kp (N, T, 33, 3);
    ``dt`` (N,): each sequence's frame interval in 30 fps frames (None: 1)."""
    from posits.realtime.lift import Smoother
    from .nets import dt_input
    dts = dt_input(dt, pose.shape[0], pose.shape[1])
    ref = seq_model.predict([pose, kp, dts], verbose=0)
    worst = 0.0
    for n in range(pose.shape[0]):
        step = Smoother(onnx_path)
        got = np.stack([step.update(pose[n, t], kp[n, t], float(dts[n, t, 0])) for t in range(pose.shape[1])])
        worst = max(worst, float(np.abs(got - ref[n]).max()))
    return worst


def entry(path: Path, role: str, **fields) -> dict:
    """Manifest entry for an exported ONNX file: sha256, I/O names and shapes, normalization."""
    inputs, outputs = _io(path)
    return manifest.file_entry(path, role=role, inputs=inputs, outputs=outputs,
                               normalization_version=NORMALIZATION_VERSION, opset=OPSET, **fields)
