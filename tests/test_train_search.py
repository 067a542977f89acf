"""The hyperopt searches themselves (train/search.py): the lifter's is TPE, not a random search,
within its budget; the LSTM's samples at random on purpose."""
from __future__ import annotations

import json

import numpy as np

from posits.train import search


def test_tpe_starts_modelling_early_and_homes_in(tmp_path):
    """A third of the trials are random, the rest proposed by TPE (hyperopt's own default of 20
    random start-up trials would make the lifter search's 12 trials a random search). On a 1-D
    objective over [0, 10] with its optimum at 9, random trials are a median 4 away; TPE's
    proposals home in, and with every trial random (``startup``, the LSTM search) they do not."""
    from hyperopt import hp
    assert [search.startup_trials(n) for n in (1, 4, 12, 30)] == [1, 2, 4, 10]
    optimum = 9.0
    space = {"x": hp.uniform("x", 0.0, 10.0)}

    def objective(p):
        return (p["x"] - optimum) ** 2

    best, records = search._run(space, objective, 30, 0, tmp_path / "trials.json", None)
    xs = np.array([r["params"]["x"] for r in records])
    assert len(xs) == 30 and len(json.loads((tmp_path / "trials.json").read_text())) == 30
    assert np.median(np.abs(xs[search.startup_trials(30):] - optimum)) < 2.5
    assert abs(best["x"] - optimum) <= np.min(np.abs(xs - optimum)) + 1e-9
    _, random_records = search._run(space, objective, 30, 0, tmp_path / "random.json", None, startup=30)
    xr = np.array([r["params"]["x"] for r in random_records])
    assert np.median(np.abs(xr[search.startup_trials(30):] - optimum)) > 2.5


def test_lstm_score_penalizes_smoothing_short_of_and_past_the_aim():
    """On real motion with lifter-like jitter: leaving the jitter in pays above ACCEL_RATIO,
    smoothing far past it pays too (it lags everyday motion the fast validation clips
    under-price); an exponential filter that lands near the aim pays least penalty."""
    from posits.models.normalize import normalize_3d
    from posits.train.mocap import load_motion
    walk = next(c.joints for c in load_motion() if c.name == "cmu/playground")[:240]
    truth = normalize_3d(walk)[None].astype(np.float64)
    lifted = truth + np.random.default_rng(0).normal(0.0, 0.012, truth.shape)

    def ema(x, a):
        out = x.copy()
        for t in range(1, x.shape[1]):
            out[:, t] = a * x[:, t] + (1 - a) * out[:, t - 1]
        return out

    def penalty(pred):
        pos, _ = search._pos_acc(pred, truth)
        return search.smoothing_score(pred, lifted, truth) - pos

    _, acc_lifter = search._pos_acc(lifted, truth)
    ratios = {a: search._pos_acc(ema(lifted, a), truth)[1] / acc_lifter for a in (0.1, 0.2, 0.3, 0.5)}
    aimed = min(ratios, key=lambda a: abs(ratios[a] - search.ACCEL_RATIO))
    assert ratios[0.1] < search.ACCEL_RATIO - 0.1                 # over-smoothed
    assert penalty(lifted) > penalty(ema(lifted, aimed)) < penalty(ema(lifted, 0.1))
    assert penalty(ema(lifted, 0.1)) > 0 and penalty(lifted) > 0


def test_finalists_are_the_best_distinct_trials():
    """finalists(): best score first, a parameter set tried twice counts once, at most n."""
    a, b, c = {"units": 320, "lr": 0.002}, {"units": 256, "lr": 0.001}, {"units": 192, "lr": 0.003}
    records = [{"params": c, "score": 140.0}, {"params": a, "score": 134.6}, {"params": a, "score": 134.9},
               {"params": b, "score": 136.4}]
    assert search.finalists(records, 2) == [a, b]
    assert search.finalists(records, 5) == [a, b, c]
    assert search.finalists(records, 0) == [a]
