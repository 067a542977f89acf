"""posits-live: live 3D human pose from a camera or a video file.

    posits-live --camera 0
    posits-live --video dance.mp4 --record out.mp4 --export poses.jsonl
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from posits.models import package_version

log = logging.getLogger("posits.live")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="posits-live",
        description="Live 3D human pose from one webcam or a video file: MediaPipe 2D landmarks, "
                    "an ONNX CNN lifter and a streaming ONNX LSTM, shown as video + 3D skeleton.",
        epilog="Keys in the window: q or Esc quits; drag in the 3D view to orbit, scroll to zoom. "
               "Without a display posits-live runs headless.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, metavar="N", help="camera index (default: 0 when no --video)")
    src.add_argument("--video", metavar="PATH", help="a video file (anything OpenCV reads)")
    cam = p.add_argument_group("camera")
    cam.add_argument("--width", type=int, help="requested camera width in pixels")
    cam.add_argument("--height", type=int, help="requested camera height in pixels")
    cam.add_argument("--fps", type=float, help="requested camera frame rate")
    cam.add_argument("--mirror", action="store_true", help="flip the image left-right (selfie view)")
    out = p.add_argument_group("output")
    out.add_argument("--record", metavar="PATH", help="write the composite view to a video (.mp4 or .avi)")
    out.add_argument("--export", metavar="PATH", help="write per-frame 2D and 3D poses (.jsonl or .npz)")
    out.add_argument("--headless", action="store_true", help="no window (rendering stays offscreen)")
    out.add_argument("--no-pacing", action="store_true",
                     help="with a window, play a video as fast as it is processed instead of at its frame rate")
    mod = p.add_argument_group("models")
    mod.add_argument("--pose-model", metavar="PATH", help="a MediaPipe PoseLandmarker .task bundle "
                     "(default: the shipped full model)")
    mod.add_argument("--models", metavar="DIR", help="a folder with manifest.json, lifter and smoother "
                     "ONNX files (default: the shipped models)")
    mod.add_argument("--no-lstm", action="store_true", help="lifter only, no LSTM smoothing")
    mod.add_argument("--no-bone-filter", action="store_true",
                     help="do not hold each bone at the person's running average length (the 3D "
                          "as the models give it)")
    mod.add_argument("--threads", type=int, default=1, metavar="N",
                     help="ONNX Runtime threads for the lifter and LSTM (default: 1)")
    run = p.add_argument_group("run")
    run.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    run.add_argument("--verbose", "-v", action="store_true", help="log per-stage timings and debug output")
    p.add_argument("--version", action="version", version=f"posits-live {package_version()}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="posits-live: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.verbose:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "24")     # FFmpeg warnings
    from .app import run, UserError
    try:
        return run(args)
    except UserError as exc:
        print(f"posits-live: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
