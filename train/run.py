"""The training pipeline as resumable stages in one run directory.

    data -> search -> fit -> export -> evaluate        (install copies export/ into models/)

run directory layout:
    config.json          the TrainConfig of the run
    log.txt              everything logged during the run
    data.json            dataset info (clips per split, sources, licences)
    search_lifter.json   hyperopt trials for the lifter (params, score, seconds)
    search_smoother.json hyperopt trials for the LSTM
    best_params.json     the chosen hyperparameters (lifter + LSTM), the lifter finalists
                         and their full-fit validation losses
    checkpoints/         Keras weights: lifter, smoother, baseline MLP (+ histories)
    export/              lifter.onnx, smoother.onnx, manifest.json (a --models folder)
    report.json/.md      the accuracy report

A stage whose outputs exist is skipped, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from .config import TrainConfig

log = logging.getLogger("posits.train")
STAGES = ("data", "search", "fit", "export", "evaluate")


class RunError(Exception):
    """A one-line problem with the run directory, config or data."""


def _progress_bar(total, desc):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def _epoch_callback(epochs: int, desc: str):
    import keras

    class Bar(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = _progress_bar(epochs, desc)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.bar.set_postfix(loss=f"{logs.get('loss', 0):.4f}", val=f"{logs.get('val_loss', 0):.4f}")
            self.bar.update(1)
            log.info("%s epoch %d loss %.5f val_loss %.5f", desc, epoch + 1, logs.get("loss", 0), logs.get("val_loss", 0))

        def on_train_end(self, logs=None):
            self.bar.close()

    return Bar()


class Run:
    """One run directory and the stages that fill it."""

    def __init__(self, folder: Path, config: TrainConfig, cache_dir: Path):
        self.dir = Path(folder)
        self.cfg = config
        self.cache_dir = Path(cache_dir)
        self._data = None

    # -- bookkeeping ------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: Path, config: TrainConfig | None, cache_dir: Path, create: bool) -> "Run":
        folder = Path(folder)
        cfg_path = folder / "config.json"
        if cfg_path.is_file():
            saved = TrainConfig.load(cfg_path)
            if config is not None and config != saved:
                raise RunError(f"run directory {folder} was made with another config; "
                               f"use a new --run-dir or --restart")
            config = saved
        elif not create:
            raise RunError(f"no run in {folder} (config.json missing)")
        config = config or TrainConfig()
        folder.mkdir(parents=True, exist_ok=True)
        cfg_path.write_text(json.dumps(config.to_json(), indent=2) + "\n")
        handler = logging.FileHandler(folder / "log.txt")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        logging.getLogger("posits").addHandler(handler)
        logging.getLogger("posits").setLevel(logging.INFO)
        return cls(folder, config, cache_dir)

    def _json(self, name: str, data=None):
        path = self.dir / name
        if data is None:
            return json.loads(path.read_text())
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)
        return data

    def _smoother_data(self):
        """The training data the LSTM learns from: its own sequences (``data.smoother_fps``:
        cameras at 15-60 fps, each sequence's frame interval in ``train_dt``), or with that
        None the lifter's (30 fps); at most ``smoother_sequences`` of them, evenly spread over
        the real and synthetic ones (its epochs are full passes, so more data would mean
        longer fits, not better lifting)."""
        d = self.data
        if d.smoother_x is not None:
            x, y, dt = d.smoother_x, d.smoother_y, d.smoother_dt
        else:
            x, y, dt = d.train_x, d.train_y, None
        step = max(1, -(-len(x) // self.cfg.smoother_sequences))
        return replace(d, train_x=x[::step], train_y=y[::step], train_dt=None if dt is None else dt[::step])

    def done(self, stage: str) -> bool:
        marker = {"data": "data.json", "search": "best_params.json", "fit": "checkpoints/fit.json",
                  "export": "export/manifest.json", "evaluate": "report.json"}[stage]
        return (self.dir / marker).is_file()

    @property
    def data(self):
        if self._data is None:
            from . import dataset
            self._data = dataset.build(self.cfg.data, self.cache_dir)
        return self._data

    # -- stages -------------------------------------------------------------------------------
    def stage_data(self):
        t0 = time.time()
        d = self.data
        info = {**d.info, "train_sequences": int(d.train_x.shape[0]), "val_sequences": int(d.val_x.shape[0]),
                "seconds": round(time.time() - t0, 1)}
        self._json("data.json", info)
        log.info("data: %d train / %d val sequences of %d frames; test views %d",
                 d.train_x.shape[0], d.val_x.shape[0], d.train_x.shape[1], len(d.test))

    def stage_search(self):
        from . import search
        c = self.cfg
        bar = _progress_bar(c.lifter_trials, "lifter search")

        def tick(i, n, score):
            bar.update(1)
            bar.set_postfix(val_mm=f"{score:.1f}")
            log.info("lifter trial %d/%d: val loss %.1f mm (MPJPE + %g x PA-MPJPE)", i, n, score,
                     c.lifter_pa_weight)

        best, records = search.search_lifter(self.data, c.lifter_trials, c.search_epochs, c.search_steps,
                                             c.seed, self.dir / "search_lifter.json", tick,
                                             pa_weight=c.lifter_pa_weight)
        bar.close()
        chosen = search.finalists(records, c.lifter_finalists)
        self._json("best_params.json", {"lifter": chosen[0], "lifter_finalists": chosen})
        log.info("best lifter params: %s; finalists for the full fit: %d", best, len(chosen))

    def stage_fit(self):
        from . import fit, nets, search
        c = self.cfg
        ck = self.dir / "checkpoints"
        ck.mkdir(exist_ok=True)
        params = self._json("best_params.json")
        t0 = time.time()
        lifter, lhist, lp, lseed, finals = None, None, None, None, []
        for i, cand in enumerate(params.get("lifter_finalists", [params["lifter"]])):
            for seed in range(c.seed, c.seed + c.lifter_seeds):     # every finalist, every seed
                name = f"lifter fit {i + 1}" + (f" seed {seed}" if c.lifter_seeds > 1 else "")
                model, hist = fit.fit_lifter(cand, self.data, c.fit_epochs, c.fit_steps, c.batch,
                                             patience=max(c.fit_patience, cand["patience"]), seed=seed,
                                             pa_weight=c.lifter_pa_weight,
                                             progress=_epoch_callback(c.fit_epochs, name))
                best_epoch = int(np.argmin(hist["val_loss"]))
                finals.append({"params": cand, "seed": seed, "val_loss": min(hist["val_loss"]),
                               "epochs": len(hist["val_loss"]), "val_mpjpe": hist["val_mpjpe"][best_epoch]})
                log.info("lifter finalist %d seed %d: best val loss %.5f after %d epochs", i + 1, seed,
                         finals[-1]["val_loss"], finals[-1]["epochs"])
                if lhist is None or min(hist["val_loss"]) < min(lhist["val_loss"]):
                    lifter, lhist, lp, lseed = model, hist, cand, seed
        params["lifter"] = lp
        params["lifter_seed"] = lseed
        params["lifter_finals"] = finals
        self._json("best_params.json", params)
        log.info("lifter kept: %s, seed %d", lp, lseed)
        lifter.save_weights(ck / "lifter.weights.h5")
        t_lifter = time.time() - t0
        shipped = nets.flip_averaged(lifter)          # what is exported: the smoother learns on it
        lstm_data = self._smoother_data()
        lifted_train = fit.lift_sequences(shipped, lstm_data.train_x)
        lifted_val = fit.lift_sequences(shipped, lstm_data.val_x)
        if "smoother" not in params:
            bar = _progress_bar(c.smoother_trials, "LSTM search")

            def tick(i, n, score):
                bar.update(1)
                log.info("LSTM trial %d/%d: val score %.1f (position mm + accel penalty)", i, n, score)

            best, _ = search.search_smoother(lifted_train, lifted_val, lstm_data, c.smoother_trials,
                                             c.smoother_search_epochs, c.seed, self.dir / "search_smoother.json", tick,
                                             patience=c.smoother_patience)
            bar.close()
            params["smoother"] = best
            self._json("best_params.json", params)
        sp = params["smoother"]
        t0 = time.time()
        # the same training as its search trial (epochs, patience, seed): the LSTM that ships is
        # the one the search scored. (Run full14 refitted it with patience 8: trained longer, it
        # smoothed the held-out motion to 0.31x instead of 0.33x and cost 4.8 mm MPJPE, not 1.2.)
        seq, step, shist = fit.fit_smoother(sp, lifted_train, lstm_data, lifted_val, c.smoother_epochs,
                                            patience=c.smoother_patience, seed=c.seed,
                                            progress=_epoch_callback(c.smoother_epochs, "LSTM fit"))
        seq.save_weights(ck / "smoother.weights.h5")
        t_smoother = time.time() - t0
        t0 = time.time()
        base, bhist = fit.fit_lifter({}, self.data, c.baseline_epochs, c.fit_steps, c.batch, patience=c.fit_patience,
                                     seed=c.seed, baseline=True, pa_weight=c.lifter_pa_weight,
                                     progress=_epoch_callback(c.baseline_epochs, "MLP baseline"))
        base.save_weights(ck / "baseline.weights.h5")
        self._json("checkpoints/fit.json", {
            "lifter": {"history": lhist, "seconds": round(t_lifter, 1)},
            "smoother": {"history": shist, "seconds": round(t_smoother, 1),
                         "val_score": search.smoother_score(seq, lifted_val, lstm_data)},
            "baseline": {"history": bhist, "seconds": round(time.time() - t0, 1)}})

    def _models(self):
        """Rebuild the Keras models of this run from best_params.json and the checkpoints: the
        lifter as shipped (flip-averaged), the smoother's sequence and step forms, the MLP."""
        from . import nets
        params = self._json("best_params.json")
        lp, sp = params["lifter"], params["smoother"]
        lifter = nets.build_lifter(lp["window"], lp["filters"], lp["kernel"], lp["conv_layers"], lp["pool"],
                                   lp["units"], lp["blocks"], lp["dropout"])
        lifter.load_weights(self.dir / "checkpoints" / "lifter.weights.h5")
        lifter = nets.flip_averaged(lifter)
        seq, step = nets.build_smoother(sp["lstm_units"], self.cfg.data.seq_len)
        seq.load_weights(self.dir / "checkpoints" / "smoother.weights.h5")
        base = nets.build_mlp_baseline()
        base.load_weights(self.dir / "checkpoints" / "baseline.weights.h5")
        return lifter, seq, step, base, params

    def stage_export(self):
        from posits.models import manifest
        from . import export, fit
        lifter, seq, step, _, params = self._models()
        out = self.dir / "export"
        if out.exists():
            shutil.rmtree(out)
        lpath = export.to_onnx(lifter, out / "lifter.onnx")
        spath = export.to_onnx(step, out / "smoother.onnx")
        d = self.data
        x = fit.gather_windows(d.val_x, np.arange(min(64, len(d.val_x))), np.full(min(64, len(d.val_x)), d.val_x.shape[1] - 1),
                               lifter.inputs[0].shape[1])
        lifted = fit.lift_sequences(lifter, d.val_x[:16])
        parity = {"lifter_max_abs": export.lifter_parity(lifter, lpath, x),
                  "smoother_stepwise_max_abs": export.smoother_parity(seq, spath, lifted, d.val_x[:16],
                                                                      dt=np.geomspace(0.5, 2.0, 16))}
        if max(parity.values()) >= export.PARITY_TOL:
            raise RunError(f"ONNX export parity failed: {parity}")
        fitinfo = self._json("checkpoints/fit.json")
        data_info = self._json("data.json")
        common = {"data": {k: data_info[k] for k in ("train_clips", "val_clips", "test_clips", "sources",
                                                     "synthetic_clips", "train_frames_real", "train_sequences")},
                  "data_config": asdict(self.cfg.data), "seed": self.cfg.seed,
                  "parity": parity, "run": self.dir.name}
        entries = {
            "lifter": export.entry(lpath, "CNN lifter: causal window of normalized 2D -> root-relative 3D, averaged with its run on the mirrored 2D",
                                   window=int(params["lifter"]["window"]), hyperparameters=params["lifter"],
                                   train_seconds=fitinfo["lifter"]["seconds"], **common),
            "smoother": export.entry(spath, "streaming LSTM filter, one step, the frame interval as input, explicit state (h, c, previous pose, velocity)",
                                     units=int(params["smoother"]["lstm_units"]),
                                     hyperparameters=params["smoother"],
                                     train_seconds=fitinfo["smoother"]["seconds"], **common),
        }
        manifest.write(entries, out)
        log.info("exported %s and %s, parity %s", lpath, spath, parity)

    def stage_evaluate(self, models_dir: Path | None = None):
        from . import evaluate
        *_, base, _ = self._models()
        report = evaluate.evaluate(self.data, models_dir or self.dir / "export", baseline=base)
        if models_dir is not None:         # another model set: keep the run's own report
            report["models_dir"] = str(models_dir)
            evaluate.write_report(report, self.dir, stem="report_models")
            return report
        evaluate.write_report(report, self.dir)
        from posits.models import manifest      # metrics go into the run's manifest entries
        data = manifest.load(self.dir / "export")
        summary = {k: report["methods"][k] for k in ("lifter (CNN)", "lifter + LSTM", evaluate.FINAL)}
        summary["onnx_latency"] = report["onnx_latency"]
        for role in ("lifter", "smoother"):
            data["models"][role]["metrics"] = summary
        manifest.write(data["models"], self.dir / "export")
        return report

    def run_until(self, last: str, force: bool = False):
        for stage in STAGES[: STAGES.index(last) + 1]:
            if self.done(stage) and not (force and stage == last):
                log.info("stage %s: already done, skipped", stage)
                continue
            t0 = time.time()
            print(f"posits-train: {stage} ...", flush=True)
            getattr(self, f"stage_{stage}")()
            log.info("stage %s: %.1f s", stage, time.time() - t0)
            print(f"posits-train: {stage} done in {time.time() - t0:.0f} s", flush=True)

    def install(self, models_dir: Path):
        """Copy this run's exported ONNX files into ``models_dir`` and merge their manifest entries."""
        from posits.models import manifest
        src = self.dir / "export"
        if not self.done("export"):
            raise RunError(f"run {self.dir} has no export yet: run posits-train export --run-dir {self.dir}")
        new = manifest.load(src)["models"]
        try:
            current = manifest.load(models_dir)["models"]
        except manifest.ModelError:
            current = {}
        for role, entry in new.items():
            shutil.copy2(src / entry["file"], models_dir / entry["file"])
            current[role] = entry
        manifest.write(current, models_dir)
        if (self.dir / "report.md").is_file():
            shutil.copy2(self.dir / "report.md", models_dir / "REPORT.md")
        return models_dir
