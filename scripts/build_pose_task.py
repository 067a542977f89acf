#!/usr/bin/env python
"""Rebuild models/pose_landmarker_full.task, the MediaPipe PoseLandmarker bundle posits ships.

mediapipe 1.x ships no model files and the official .task bundles live on a web host that
offline machines cannot reach. The mediapipe 0.10.21 wheel on PyPI contains the two TFLite
models of the "full" pose pipeline (Apache-2.0). This script downloads that wheel with pip,
adds the image-input metadata the landmark model needs, and bundles both as a .task file.

    python scripts/build_pose_task.py            # writes models/pose_landmarker_full.task
    python scripts/build_pose_task.py --wheel mediapipe-0.10.21-...whl --out other.task
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import types
import zipfile
from pathlib import Path

WHEEL_VERSION = "0.10.21"
DETECTOR = "mediapipe/modules/pose_detection/pose_detection.tflite"
LANDMARKS = "mediapipe/modules/pose_landmark/pose_landmark_full.tflite"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "models" / "pose_landmarker_full.task"


def _stub_missing_metadata_version_module() -> None:
    """mediapipe 1.2.x lacks mediapipe.tasks.cc; metadata_writer imports one function from it."""
    name = "mediapipe.tasks.cc.metadata.python"
    if name in sys.modules:
        return
    inner = types.ModuleType(name + "._pywrap_metadata_version")
    inner.GetMinimumMetadataParserVersion = lambda buf: "1.0.0"
    outer = types.ModuleType(name)
    outer._pywrap_metadata_version = inner
    sys.modules[name] = outer
    sys.modules[inner.__name__] = inner


def download_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "--only-binary", ":all:", "--python-version", "3.11",
                    "--platform", "manylinux_2_28_x86_64",
                    f"mediapipe=={WHEEL_VERSION}", "-d", str(dest)], check=True)
    return next(dest.glob(f"mediapipe-{WHEEL_VERSION}-*.whl"))


def build(wheel: Path, out: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        detector = zf.read(DETECTOR)
        landmarks = zf.read(LANDMARKS)
    try:
        _stub_missing_metadata_version_module()
        from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer
        from mediapipe.tasks.python.metadata.metadata_writers import model_asset_bundle_utils
    except ImportError as exc:
        sys.exit(f"build_pose_task: cannot import mediapipe's metadata writers: {exc}")
    writer = metadata_writer.MetadataWriter.create(bytearray(landmarks))
    landmarks_with_meta, _ = writer.add_image_input(norm_mean=[0.0], norm_std=[255.0]).populate()
    out.parent.mkdir(parents=True, exist_ok=True)
    model_asset_bundle_utils.create_model_asset_bundle(
        {"pose_detector.tflite": detector, "pose_landmarks_detector.tflite": landmarks_with_meta},
        str(out))
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help="a local mediapipe 0.10.21 wheel (default: pip download)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.wheel:
        build(args.wheel, args.out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            build(download_wheel(Path(tmp)), args.out)


if __name__ == "__main__":
    main()
