#!/usr/bin/env bash
# Install posits into ./.venv (created if missing), with the system libraries it needs.
#
#   bash scripts/install.sh        # runtime: posits-live (wheel install of this checkout)
#   bash scripts/install.sh dev    # + training extra and test tools, editable install
#
# System packages (Debian/Ubuntu, installed with apt-get when run as root or with sudo):
#   libgl1 libglib2.0-0            OpenCV as pulled in by mediapipe
#   libegl1 libegl-mesa0 libgl1-mesa-dri   offscreen 3D rendering (EGL, Mesa llvmpipe)
#   python3-venv                   only if this Python cannot create a venv
#   xvfb                           dev only: the tests open a real window on a virtual display
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-runtime}"
PY="${PYTHON:-python3}"

pkgs="libgl1 libglib2.0-0 libegl1 libegl-mesa0 libgl1-mesa-dri"
if ! "$PY" -c "import venv, ensurepip" >/dev/null 2>&1; then pkgs="$pkgs python3-venv"; fi
if [ "$mode" = dev ]; then pkgs="$pkgs xvfb"; fi
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "install.sh: installing system packages:$missing"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
case "$mode" in
  runtime) .venv/bin/python -m pip install -q . ;;
  dev)     .venv/bin/python -m pip install -q -e ".[train,dev]" ;;
  *) echo "install.sh: unknown mode '$mode' (use: runtime | dev)" >&2; exit 2 ;;
esac
echo "install.sh: posits installed in .venv ($mode). Activate with: source .venv/bin/activate"
