"""posits-train: make the ONNX models posits-live runs.

    posits-train                       the whole pipeline into a new run directory
    posits-train --quick               a 2-3 minute run (tests, smoke checks)
    posits-train evaluate --run-dir runs/X
    posits-train install --run-dir runs/X   copy a run's models into models/ as the default
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path

from posits.models import package_version

TRAIN_EXTRA = ("tensorflow", "tf2onnx", "onnx", "hyperopt", "tqdm")
SUBCOMMANDS = {
    "data": "build (or load from cache) the training, validation and test data",
    "search": "hyperopt TPE search of the lifter (runs data first if needed)",
    "fit": "train the lifter, search and train the LSTM, train the MLP baseline",
    "export": "export lifter and LSTM step to ONNX, check parity, write the manifest",
    "evaluate": "accuracy table on held-out real motion; writes report.json/.md",
    "all": "every stage (the default)",
    "install": "copy a run's exported models and manifest into models/",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="posits-train",
        description="Train the posits lifter (CNN) and streaming LSTM on real motion capture + "
                    "synthetic motion, search hyperparameters with hyperopt, export ONNX, evaluate.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="stages:\n" + "\n".join(f"  {k:9s} {v}" for k, v in SUBCOMMANDS.items()) +
               "\n\nA stage runs the stages before it when their results are missing; an "
               "interrupted run continues with --resume.")
    p.add_argument("command", nargs="?", default="all", choices=list(SUBCOMMANDS), metavar="STAGE",
                   help="one of: " + ", ".join(SUBCOMMANDS) + " (default: all)")
    p.add_argument("--run-dir", type=Path, help="run directory (default: runs/<date-time> for a new run)")
    p.add_argument("--quick", action="store_true", help="tiny configuration (2-3 minutes): for tests")
    p.add_argument("--config", type=Path, help="a JSON file overriding config fields (see train/config.py)")
    p.add_argument("--seed", type=int, help="seed for data, search and training (default 0)")
    p.add_argument("--resume", action="store_true", help="continue an existing run directory")
    p.add_argument("--restart", action="store_true", help="delete an existing run directory and start over")
    p.add_argument("--install", action="store_true", help="after the run, install its models as the default")
    p.add_argument("--models", type=Path, help="evaluate: another model folder instead of the run's export")
    p.add_argument("--models-dir", type=Path, help="install: target folder (default: the package's models/)")
    p.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("POSITS_CACHE", ".cache/posits")),
                   help="dataset cache (default: .cache/posits or $POSITS_CACHE)")
    p.add_argument("--version", action="version", version=f"posits-train {package_version()}")
    return p


def _missing_extra() -> list[str]:
    return [m for m in TRAIN_EXTRA if importlib.util.find_spec(m) is None]


def _config(args):
    from .config import DEFAULT, QUICK, TrainConfig
    cfg = QUICK if args.quick else DEFAULT
    if args.config:
        import json
        from dataclasses import asdict
        try:
            overrides = json.loads(args.config.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"bad config {args.config}: {exc}") from None
        if not isinstance(overrides, dict):
            raise ValueError(f"bad config {args.config}: expected a JSON object")
        merged = asdict(cfg)
        for k, v in overrides.items():
            if k == "data" and isinstance(v, dict):
                merged["data"].update(v)
            else:
                merged[k] = v
        cfg = TrainConfig.from_json(merged)
    if args.seed is not None:
        cfg = cfg.with_seed(args.seed)
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = _missing_extra()
    if missing:
        print(f"posits-train: error: training needs the [train] extra (missing {', '.join(missing)}): "
              f"pip install 'posits[train]'", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import logging
    logging.basicConfig(level=logging.WARNING, format="posits-train: %(message)s")
    from .run import Run, RunError
    try:
        cfg = _config(args)
        existing = args.run_dir is not None and (args.run_dir / "config.json").is_file()
        if args.command == "install":
            if args.run_dir is None:
                raise RunError("install needs --run-dir")
            run = Run.open(args.run_dir, None, args.cache_dir, create=False)
            from posits.models import MODELS_DIR
            target = run.install(args.models_dir or MODELS_DIR)
            print(f"posits-train: installed {args.run_dir}/export into {target}")
            return 0
        if args.run_dir is None:
            args.run_dir = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        if existing and args.restart:
            shutil.rmtree(args.run_dir)
            existing = False
        elif existing and args.command == "all" and not args.resume:
            raise RunError(f"run directory {args.run_dir} exists: add --resume to continue it, "
                           f"--restart to start over, or choose another --run-dir")
        elif args.run_dir.exists() and not existing and any(args.run_dir.iterdir()):
            raise RunError(f"{args.run_dir} exists and is not a posits run directory")
        config_given = args.quick or args.config or args.seed is not None
        run = Run.open(args.run_dir, cfg if (config_given or not existing) else None, args.cache_dir, create=True)
        print(f"posits-train: run directory {run.dir}", flush=True)
        last = "evaluate" if args.command == "all" else args.command
        if args.command == "evaluate" and args.models:
            run.run_until("export")
            report = run.stage_evaluate(args.models)
        else:
            run.run_until(last, force=args.command not in ("all",) and args.resume is False and existing)
            report = None
        if last == "evaluate":
            from .evaluate import format_table
            import json
            report = report or json.loads((run.dir / "report.json").read_text())
            print(format_table(report))
        if args.install:
            from posits.models import MODELS_DIR
            run.install(args.models_dir or MODELS_DIR)
            print(f"posits-train: installed the models of {run.dir} into {args.models_dir or MODELS_DIR}")
        return 0
    except (RunError, ValueError, FileNotFoundError) as exc:
        print(f"posits-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"posits-train: interrupted; continue with: posits-train --run-dir {args.run_dir} --resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
