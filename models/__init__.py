"""posits.models: the contract between training and the live loop.

Skeleton topology, normalization, metrics, the manifest of shipped model files, and the files
themselves (MediaPipe pose bundle, ONNX lifter and smoother). Numpy only.
"""
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent


def package_version() -> str:
    """The installed posits version (one source of truth: pyproject.toml)."""
    from importlib import metadata
    try:
        return metadata.version("posits")
    except metadata.PackageNotFoundError:
        return "unknown"
