"""VisPy view: the annotated video frame next to an orbitable 3D skeleton.

Design, measured on this 2-core llvmpipe machine (640x480 frame, 1280x480 composite, update +
render per frame):

(a) one SceneCanvas, two ViewBoxes (Image of the frame + 3D), VisPy's ``canvas.render()``:
    11-16 ms. ``canvas.render()`` allocates a framebuffer per call, and llvmpipe spends about
    8 ms sampling the 640x480 image quad.
(b) only the 3D panel rendered offscreen, composite by numpy hstack: about 5 ms, but a window
    would then have to fake the composite and forward mouse events to a hidden camera.
Chosen, a mix that keeps the best of both: the canvas holds both ViewBoxes, so the window IS the
composite and the TurntableCamera orbits natively with the mouse; :meth:`PoseView.render` draws
the same scene graph into a persistent framebuffer with the video ViewBox hidden, reads back the
3D half and pastes next to it the frame exactly as the Image visual shows it (fitted to the panel
on the CPU, drawn 1:1 with nearest sampling). About 4.3 ms headless (update 0.8 + render 3.5).
Under Xvfb the window's own picture and render() differed by 0.14/255 on average.

Backends: call :func:`select_backend` before any canvas exists (PoseView does it): "egl" renders
headless through EGL surfaceless (Mesa llvmpipe), "glfw" opens a real window. All methods must be
called from the one thread that created the view (the GUI thread); worker threads hand over
arrays only. The window has a fixed size so that it always shows exactly what render() records.
Keep TensorFlow out of a process that renders: see :func:`_avoid_llvm_clash`.

Coordinates: poses arrive root-relative in metres in camera axes (x right, y down, z away from the
camera). The display frame is the camera frame turned 180 degrees about x, i.e. (x, -y, -z): y is
up so the person stands upright, and the default viewpoint in front of the person (+z) sees them
the way the video does, turned a little to show depth.
"""
from __future__ import annotations

import logging
import os
import sys
import threading

import cv2
import numpy as np

from posits.models import skeleton
from posits.realtime import overlay
from posits.realtime.buffers import Buffers
from posits.realtime.types import Pose3D

log = logging.getLogger(__name__)

#: Camera axes -> display axes (x right, y up, z toward the viewer): a proper rotation.
CAMERA_TO_DISPLAY = np.diag([1.0, -1.0, -1.0]).astype(np.float32)

#: Background of both panels (RGB 0-255): the 3D scene and the letterbox around the frame.
BACKGROUND_RGB = (20, 20, 26)
GRID_COLOR = (0.45, 0.45, 0.45, 1.0)
GRID_HALF_SIZE_M = 1.0                    # the grid spans +-1 m around the hips
GRID_STEP_M = 0.25
AXES_LENGTH_M = 0.3
BONE_WIDTH_PX = 3.0
JOINT_SIZE_PX = 7.0
#: Smoothing of the floor height, which follows the lowest joint (0 = frozen, 1 = no smoothing).
FLOOR_FOLLOW = 0.2
DEFAULT_FLOOR_Y = -0.9                    # display y of the floor before the first pose (m)

#: Default viewpoint: azimuth 90 looks from +z (in front of the person); 30 degrees off shows depth.
CAMERA_AZIMUTH = 60.0
CAMERA_ELEVATION = 15.0
CAMERA_DISTANCE_M = 3.6
CAMERA_FOV = 40.0

_backend: str | None = None


def _display_available() -> tuple[bool, str]:
    """(True, "") if a window can be opened, else (False, reason)."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no DISPLAY or WAYLAND_DISPLAY is set"
    try:
        import glfw
    except ImportError as exc:  # glfw is a declared dependency, but be explicit
        return False, f"the glfw package is not importable ({exc})"
    errors: list[str] = []
    previous = glfw.set_error_callback(lambda code, msg: errors.append(
        msg.decode() if isinstance(msg, bytes) else str(msg)))
    try:
        ok = glfw.init()
    finally:
        glfw.set_error_callback(previous)
    if not ok:
        return False, "glfw could not initialise" + (f": {errors[-1]}" if errors else "")
    return True, ""


def _avoid_llvm_clash() -> None:
    """Switch Mesa from llvmpipe to softpipe when TensorFlow is loaded in this process.

    TensorFlow bundles its own LLVM and exports its symbols; with it loaded, Mesa's llvmpipe
    (libLLVM-15) segfaults in its first draw call, and merely loading libLLVM makes the process
    abort with "free(): invalid pointer" at exit (tensorflow-cpu 2.21, Debian Mesa). mediapipe
    imports TensorFlow whenever it is installed (only for documentation decorators), so a dev
    install with the [train] extra hits this; the runtime install does not. softpipe renders
    correctly (about 20 ms instead of 4) but the exit abort remains: keep TensorFlow out of the
    live process. An explicit GALLIUM_DRIVER is respected.
    """
    if "tensorflow" in sys.modules and "GALLIUM_DRIVER" not in os.environ:
        log.warning("TensorFlow is loaded in this process: Mesa's llvmpipe would crash, so "
                    "rendering uses the slower softpipe driver, and the process may still abort "
                    "at exit. Keep TensorFlow out of the live process.")
        os.environ["GALLIUM_DRIVER"] = "softpipe"


def _rasterize_on_calling_thread() -> None:
    """Have Mesa's llvmpipe rasterize on the thread that draws, not on its own worker threads.

    With llvmpipe's default worker threads (one per core), a 10-minute render+record run grew
    about 0.7 MB per 1000 frames: glibc fragments its per-thread heaps when buffers are
    allocated on one thread and freed on another. With LP_NUM_THREADS=0 the same run held its
    resident memory flat at the same frame rate (the 3D panel is small; the draw is not the
    bottleneck). Only software rendering (llvmpipe) reads this variable; a GPU driver ignores it.
    A value the user set is respected. It must be set before the GL context is created.
    """
    os.environ.setdefault("LP_NUM_THREADS", "0")


def select_backend(headless: bool) -> str:
    """Choose and activate VisPy's app backend; returns "egl" (headless) or "glfw" (window).

    Must run before any canvas is created. A window request falls back to "egl" with a logged
    reason when no display is available. Once chosen, the backend stays for the process: a later
    call returns the backend already in use.
    """
    global _backend
    if _backend is not None:
        if (_backend == "egl") != headless:
            log.warning("VisPy backend is already %r for this process; keeping it", _backend)
        return _backend
    import vispy

    _avoid_llvm_clash()
    _rasterize_on_calling_thread()
    if not headless:
        ok, reason = _display_available()
        if ok:
            vispy.use(app="glfw")
            _backend = "glfw"
            return _backend
        log.warning("cannot open a window (%s); rendering headless with EGL instead", reason)
    os.environ.setdefault("EGL_PLATFORM", "surfaceless")
    vispy.use(app="egl")
    _backend = "egl"
    return _backend


def to_display(xyz: np.ndarray) -> np.ndarray:
    """Camera-axes points (..., 3) (x right, y down, z away) -> display axes (x right, y up,
    z toward the viewer), float32."""
    return (np.asarray(xyz, dtype=np.float32) @ CAMERA_TO_DISPLAY.T).astype(np.float32)


def _rgba(bgr: tuple[int, int, int]) -> tuple[float, float, float, float]:
    b, g, r = bgr
    return (r / 255.0, g / 255.0, b / 255.0, 1.0)


def _grid_segments(half: float = GRID_HALF_SIZE_M, step: float = GRID_STEP_M) -> np.ndarray:
    """Line segments of a square grid in the y=0 plane: (2 * 2 * n, 3) float32."""
    ticks = np.arange(-half, half + 1e-6, step, dtype=np.float32)
    segs = []
    for t in ticks:
        segs += [(t, 0.0, -half), (t, 0.0, half), (-half, 0.0, t), (half, 0.0, t)]
    return np.asarray(segs, dtype=np.float32)


def example_pose() -> Pose3D:
    """A hand-written standing pose facing the camera (root-relative metres, camera axes):
    for demos and tests. Subject's left is +x, feet about 0.9 m below the hips."""
    left = {
        "nose": (0.0, -0.62, -0.10),
        "left_eye_inner": (0.015, -0.66, -0.08), "left_eye": (0.03, -0.66, -0.08),
        "left_eye_outer": (0.045, -0.66, -0.075), "left_ear": (0.075, -0.64, 0.0),
        "mouth_left": (0.025, -0.58, -0.09),
        "left_shoulder": (0.18, -0.50, 0.0), "left_elbow": (0.22, -0.22, 0.02),
        "left_wrist": (0.24, 0.03, 0.0), "left_pinky": (0.25, 0.10, 0.0),
        "left_index": (0.24, 0.11, -0.02), "left_thumb": (0.22, 0.08, -0.03),
        "left_hip": (0.10, 0.0, 0.0), "left_knee": (0.11, 0.43, -0.02),
        "left_ankle": (0.11, 0.85, 0.02), "left_heel": (0.11, 0.90, 0.06),
        "left_foot_index": (0.12, 0.92, -0.10),
    }
    xyz = np.zeros((skeleton.NUM_LANDMARKS, 3), dtype=np.float32)
    for i, name in enumerate(skeleton.LANDMARK_NAMES):
        if name in left:
            xyz[i] = left[name]
        else:  # right side: mirror of the left in x
            x, y, z = left[name.replace("right", "left")]
            xyz[i] = (-x, y, z)
    return Pose3D(xyz)


class _Skeleton3D:
    """The 3D skeleton visuals (bones, joints) and the floor grid + axes under them."""

    def __init__(self, scene, parent):
        self._bones = np.asarray(skeleton.BONES, dtype=np.int64)          # (B, 2)
        self._bone_rgba = np.repeat(np.array([_rgba(c) for c in overlay.BONE_COLORS],
                                             dtype=np.float32), 2, axis=0)  # (2B, 4)
        self._joint_rgba = np.array([_rgba(c) for c in overlay.JOINT_COLORS], dtype=np.float32)
        self.floor_y = DEFAULT_FLOOR_Y
        self._floor = scene.Node(parent=parent)
        scene.Line(_grid_segments(), connect="segments", color=GRID_COLOR, parent=self._floor)
        corner = -GRID_HALF_SIZE_M
        axes = scene.XYZAxis(parent=self._floor, width=2)
        axes.transform = scene.STTransform(scale=(AXES_LENGTH_M,) * 3,
                                           translate=(corner, 0.0, corner))
        self._floor.transform = scene.STTransform(translate=(0.0, self.floor_y, 0.0))
        self.lines = scene.Line(connect="segments", width=BONE_WIDTH_PX, parent=parent,
                                antialias=False)
        self.joints = scene.Markers(parent=parent)
        self.lines.visible = self.joints.visible = False

    def set_pose(self, pose3d: Pose3D | None) -> None:
        """Show `pose3d` (None hides bones and joints; grid and axes stay)."""
        if pose3d is None:
            self.lines.visible = self.joints.visible = False
            return
        pts = to_display(pose3d.xyz)                                       # (33, 3)
        finite = np.all(np.isfinite(pts), axis=1)
        keep = finite[self._bones].all(axis=1)
        if not keep.any():
            self.lines.visible = self.joints.visible = False
            return
        seg_idx = self._bones[keep].ravel()
        seg_rgba = self._bone_rgba.reshape(-1, 2, 4)[keep].reshape(-1, 4)
        self.lines.set_data(pos=pts[seg_idx], color=seg_rgba)
        self.joints.set_data(pos=pts[finite], face_color=self._joint_rgba[finite],
                             edge_color=(0.0, 0.0, 0.0, 1.0), size=JOINT_SIZE_PX, edge_width=1.0)
        self.lines.visible = self.joints.visible = True
        lowest = float(pts[finite, 1].min())
        self.floor_y += FLOOR_FOLLOW * (lowest - self.floor_y)
        self._floor.transform.translate = (0.0, self.floor_y, 0.0)


class PoseView:
    """Annotated video frame (left half) + 3D skeleton (right half) in one VisPy canvas.

    size: (width, height) of the whole composite in pixels; each panel is (width // 2, height).
    show: open a window (glfw) if a display is available; otherwise render headless (EGL).

    Usage (GUI thread)::

        with PoseView((1280, 480), show=True) as view:
            while not view.should_close:
                view.update(annotated_bgr, pose3d)
                recorder.write(view.render())   # (480, 1280, 3) uint8 BGR
                view.process_events()
    """

    def __init__(self, size: tuple[int, int] = (1280, 480), show: bool = False):
        width, height = int(size[0]), int(size[1])
        if width < 4 or height < 2:
            raise ValueError(f"PoseView size must be at least (4, 2), got {size}")
        self.backend = select_backend(headless=not show)
        self.shown = self.backend != "egl"
        from vispy import app, gloo, scene  # after the backend is chosen

        self._app, self._gloo = app, gloo
        self._thread = threading.get_ident()
        self._should_close = False
        self._closed = False
        self.canvas = scene.SceneCanvas(size=(width, height), show=self.shown,
                                        title="posits", keys=None, resizable=False,
                                        bgcolor=tuple(c / 255.0 for c in BACKGROUND_RGB))
        grid = self.canvas.central_widget.add_grid(spacing=0)
        # No ViewBox background: filling the panels costs milliseconds on llvmpipe, and the
        # canvas clear colour already paints both.
        self._video_box = grid.add_view(row=0, col=0)
        self._box3d = grid.add_view(row=0, col=1)

        self._panel_size = (width // 2, height)   # video panel (w, h); the frame is fitted in it
        self._image_shape: tuple[int, int] | None = None
        self._panel_bgr = np.empty((height, width // 2, 3), np.uint8)  # video panel as rendered
        self._panel_bgr[:] = BACKGROUND_RGB[::-1]
        self._buffers = Buffers()
        self._image = scene.Image(np.zeros((2, 2, 3), np.uint8), parent=self._video_box.scene,
                                  interpolation="nearest", texture_format="auto",
                                  clim=(0, 255))
        self._video_box.camera = scene.PanZoomCamera(aspect=1, flip=(False, True))
        self._video_box.camera.interactive = False

        self._box3d.camera = scene.TurntableCamera(
            up="+y", fov=CAMERA_FOV, distance=CAMERA_DISTANCE_M, azimuth=CAMERA_AZIMUTH,
            elevation=CAMERA_ELEVATION, center=(0.0, 0.0, 0.0))
        self._skeleton = _Skeleton3D(scene, self._box3d.scene)

        self._fbo = None
        self.canvas.events.key_press.connect(self._on_key)
        self.canvas.events.close.connect(self._on_close)
        log.info("PoseView %dx%d on VisPy backend %s%s", width, height, self.backend,
                 " (window)" if self.shown else " (headless)")

    # -- events -----------------------------------------------------------------------------
    def _on_key(self, event) -> None:
        if event.key is not None and event.key.name in ("Escape", "Q"):
            self._should_close = True

    def _on_close(self, event) -> None:
        self._should_close = True

    @property
    def should_close(self) -> bool:
        """True once the window was closed or q/Esc was pressed (never set when headless)."""
        return self._should_close

    def process_events(self) -> None:
        """Run pending GUI events (mouse orbit, keys, redraws). Call once per loop iteration."""
        self._check_thread()
        self._app.process_events()

    # -- data -------------------------------------------------------------------------------
    def update(self, image_bgr: np.ndarray, pose3d: Pose3D | None) -> None:
        """Show a new frame: image_bgr (H, W, 3) uint8 BGR (already annotated) and the 3D pose
        (None hides the skeleton). Only uploads data; drawing happens in render()/the window."""
        self._check_thread()
        image_bgr = np.asarray(image_bgr)
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ValueError(f"PoseView.update expects (H, W, 3) uint8 BGR, got "
                             f"{image_bgr.shape} {image_bgr.dtype}")
        self._set_image(image_bgr)
        self._skeleton.set_pose(pose3d)
        if self.shown:
            self.canvas.update()

    def _set_image(self, image_bgr: np.ndarray) -> None:
        """Fit the frame into the video panel on the CPU (a small texture uploads and samples
        faster on llvmpipe), upload it as RGB, and lock the 2D camera to it."""
        panel_w, panel_h = self._panel_size
        h, w = image_bgr.shape[:2]
        fit = min(panel_w / w, panel_h / h)
        if abs(fit - 1.0) > 1e-3:
            new = (max(1, round(w * fit)), max(1, round(h * fit)))
            # INTER_LINEAR: 0.3 ms for 1768x994 -> 640x360, INTER_AREA took 4 ms.
            image_bgr = cv2.resize(image_bgr, new, dst=self._buffers.get("fit", (new[1], new[0], 3)),
                                   interpolation=cv2.INTER_LINEAR)
        shape = image_bgr.shape[:2]
        # The Image visual keeps (does not copy) the array it is given and uploads it when it
        # draws next; each frame is converted into the same buffer before set_data.
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB, dst=self._buffers.get("rgb", image_bgr.shape))
        self._image.set_data(rgb)
        if shape != self._image_shape:
            self._image_shape = shape
            self._video_box.camera.set_range(x=(0, shape[1]), y=(0, shape[0]), margin=0)
            self._panel_bgr[:] = BACKGROUND_RGB[::-1]
        # The PanZoom camera centres the frame in the panel: do the same for render().
        top, left = (panel_h - shape[0]) // 2, (panel_w - shape[1]) // 2
        self._panel_bgr[top:top + shape[0], left:left + shape[1]] = image_bgr

    # -- output -----------------------------------------------------------------------------
    def render(self, out: np.ndarray | None = None) -> np.ndarray:
        """Draw the composite offscreen: (H, W, 3) uint8 BGR, the picture the window shows.

        Only the 3D panel goes through OpenGL; the video panel is the already fitted frame
        pasted in numpy, pixel for pixel what the Image visual shows at 1:1 scale.
        ``out``: an (H, W, 3) uint8 array to draw into and return (the live loop passes the
        same one every frame); by default a new array.
        """
        self._check_thread()
        canvas, gloo = self.canvas, self._gloo
        canvas.set_current()
        width, height = canvas.size
        x0 = self._panel_size[0]
        if self._fbo is None or self._fbo.color_buffer.shape[:2] != (height, width):
            self._fbo = gloo.FrameBuffer(color=gloo.RenderBuffer((height, width, 4)),
                                         depth=gloo.RenderBuffer((height, width)))
        # Draw the whole canvas layout without the video panel, read back the 3D half only.
        # (An FBO covering only the 3D region would be cheaper, but VisPy's ViewBox viewport
        # clipping ignores the FBO offset and draws nothing there.)
        canvas.push_fbo(self._fbo, (0, 0), (width, height))
        self._video_box.visible = False
        try:
            canvas.context.clear(color=canvas.bgcolor, depth=True)
            canvas.draw_visual(canvas.scene)
            rgba = self._fbo.read(mode="color", alpha=True, crop=(x0, 0, width - x0, height))
        finally:
            self._video_box.visible = True
            canvas.pop_fbo()
        if out is None or out.shape != (height, width, 3) or out.dtype != np.uint8:
            out = np.empty((height, width, 3), np.uint8)
        out[:, :x0] = self._panel_bgr
        cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGR, dst=out[:, x0:])
        return out

    def close(self) -> None:
        """Close the window / release the GL context. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._should_close = True
        self.canvas.close()

    def __enter__(self) -> PoseView:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_thread(self) -> None:
        if threading.get_ident() != self._thread:
            raise RuntimeError("PoseView must be used from the thread that created it "
                               "(the GUI thread)")


def main(argv: list[str] | None = None) -> int:
    """Manual check: `python -m posits.realtime.view3d [--headless] [--out PNG]` shows the
    example pose turning on a grey frame until q/Esc or the window is closed."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--headless", action="store_true", help="render offscreen only")
    parser.add_argument("--out", help="write one rendered composite to this PNG")
    parser.add_argument("--seconds", type=float, default=10.0, help="(float) how long to run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    frame = np.full((480, 640, 3), 90, np.uint8)
    base = example_pose().xyz
    with PoseView((1280, 480), show=not args.headless) as view:
        start = time.monotonic()
        while not view.should_close and time.monotonic() - start < args.seconds:
            t = time.monotonic() - start
            c, s = np.cos(t), np.sin(t)
            rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)
            view.update(frame, Pose3D((base @ rot.T).astype(np.float32)))
            image = view.render()
            if args.out:
                cv2.imwrite(args.out, image)
                break
            view.process_events()
            time.sleep(1 / 60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
