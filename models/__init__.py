"""posits.models: the contract between training and the live loop.

Skeleton topology, normalization, metrics, the manifest of shipped model files, and the files
themselves (MediaPipe pose bundle, ONNX lifter and smoother). Numpy only.
"""
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
