"""Accuracy report on held-out real motion: the exported models side by side with baselines.

Every method sees the same test views (whole held-out clips x virtual cameras, detector-like
2D noise). The shipped path is measured exactly: the ONNX lifter and LSTM are run frame by
frame through posits.realtime.lift.PoseLifter, the code posits-live runs.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from posits.models import metrics
from posits.models.normalize import denormalize_3d, normalize_2d
from posits.models.skeleton import BODY_JOINTS, LANDMARK_NAMES
from .dataset import Dataset

log = logging.getLogger(__name__)

METHODS = ("mean pose", "2D at constant depth", "MLP baseline (1 frame)", "lifter (CNN)",
           "lifter + LSTM", "lifter + LSTM + bone lengths")
FINAL = "lifter + LSTM + bone lengths"      # what posits-live and lift_sequence run


def _scores(pred: np.ndarray, gt: np.ndarray) -> dict:
    return {"mpjpe_mm": metrics.mpjpe(pred, gt), "pa_mpjpe_mm": metrics.pa_mpjpe(pred, gt),
            "accel_mm": metrics.accel_error(pred, gt),
            "body_mpjpe_mm": float(metrics.per_joint_error(metrics.root_align(pred), metrics.root_align(gt))[..., list(BODY_JOINTS)].mean())}


def onnx_latency_ms(models_dir: Path, kp2d: np.ndarray, repeat: int = 3) -> dict:
    """Per-frame milliseconds of the ONNX lifter and LSTM step on one thread (best of ``repeat``)."""
    from posits.realtime.lift import PoseLifter
    from posits.realtime.types import Pose2D
    stage = PoseLifter(models_dir, use_lstm=True, threads=1, bones=False)
    best = {"lift": np.inf, "lstm": np.inf}
    for _ in range(repeat):
        stage.reset()
        acc = {"lift": 0.0, "lstm": 0.0}
        for f in kp2d:
            stage(Pose2D(keypoints=f))
            for k in acc:
                acc[k] += stage.timings[k]
        for k in acc:
            best[k] = min(best[k], acc[k] / len(kp2d))
    return {"lift_ms": best["lift"], "lstm_ms": best["lstm"], "total_ms": best["lift"] + best["lstm"]}


def _table(preds: dict, gts: list, clips: list, sel: list[int]) -> tuple[dict, dict]:
    """Frame-weighted scores per method over the views ``sel``, and per clip."""
    methods, per_clip = {}, {}
    weights = np.array([len(g) for g in gts], float)
    for method, p in preds.items():
        if not p:
            continue
        per_view = {i: _scores(p[i], gts[i]) for i in sel}
        keys = list(per_view[sel[0]])
        methods[method] = {k: float(np.average([per_view[i][k] for i in sel], weights=weights[sel]))
                           for k in keys}
        per_clip[method] = {}
        for clip in sorted({clips[i] for i in sel}):
            ci = [i for i in sel if clips[i] == clip]
            per_clip[method][clip] = {k: float(np.average([per_view[i][k] for i in ci], weights=weights[ci]))
                                      for k in keys}
    return methods, per_clip


def evaluate(data: Dataset, models_dir: Path, baseline=None) -> dict:
    """Scores per method, per test clip and per joint. ``baseline``: the Keras MLP (optional).
    The ONNX rows go through ``lift_sequence``, the code posits-live runs.

    The main table is over the views of real held-out motion that frame the whole body; views
    with a webcam close-up (``framing`` "close": head and upper body, the legs below the image)
    get their own table, ``close_up``, and so do the synthetic seated clips (``framing``
    "seated"), ``seated``."""
    from posits.realtime.lift import lift_sequence
    mean_pose = data.train_y.reshape(-1, 33, 3).mean(axis=0)
    xn = data.train_x.reshape(-1, 33, 3)[::7, :, :2]
    yn = data.train_y.reshape(-1, 33, 3)[::7, :, :2]
    depth_scale = float((xn * yn).sum() / (xn * xn).sum())          # 2D units -> metres
    preds: dict[str, list] = {m: [] for m in METHODS}
    gts, clips, framing = [], [], []
    # the 15 fps views are below the rate the LSTM keeps up from on purpose (they measure its lag):
    # lift_sequence's warning about that would repeat for each of them
    lift_log = logging.getLogger("posits.realtime.lift")
    level = lift_log.level
    lift_log.setLevel(logging.ERROR)
    try:
        for view in data.test:
            framing.append(view.get("framing", "full"))
            kp, gt = view["kp2d"], denormalize_3d(view["y3d"])
            x = normalize_2d(kp)
            gts.append(gt)
            clips.append(view["clip"])
            preds["mean pose"].append(np.repeat(mean_pose[None], len(kp), axis=0))
            flat = np.concatenate([x[..., :2] * depth_scale, np.zeros_like(x[..., :1])], axis=-1)
            preds["2D at constant depth"].append(flat)
            if baseline is not None:
                preds["MLP baseline (1 frame)"].append(
                    denormalize_3d(baseline.predict(x[:, None], verbose=0, batch_size=2048)))
            for method, lstm, bones in (("lifter (CNN)", False, False), ("lifter + LSTM", True, False),
                                        (FINAL, True, True)):
                preds[method].append(lift_sequence(kp, view["size"], fps=view.get("fps", 30.0),
                                                   models_dir=models_dir, use_lstm=lstm, bones=bones))
    finally:
        lift_log.setLevel(level)
    full = [i for i, f in enumerate(framing) if f == "full"]
    close = [i for i, f in enumerate(framing) if f == "close"]
    seated = [i for i, f in enumerate(framing) if f == "seated"]
    low_fps = [i for i, f in enumerate(framing) if f == "15fps"]
    report = {"methods": {}, "per_clip": {}, "per_joint_mpjpe_mm": {},
              "test_clips": sorted({clips[i] for i in full}),
              "test_views": len(full), "test_frames": int(sum(len(gts[i]) for i in full)),
              "note": "MPJPE root-aligned, PA-MPJPE Procrustes-aligned, over all 33 landmarks; "
                      "body_mpjpe over the 12 body joints; accel in mm/frame^2 at 30 fps"}
    report["methods"], report["per_clip"] = _table(preds, gts, clips, full)
    if close:
        methods, per_clip = _table({m: preds[m] for m in METHODS[3:]}, gts, clips, close)
        report["close_up"] = {"methods": methods, "per_clip": per_clip, "test_views": len(close),
                              "test_frames": int(sum(len(gts[i]) for i in close))}
    if seated:
        methods, _ = _table({m: preds[m] for m in METHODS[2:]}, gts, clips, seated)
        report["seated"] = {"methods": methods, "test_clips": len({clips[i] for i in seated}),
                            "test_views": len(seated), "test_frames": int(sum(len(gts[i]) for i in seated))}
    if low_fps:
        methods, _ = _table({m: preds[m] for m in METHODS[3:]}, gts, clips, low_fps)
        report["low_fps"] = {"methods": methods, "fps": data.test[low_fps[0]]["fps"],
                             "test_views": len(low_fps),
                             "test_frames": int(sum(len(gts[i]) for i in low_fps))}
    final = np.concatenate([preds[FINAL][i] for i in full])
    gt_all = np.concatenate([gts[i] for i in full])
    err = metrics.per_joint_error(metrics.root_align(final), metrics.root_align(gt_all)).mean(axis=0)
    report["per_joint_mpjpe_mm"] = {n: float(e) for n, e in zip(LANDMARK_NAMES, err)}
    report["onnx_latency"] = onnx_latency_ms(models_dir, data.test[0]["kp2d"][:300])
    lifter, full = report["methods"]["lifter (CNN)"], report["methods"]["lifter + LSTM"]
    report["accel_ratio_lstm_vs_lifter"] = full["accel_mm"] / max(lifter["accel_mm"], 1e-9)
    report["targets"] = targets(report)
    return report


#: The release targets on the held-out whole-body views: (measure, report value, at most).
TARGETS = (("lifter + LSTM PA-MPJPE mm", lambda r: r["methods"]["lifter + LSTM"]["pa_mpjpe_mm"], 45.0),
           ("lifter + LSTM MPJPE mm", lambda r: r["methods"]["lifter + LSTM"]["mpjpe_mm"], 70.0),
           ("accel error, lifter + LSTM / lifter", lambda r: r["accel_ratio_lstm_vs_lifter"], 1 / 3),
           ("ONNX Runtime lifter + LSTM step, 1 thread, ms", lambda r: r["onnx_latency"]["total_ms"], 0.2))


def targets(report: dict) -> list[dict]:
    """Each target: its value from the report, the bound (at most) and whether it is met."""
    out = []
    for measure, value, bound in TARGETS:
        v = float(value(report))
        out.append({"measure": measure, "value": v, "at_most": bound, "met": bool(v <= bound)})
    return out


def _markdown(methods: dict) -> list[str]:
    lines = ["| method | MPJPE mm | PA-MPJPE mm | body MPJPE mm | accel mm/frame² |",
             "|---|---:|---:|---:|---:|"]
    for method, s in methods.items():
        lines.append(f"| {method} | {s['mpjpe_mm']:.1f} | {s['pa_mpjpe_mm']:.1f} | "
                     f"{s['body_mpjpe_mm']:.1f} | {s['accel_mm']:.1f} |")
    return lines


#: The views reported in tables of their own, after the main one: report key, caption.
_SECTIONS = (
    ("close_up", lambda r: f"webcam close-up views (head and upper body, legs below the image; "
                           f"{r['test_views']} views, {r['test_frames']} frames)"),
    ("seated", lambda r: f"seated motion (synthetic, from a seed no training clip uses: no real held-out "
                         f"clip sits; {r['test_clips']} clips, {r['test_views']} views, half of them "
                         f"close-ups, {r['test_frames']} frames)"),
    ("low_fps", lambda r: f"the held-out clips seen at {r['fps']:g} fps (a webcam in dim light: the motion "
                          f"resampled, each frame its own detector noise; whole-body views; "
                          f"{r['test_views']} views, {r['test_frames']} frames; accel in mm/frame² at "
                          f"{r['fps']:g} fps)"),
)


def format_table(report: dict) -> str:
    """The report as Markdown tables (what `posits-train evaluate` prints)."""
    lines = _markdown(report["methods"])
    lat = report.get("onnx_latency", {})
    lines.append("")
    lines.append(f"held-out clips: {', '.join(report['test_clips'])} "
                 f"({report['test_views']} camera views, {report['test_frames']} frames)")
    if lat:
        lines.append(f"ONNX Runtime, 1 thread: lifter {lat['lift_ms']:.3f} ms + LSTM step "
                     f"{lat['lstm_ms']:.3f} ms = {lat['total_ms']:.3f} ms per frame")
    lines.append(f"accel error, lifter + LSTM vs lifter alone: x{report['accel_ratio_lstm_vs_lifter']:.2f}")
    lines.append("lifter and LSTM rows are the two ONNX models alone; the last row adds the run-time "
                 "bone-length filter (the default of posits-live and lift_sequence)")
    lines.append("")
    lines.append(f"per clip ({FINAL}): " + "; ".join(
        f"{c} PA {s['pa_mpjpe_mm']:.0f} / MPJPE {s['mpjpe_mm']:.0f}"
        for c, s in report["per_clip"][FINAL].items()))
    worst = sorted(report["per_joint_mpjpe_mm"].items(), key=lambda kv: -kv[1])[:5]
    lines.append("worst joints (MPJPE mm): " + ", ".join(f"{n} {e:.0f}" for n, e in worst))
    if report.get("targets"):
        lines += ["", "| target (whole-body views) | value | at most | met |", "|---|---:|---:|:---:|"]
        lines += [f"| {t['measure']} | {t['value']:.3g} | {t['at_most']:.3g} | {'yes' if t['met'] else '**no**'} |"
                  for t in report["targets"]]
    for key, caption in _SECTIONS:                  # the other views, a table each
        part = report.get(key)
        if part:
            lines += ["", caption(part) + ":", ""] + _markdown(part["methods"])
    return "\n".join(lines)


def write_report(report: dict, folder: Path, stem: str = "report") -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    js, md = folder / f"{stem}.json", folder / f"{stem}.md"
    js.write_text(json.dumps(report, indent=2) + "\n")
    md.write_text(format_table(report) + "\n")
    return js, md
