"""posits-live's main job: open the input, the models and the outputs, then run the loop.

    source ─> Pipeline (capture thread, inference thread) ─> for result in pipeline:
        Overlay()(frame, pose2d, HUD) -> PoseView.update(image, pose3d)
        -> Recorder.write(view.render(out=composite))  /  PoseExporter.add(result)  /  window events

Everything that can be wrong with the user's input is turned into a ``UserError`` (one line on
stderr, exit status 2) before the loop starts; recordings and exports are finalized on every
way out of the loop (end of input, q/Esc, window closed, Ctrl-C, --max-frames).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from contextlib import ExitStack
from pathlib import Path

log = logging.getLogger("posits.live")

MAX_PANEL_HEIGHT = 540


class UserError(Exception):
    """Bad input or environment, reported as one line."""


def composite_size(video_size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the composite: the video panel keeps the video's aspect ratio, the 3D
    panel beside it has the same size; at most MAX_PANEL_HEIGHT pixels high, even sizes."""
    w, h = video_size
    ph = min(h, MAX_PANEL_HEIGHT)
    ph -= ph % 2
    pw = int(round(ph * w / h))
    pw -= pw % 2
    return 2 * pw, ph


def open_source(args: argparse.Namespace):
    from .capture import CameraSource, VideoSource
    if args.video is not None:
        return VideoSource(args.video, mirror=args.mirror)
    return CameraSource(args.camera if args.camera is not None else 0, width=args.width,
                        height=args.height, fps=args.fps, mirror=args.mirror)


def _check_output_path(path: str, kinds: tuple[str, ...], what: str) -> None:
    p = Path(path)
    if p.suffix.lower() not in kinds:
        raise UserError(f"{what} {path}: unknown extension '{p.suffix}' (use {' or '.join(kinds)})")


def run(args: argparse.Namespace) -> int:
    """Run posits-live with parsed arguments; returns the exit status."""
    from .capture import CaptureError
    from .outputs import OutputError
    from posits.models.manifest import ModelError
    for value, name in ((args.max_frames, "--max-frames"), (args.threads, "--threads"),
                        (args.width, "--width"), (args.height, "--height")):
        if value is not None and value <= 0:
            raise UserError(f"{name} must be positive, got {value}")
    if args.record:
        _check_output_path(args.record, (".mp4", ".avi"), "--record")
    if args.export:
        _check_output_path(args.export, (".jsonl", ".npz"), "--export")
    try:
        with ExitStack() as stack:
            return _run(args, stack)
    except (CaptureError, OutputError, ModelError) as exc:
        raise UserError(str(exc)) from None


def _run(args: argparse.Namespace, stack: ExitStack) -> int:
    from .detect import PoseDetector
    from .lift import PoseLifter
    from .outputs import PoseExporter, Recorder
    from .overlay import Overlay, format_hud
    from .pipeline import Pipeline
    from .timing import profile

    # the window needs a display; without one select_backend says so (one line) and we run headless
    headless = args.headless
    if not headless:
        from .view3d import select_backend
        headless = select_backend(headless=False) == "egl"
    source = open_source(args)
    stack.callback(source.release)
    exporter = stack.enter_context(PoseExporter(args.export)) if args.export else None
    size = composite_size(source.size)
    recorder = stack.enter_context(Recorder(args.record, source.fps, size)) if args.record else None
    detector = stack.enter_context(PoseDetector(args.pose_model))
    lifter = PoseLifter(args.models, use_lstm=not args.no_lstm, threads=args.threads,
                        bones=not args.no_bone_filter, fps=source.fps)
    if lifter.lags_at(source.fps):
        log.warning("%s runs at %.0f fps: the LSTM filter lags below %.0f fps (more light for a "
                    "camera, or --no-lstm)", source.name, source.fps, lifter.lag_fps())
    view = None
    if not headless or recorder is not None:
        from .view3d import PoseView
        view = stack.enter_context(PoseView(size, show=not headless))
    pace = view is not None and view.shown and not source.is_live and not args.no_pacing

    pipeline = stack.enter_context(Pipeline(source, detector, lifter))
    frames = found = 0
    t_start = time.monotonic()
    render_ms = 0.0
    overlay, composite = Overlay(), None    # drawn into the same memory every frame
    for result in pipeline:
        frames += 1
        found += result.pose2d is not None
        if exporter is not None:
            exporter.add(result)
        if view is not None:
            stats = pipeline.stats
            timings = {**result.timings, "render": render_ms}
            t_render: dict[str, float] = {}
            with profile("render", t_render):
                hud = format_hud(stats.fps, 1e3 * (time.monotonic() - result.frame.t_capture),
                                 timings, stats.dropped)
                view.update(overlay(result.frame.image, result.pose2d, hud), result.pose3d)
                if recorder is not None:
                    composite = view.render(out=composite)
                    recorder.write(composite)
            render_ms = t_render["render"]
            if view.shown:
                if pace:       # show a file at its own frame rate, keeping the window responsive
                    while time.monotonic() - t_start < result.frame.t_source and not view.should_close:
                        view.process_events()
                        time.sleep(0.002)
                view.process_events()
                if view.should_close:
                    break
        if args.max_frames is not None and frames >= args.max_frames:
            break
    stats = pipeline.stats
    elapsed = time.monotonic() - t_start
    outputs = [p for p in (args.record, args.export) if p]
    print(f"posits-live: {frames} frames in {elapsed:.1f} s ({frames / max(elapsed, 1e-9):.1f} fps), "
          f"person in {found}, {stats.dropped} dropped"
          + (f"; wrote {', '.join(outputs)}" if outputs else ""))
    if frames and not found:
        print(f"posits-live: warning: no person found in any of the {frames} frames", file=sys.stderr)
    if frames == 0:
        raise UserError(f"no frame could be read from {source.name}")
    return 0
