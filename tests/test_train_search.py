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
