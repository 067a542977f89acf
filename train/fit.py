"""Training loops: the lifter on causal windows, the LSTM smoother on lifted sequences.

Functions only: ``fit_lifter(params, data, ...)`` and ``fit_smoother(params, lifter, data, ...)``
return the trained Keras model(s) and their history; nothing runs at import.
"""
from __future__ import annotations

import logging
import math

import numpy as np

from .dataset import Dataset, windows
from . import nets

log = logging.getLogger(__name__)


def gather_windows(x: np.ndarray, seq: np.ndarray, t: np.ndarray, window: int) -> np.ndarray:
    """Causal windows ending at frames t of sequences seq: x (N, L, 33, 3) -> (B, W, 33, 3),
    edge-padded at the sequence start (as the live lifter pads a new track)."""
    ts = np.maximum(t[:, None] - (window - 1) + np.arange(window)[None, :], 0)
    return x[seq[:, None], ts]


def _window_batches(x, y, window, batch, steps, seed):
    import keras

    class Windows(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.rng = np.random.default_rng(seed)

        def __len__(self):
            return steps

        def __getitem__(self, i):
            seq = self.rng.integers(0, x.shape[0], batch)
            t = self.rng.integers(0, x.shape[1], batch)
            return gather_windows(x, seq, t, window), y[seq, t]

    return Windows()


def _callbacks(patience: int, progress):
    import keras
    cbs = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
           keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 2),
                                             min_lr=1e-5, verbose=0)]
    if progress is not None:
        cbs.append(progress)
    return cbs


def fit_lifter(params: dict, data: Dataset, epochs: int, steps: int, batch: int = 256,
               patience: int = 4, seed: int = 0, progress=None, baseline: bool = False, *,
               pa_weight: float):
    """Train a lifter (or, with ``baseline``, the single-frame MLP) -> (model, history dict).

    The loss is ``nets.lifter_loss(pa_weight)`` (the weight comes from the run's config,
    ``TrainConfig.lifter_pa_weight``); the history also holds the plain MPJPE (``mpjpe``,
    ``val_mpjpe``; normalized units)."""
    import keras
    keras.utils.set_random_seed(seed)
    if baseline:
        model = nets.build_mlp_baseline(params.get("units", 1024), params.get("blocks", 2),
                                        params.get("dropout", 0.2))
        window = 1
    else:
        window = int(params["window"])
        model = nets.build_lifter(window, int(params["filters"]), int(params["kernel"]),
                                  int(params["conv_layers"]), int(params["pool"]), int(params["units"]),
                                  int(params["blocks"]), float(params["dropout"]))
    model.compile(optimizer=keras.optimizers.Adam(float(params.get("lr", 1e-3))),
                  loss=nets.lifter_loss(pa_weight),
                  metrics=[keras.metrics.MeanMetricWrapper(nets.mpjpe_loss, name="mpjpe")])
    vx = windows(data.val_x, window).reshape(-1, window, 33, 3)
    vy = data.val_y.reshape(-1, 33, 3)
    hist = model.fit(_window_batches(data.train_x, data.train_y, window, batch, steps, seed),
                     validation_data=(vx, vy), validation_batch_size=2048, epochs=epochs, verbose=0,
                     callbacks=_callbacks(patience, progress))
    return model, {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def lift_sequences(lifter, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Run a Keras lifter over every frame of sequences x (N, L, 33, 3) -> (N, L, 33, 3)."""
    window = lifter.inputs[0].shape[1]
    flat = windows(x, window).reshape(-1, window, 33, 3)
    return lifter.predict(flat, batch_size=batch, verbose=0).reshape(x.shape)


def smoother_loss(vel_weight: float, acc_weight: float):
    """Position error + errors of the velocity and acceleration (frame differences)."""
    import keras.ops as K

    def dist(a, b):
        return K.mean(K.sqrt(K.sum(K.square(a - b), axis=-1) + 1e-9))

    def loss(y_true, y_pred):
        v_t, v_p = y_true[:, 1:] - y_true[:, :-1], y_pred[:, 1:] - y_pred[:, :-1]
        a_t, a_p = v_t[:, 1:] - v_t[:, :-1], v_p[:, 1:] - v_p[:, :-1]
        return dist(y_true, y_pred) + vel_weight * dist(v_t, v_p) + acc_weight * dist(a_t, a_p)

    return loss


def fit_smoother(params: dict, lifted_train: np.ndarray, data: Dataset, lifted_val: np.ndarray,
                 epochs: int, batch: int = 64, patience: int = 4, seed: int = 0, progress=None):
    """Train the LSTM on lifter outputs -> (sequence model, step model, history dict).
    Each training sequence's frame interval is ``data.train_dt`` (None: 30 fps); the
    validation sequences are at 30 fps."""
    import keras
    keras.utils.set_random_seed(seed)
    n, steps = data.train_x.shape[:2]
    seq_model, step_model = nets.build_smoother(int(params["lstm_units"]), steps)
    loss = smoother_loss(float(params.get("vel_weight", 2.0)), float(params.get("acc_weight", 4.0)))
    seq_model.compile(optimizer=keras.optimizers.Adam(float(params.get("lstm_lr", 1e-3)), clipnorm=1.0),
                      loss=loss)
    dt_train = nets.dt_input(data.train_dt, n, steps)
    dt_val = nets.dt_input(None, len(data.val_x), data.val_x.shape[1])
    hist = seq_model.fit([lifted_train, data.train_x, dt_train], data.train_y, batch_size=batch, epochs=epochs,
                         validation_data=([lifted_val, data.val_x, dt_val], data.val_y), verbose=0,
                         callbacks=_callbacks(patience, progress), shuffle=True)
    return seq_model, step_model, {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def steps_for(samples: int, batch: int) -> int:
    return max(1, math.ceil(samples / batch))
