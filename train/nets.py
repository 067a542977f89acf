"""Keras models: the CNN lifter, the streaming LSTM smoother (sequence and single-step forms),
and the plain single-frame MLP baseline. Build functions only; nothing runs at import.

Shapes follow realtime/lift.py's ONNX contract:
    lifter    keypoints (N, W, 33, 3) -> pose (N, 33, 3)
    smoother  sequence form: pose_in (N, T, 33, 3), keypoints (N, T, 33, 3) -> pose (N, T, 33, 3)
              step form:     pose_in (N, 33, 3), keypoints (N, 33, 3), h_in, c_in (N, U)
                             -> pose (N, 33, 3), h_out, c_out (N, U)
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
from keras import layers  # noqa: E402

J = 33
F = J * 3


def mpjpe_loss(y_true, y_pred):
    """Mean per-joint Euclidean distance (the training loss; metres, root-relative)."""
    return keras.ops.mean(keras.ops.sqrt(keras.ops.sum(keras.ops.square(y_true - y_pred), axis=-1) + 1e-9))


def build_lifter(window: int, filters: int, kernel: int, conv_layers: int, pool: int,
                 units: int, blocks: int, dropout: float, name: str = "lifter") -> keras.Model:
    """CNN lifter: temporal Conv1D over a causal window of 2D poses, then residual dense blocks.

    Joint identity is kept: every joint's x, y, visibility is its own input channel (no pooling
    over joints). Convolutions and pooling run over time within the window only; the current
    frame is also passed straight to the dense part.
    """
    inp = keras.Input((window, J, 3), name="keypoints")
    x = layers.Reshape((window, F))(inp)
    current = layers.Lambda(lambda t: t[:, -1, :], name="current_frame")(x)
    h = x
    if window > 1:
        for _ in range(conv_layers):
            h = layers.Conv1D(filters, min(kernel, window), padding="same", activation="relu")(h)
        if pool > 1 and window >= pool:
            h = layers.MaxPooling1D(pool, padding="same")(h)
    else:
        h = layers.Dense(filters, activation="relu")(h)
    h = layers.Concatenate()([layers.Flatten()(h), current])
    h = layers.Dense(units, activation="relu")(h)
    h = layers.Dropout(dropout)(h)
    for _ in range(blocks):
        r = layers.Dense(units, activation="relu")(h)
        r = layers.Dropout(dropout)(r)
        r = layers.Dense(units, activation="relu")(r)
        r = layers.Dropout(dropout)(r)
        h = layers.Add()([h, r])
    out = layers.Reshape((J, 3), name="pose")(layers.Dense(F)(h))
    return keras.Model(inp, out, name=name)


def build_mlp_baseline(units: int = 1024, blocks: int = 2, dropout: float = 0.2) -> keras.Model:
    """Martinez-style single-frame MLP (the honest baseline): one 2D frame -> 3D."""
    inp = keras.Input((1, J, 3), name="keypoints")
    h = layers.Dense(units, activation="relu")(layers.Flatten()(inp))
    h = layers.Dropout(dropout)(h)
    for _ in range(blocks):
        r = layers.Dropout(dropout)(layers.Dense(units, activation="relu")(h))
        r = layers.Dropout(dropout)(layers.Dense(units, activation="relu")(r))
        h = layers.Add()([h, r])
    out = layers.Reshape((J, 3), name="pose")(layers.Dense(F)(h))
    return keras.Model(inp, out, name="mlp_baseline")


class _Smoother:
    """The layers shared by the sequence and the step form of the smoother."""

    def __init__(self, units: int):
        self.units = units
        self.lstm = layers.LSTM(units, return_sequences=True, return_state=True, name="lstm")
        self.head = layers.Dense(F, name="delta", kernel_initializer="zeros")

    def __call__(self, pose_in, keypoints, steps, state=None):
        p = layers.Reshape((steps, F))(pose_in)
        k = layers.Reshape((steps, F))(keypoints)
        seq, h, c = self.lstm(layers.Concatenate()([p, k]), initial_state=state)
        out = layers.Add()([p, self.head(seq)])        # the LSTM predicts a correction
        return out, h, c


def build_smoother(units: int, seq_len: int | None = None) -> tuple[keras.Model, keras.Model]:
    """(sequence model for training, single-step model with explicit state for export).

    Both share the same layer objects, so weights trained in one are the weights of the other.
    """
    core = _Smoother(units)
    p = keras.Input((seq_len, J, 3), name="pose_in")
    k = keras.Input((seq_len, J, 3), name="keypoints")
    steps = seq_len if seq_len is not None else -1
    out, _, _ = core(p, k, steps)
    seq_model = keras.Model([p, k], layers.Reshape((steps, J, 3), name="pose")(out), name="smoother_seq")

    p1 = keras.Input((J, 3), name="pose_in")
    k1 = keras.Input((J, 3), name="keypoints")
    h_in = keras.Input((units,), name="h_in")
    c_in = keras.Input((units,), name="c_in")
    out1, h_out, c_out = core(p1, k1, 1, state=[h_in, c_in])
    pose = layers.Reshape((J, 3), name="pose")(out1)
    h_out = layers.Identity(name="h_out")(h_out)
    c_out = layers.Identity(name="c_out")(c_out)
    step_model = keras.Model([p1, k1, h_in, c_in], [pose, h_out, c_out], name="smoother")
    return seq_model, step_model
