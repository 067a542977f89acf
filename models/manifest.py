"""The manifest of model files (models/manifest.json): what each file is and how it was made.

Every shipped model file has an entry keyed by its role ("pose_landmarker", "lifter",
"smoother") with at least ``file`` and ``sha256``; ONNX entries also record input/output names
and shapes, the normalization version, the training data, hyperparameters and metrics.
Loading a model goes through ``resolve``, which refuses a file that does not match its entry.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from . import MODELS_DIR
from .normalize import NORMALIZATION_VERSION

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


class ModelError(Exception):
    """A model file or manifest is missing, corrupt or incompatible (one-line message)."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load(models_dir: str | Path | None = None) -> dict[str, Any]:
    """Read and check ``models_dir/manifest.json`` (default: the shipped models/)."""
    folder = Path(models_dir) if models_dir else MODELS_DIR
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ModelError(f"no {MANIFEST_NAME} in model folder {folder}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"unreadable manifest {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("manifest_version") != MANIFEST_VERSION:
        raise ModelError(f"{path}: manifest_version {data.get('manifest_version') if isinstance(data, dict) else '?'} "
                         f"is not {MANIFEST_VERSION}; this posits cannot read it")
    if not isinstance(data.get("models"), dict):
        raise ModelError(f"{path}: no 'models' table")
    return data


def resolve(role: str, models_dir: str | Path | None = None, verify: bool = True) -> tuple[Path, dict[str, Any]]:
    """Path and manifest entry of the model with ``role``, checked against the manifest.

    Raises ModelError when the entry or file is missing, the sha256 differs, or the entry was
    made for another normalization version.
    """
    folder = Path(models_dir) if models_dir else MODELS_DIR
    entry = load(folder)["models"].get(role)
    if entry is None:
        raise ModelError(f"manifest in {folder} has no '{role}' model")
    path = folder / entry["file"]
    if not path.is_file():
        raise ModelError(f"{role} model file missing: {path}")
    if "normalization_version" in entry and entry["normalization_version"] != NORMALIZATION_VERSION:
        raise ModelError(f"{path} was trained with normalization v{entry['normalization_version']}, "
                         f"this posits uses v{NORMALIZATION_VERSION}")
    if verify and sha256(path) != entry.get("sha256"):
        raise ModelError(f"{path} does not match its manifest entry (sha256 differs): "
                         f"wrong or modified model file")
    return path, entry


def shipped_file(role: str) -> Path:
    """Path of a shipped model file (no hash check: used for defaults)."""
    return resolve(role, verify=False)[0]


def file_entry(path: Path, **fields: Any) -> dict[str, Any]:
    """A manifest entry for ``path`` (its name and sha256) plus ``fields``."""
    return {"file": Path(path).name, "sha256": sha256(Path(path)), **fields}


def write(models: dict[str, dict[str, Any]], models_dir: str | Path) -> Path:
    """Write a manifest with the given model entries into ``models_dir``."""
    path = Path(models_dir) / MANIFEST_NAME
    data = {"manifest_version": MANIFEST_VERSION, "normalization_version": NORMALIZATION_VERSION,
            "models": models}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path
