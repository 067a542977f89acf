"""Training configuration: one dataclass, every field commented, a default and a --quick preset."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from .dataset import DataConfig


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)   # (DataConfig) how sequences are made
    lifter_trials: int = 12        # (int) hyperopt TPE trials for the lifter
    smoother_trials: int = 4       # (int) hyperopt trials for the LSTM (random: see search_smoother)
    search_epochs: int = 6         # (int) epochs per lifter trial (early stopping may cut it)
    search_steps: int = 250        # (int) batches per epoch in a lifter trial
    lifter_finalists: int = 2      # (int) best search trials each given the full fit; the one
                                   #       with the lowest validation loss is kept
    lifter_seeds: int = 2          # (int) full fits per finalist, with seeds seed, seed+1, ...
                                   #       (seed to seed held-out PA-MPJPE varies by up to 3.5 mm;
                                   #       validation ranks the fits alike): the best one is kept
    smoother_search_epochs: int = 10  # (int) epochs per LSTM trial (as long as the final fit)
    fit_epochs: int = 60           # (int) max epochs of the final lifter fit
    fit_steps: int = 400           # (int) batches per epoch of the final lifter fit
    fit_patience: int = 8          # (int) early-stopping patience of the final lifter and MLP fits
    smoother_epochs: int = 10      # (int) max epochs of the final LSTM fit (it settles in ~10)
    smoother_patience: int = 3     # (int) early-stopping patience of the LSTM, in its search and
                                   #       final fit alike: the LSTM shipped is the one scored
    smoother_sequences: int = 6000  # (int) training sequences the LSTM learns from (evenly spread)
    baseline_epochs: int = 10      # (int) max epochs of the MLP baseline
    lifter_pa_weight: float = 1.0  # (float) weight of the PA-MPJPE term in the lifters' loss
                                   #       (MPJPE + w x PA-MPJPE; 0: MPJPE alone, as before full18)
    batch: int = 256               # (int) lifter batch size (windows)
    seed: int = 0                  # (int) seeds data, search and training

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        data = dict(data)
        if "data" in data:
            dknown = {f.name for f in fields(DataConfig)}
            bad = set(data["data"]) - dknown
            if bad:
                raise ValueError(f"unknown data config keys: {', '.join(sorted(bad))}")
            d = dict(data["data"])
            for k in ("body_scale", "speed", "smoother_fps"):
                if d.get(k) is not None:
                    d[k] = tuple(d[k])
            fps = d.get("smoother_fps")
            if fps is not None and (len(fps) != 2 or not all(isinstance(f, (int, float)) and f > 0 for f in fps)
                                    or fps[0] > fps[1]):
                raise ValueError(f"data config key smoother_fps must be [lowest, highest] fps > 0 or null, got {list(fps)}")
            data["data"] = DataConfig(**d)
        for k, v in data.items():
            if k == "data":
                continue
            if k in FLOAT_KEYS:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                    raise ValueError(f"config key {k} must be a number >= 0, got {v!r}")
                data[k] = float(v)
            elif isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"config key {k} must be an integer, got {v!r}")
            elif v < (0 if k == "seed" else 1):
                raise ValueError(f"config key {k} must be at least {0 if k == 'seed' else 1}, got {v}")
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"bad config {path}: {exc}") from None

    def with_seed(self, seed: int) -> "TrainConfig":
        return replace(self, seed=seed, data=replace(self.data, seed=seed))


FLOAT_KEYS = {f.name for f in fields(TrainConfig) if f.type in (float, "float")}

DEFAULT = TrainConfig()

#: A tiny run (about 2-3 minutes on 2 cores) for tests and smoke checks: same code, less of it.
QUICK = TrainConfig(
    data=DataConfig(seq_len=32, real_sequences=150, synth_sequences=150, synth_clips=8,
                    val_sequences=40, test_cameras=1, test_close_cameras=1,
                    test_seated_clips=1, test_low_fps_cameras=1),
    lifter_trials=2, smoother_trials=1, search_epochs=2, search_steps=15,
    smoother_search_epochs=2, fit_epochs=4, fit_steps=30, fit_patience=2, smoother_epochs=4,
    baseline_epochs=2,
    batch=128)
