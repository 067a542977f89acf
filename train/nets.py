"""Keras models: the CNN lifter (and its flip-averaged shipped form), the streaming LSTM
filter smoother (sequence and single-step forms), and the plain single-frame MLP baseline.
Build functions only; nothing runs at import.

Shapes follow realtime/lift.py's ONNX contract:
    lifter    keypoints (N, W, 33, 3) -> pose (N, 33, 3)
    smoother  sequence form: pose_in (N, T, 33, 3), keypoints (N, T, 33, 3), dt (N, T, 1)
                             -> pose (N, T, 33, 3)
              step form:     pose_in, keypoints (N, 33, 3), dt (N, 1), h_in, c_in (N, U),
                             y_in, v_in (N, 33, 3)
                             -> pose (N, 33, 3), h_out, c_out (N, U), y_out, v_out (N, 33, 3)
    dt is the time since the previous frame in 30 fps frames (1 at 30 fps, 2 at 15 fps).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
from keras import layers  # noqa: E402

J = 33
F = J * 3


def mpjpe_loss(y_true, y_pred):
    """Mean per-joint Euclidean distance (root-relative, in the normalized output units)."""
    return keras.ops.mean(keras.ops.sqrt(keras.ops.sum(keras.ops.square(y_true - y_pred), axis=-1) + 1e-9))


def pa_mpjpe_loss(y_true, y_pred):
    """Mean per-joint distance after aligning each predicted pose to the true one by a
    similarity (rotation, scale, translation: Procrustes, as ``models/metrics.pa_mpjpe``).

    The alignment is computed without a gradient and then held fixed, so the gradient only
    asks the pose's shape to move towards the truth (the SVD's own gradient is unstable when
    two singular values meet); the root-relative MPJPE term beside it keeps the rotation and
    scale in place.
    """
    ops = keras.ops
    mp = ops.mean(y_pred, axis=-2, keepdims=True)
    mg = ops.mean(y_true, axis=-2, keepdims=True)
    p0, g0 = y_pred - mp, y_true - mg
    cov = ops.stop_gradient(ops.einsum("nji,njk->nik", p0, g0))
    u, s, vh = ops.svd(cov)
    d = ops.sign(ops.det(ops.matmul(u, vh)))                        # no reflections
    fix = ops.stack([ops.ones_like(d), ops.ones_like(d), d], axis=-1)
    rot = ops.stop_gradient(ops.matmul(u * fix[:, None, :], vh))
    scale = ops.stop_gradient(ops.sum(s * fix, axis=-1) / (ops.sum(p0 * p0, axis=(1, 2)) + 1e-9))
    aligned = scale[:, None, None] * ops.einsum("nji,nik->njk", p0, rot) + mg
    return mpjpe_loss(y_true, aligned)


def lifter_loss(pa_weight: float):
    """The lifters' training loss: root-relative MPJPE + ``pa_weight`` x PA-MPJPE.

    The PA term rewards the pose's shape (joint angles, proportions) apart from its global
    rotation and scale, which a single view leaves most uncertain. With full17's lifter
    hyperparameters, weight 1 against MPJPE alone over two seeds and two patiences: on average
    0.9 mm MPJPE and 1.4 mm PA-MPJPE better on held-out motion, -2.5 to +0.3 mm PA-MPJPE pair
    by pair (README, Accuracy).
    """
    if pa_weight <= 0:
        return mpjpe_loss

    def loss(y_true, y_pred):
        return mpjpe_loss(y_true, y_pred) + pa_weight * pa_mpjpe_loss(y_true, y_pred)

    return loss


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


def flip_averaged(lifter: keras.Model) -> keras.Model:
    """The lifter run on the 2D and on its left/right mirror image, the two 3D poses averaged.

    Mirroring 2D (negate x about the hip centre, swap left/right landmarks) mirrors the 3D
    answer (negate x, swap back). Averaging the two halves the lifter's left/right bias and
    much of its noise: on held-out motion about 5 mm MPJPE and 3 mm PA-MPJPE better than one
    pass. Same inputs and outputs as ``lifter``; the batch of two runs in one graph, so it
    is exported and run as one ONNX model.
    """
    from posits.models.skeleton import MIRROR
    window = lifter.inputs[0].shape[1]
    sign = keras.ops.convert_to_tensor([[-1.0, 1.0, 1.0]])
    index = [int(i) for i in MIRROR]

    def mirror(t):
        return keras.ops.take(t, index, axis=-2) * sign

    inp = keras.Input((window, J, 3), name="keypoints")
    both = layers.Lambda(lambda t: keras.ops.concatenate([t, mirror(t)], axis=0), name="with_mirror")(inp)
    out = lifter(both)
    avg = layers.Lambda(lambda t: 0.5 * (t[: keras.ops.shape(t)[0] // 2] + mirror(t[keras.ops.shape(t)[0] // 2:])),
                        name="average")(out)
    return keras.Model(inp, layers.Identity(name="pose")(avg), name="lifter_flip")


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


@keras.saving.register_keras_serializable(package="posits")
class FilterCell(layers.Layer):
    """One step of the smoother: an LSTM that sets the gains of a per-coordinate alpha-beta filter.

    State: LSTM ``h``, ``c`` (U), the previous refined pose ``y`` and its velocity ``v`` (99,
    per 30 fps frame). Input: the lifter's pose ``p``, the 2D ``k`` and the time since the
    previous frame ``dt`` (in 30 fps frames: 1 at 30 fps, 2 at 15 fps). Each frame the filter
    predicts ``y + v dt``; the innovation ``r`` is the lifter's pose minus that prediction; the
    LSTM (fed the innovation, the lifter pose, the 2D, the velocity and log dt) outputs gains
    ``a, b`` in (0, 1) per coordinate, and

        y' = (y + v dt) + a * r          v' = v + b * r / dt

    So the output is always a blend of the lifter and the motion so far: the network can only
    choose how much to trust each new frame (steady on jitter, quick on real motion), it never
    has to reproduce the pose from memory. Knowing dt, one LSTM serves cameras from 15 to
    60 fps (and frames dropped on the way): the same motion moves twice as far between frames
    at 15 fps, which an LSTM trained at 30 fps takes for a jitter to smooth away, and lags
    (README, Accuracy). At a track start ``y`` is the lifter's first pose and ``v`` zero, so
    the first output equals the lifter's.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units, F, F]
        self.output_size = F
        self.lstm = layers.LSTMCell(units, name="lstm")
        self.gains = layers.Dense(2 * F, name="gains", kernel_initializer="zeros",
                                  bias_initializer=keras.initializers.Constant(-1.0))

    def build(self, input_shape):
        self.lstm.build((None, 4 * F + 1))
        self.gains.build((None, self.units))
        self.built = True

    def call(self, inputs, states):
        h, c, y, v = states
        p, k, dt = inputs[:, :F], inputs[:, F:2 * F], inputs[:, 2 * F:2 * F + 1]
        pred = y + v * dt
        r = p - pred
        o, (h2, c2) = self.lstm(keras.ops.concatenate([r, p, k, v, keras.ops.log(dt)], axis=-1), [h, c])
        g = keras.ops.sigmoid(self.gains(o))
        y2 = pred + g[:, :F] * r
        v2 = v + g[:, F:] * r / dt
        return y2, [h2, c2, y2, v2]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def build_smoother(units: int, seq_len: int | None = None) -> tuple[keras.Model, keras.Model]:
    """(sequence model for training, single-step model with explicit state for export).

    Both share one FilterCell, so weights trained in one are the weights of the other. The
    sequence form starts every sequence like a new track (y = first lifter pose, v = 0).
    """
    cell = FilterCell(units, name="filter")
    steps = seq_len if seq_len is not None else -1
    p = keras.Input((seq_len, J, 3), name="pose_in")
    k = keras.Input((seq_len, J, 3), name="keypoints")
    d = keras.Input((seq_len, 1), name="dt")
    pf = layers.Reshape((steps, F))(p)
    kf = layers.Reshape((steps, F))(k)
    y0 = layers.Lambda(lambda t: t[:, 0, :], name="first_pose")(pf)
    z0 = layers.Lambda(lambda t: keras.ops.zeros_like(t[:, 0, :1]) * keras.ops.zeros((1, units)),
                       name="zero_state")(pf)
    v0 = layers.Lambda(lambda t: keras.ops.zeros_like(t), name="zero_velocity")(y0)
    seq = layers.RNN(cell, return_sequences=True, name="rnn")(
        layers.Concatenate()([pf, kf, d]), initial_state=[z0, z0, y0, v0])
    seq_model = keras.Model([p, k, d], layers.Reshape((steps, J, 3), name="pose")(seq), name="smoother_seq")

    p1 = keras.Input((J, 3), name="pose_in")
    k1 = keras.Input((J, 3), name="keypoints")
    d1 = keras.Input((1,), name="dt")
    h_in = keras.Input((units,), name="h_in")
    c_in = keras.Input((units,), name="c_in")
    y_in = keras.Input((J, 3), name="y_in")
    v_in = keras.Input((J, 3), name="v_in")
    x1 = layers.Concatenate()([layers.Reshape((F,))(p1), layers.Reshape((F,))(k1), d1])
    out, (h_out, c_out, y_out, v_out) = cell(x1, [h_in, c_in, layers.Reshape((F,))(y_in),
                                                  layers.Reshape((F,))(v_in)])
    outputs = [layers.Reshape((J, 3), name="pose")(out),
               layers.Identity(name="h_out")(h_out), layers.Identity(name="c_out")(c_out),
               layers.Reshape((J, 3), name="y_out")(y_out), layers.Reshape((J, 3), name="v_out")(v_out)]
    step_model = keras.Model([p1, k1, d1, h_in, c_in, y_in, v_in], outputs, name="smoother")
    return seq_model, step_model


def dt_input(dt, n: int, steps: int):
    """The smoother's ``dt`` input for ``n`` sequences of ``steps`` frames: (n, steps, 1)
    float32, each sequence's frame interval (one number per sequence, or None: 1, 30 fps)."""
    import numpy as np
    per_seq = np.ones(n, np.float32) if dt is None else np.asarray(dt, np.float32).reshape(n)
    return np.repeat(per_seq[:, None, None], steps, axis=1)
