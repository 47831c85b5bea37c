#!/usr/bin/env bash
# Build .venv-lerobot: lerobot 0.4.4 (its own venv, never the main one) to verify our exports.
# Recipe (issue 10): pip's resolver falls back to an old v2.1-only lerobot when torch is pinned,
# so install lerobot --no-deps and its dependencies by hand; torch 2.14.1 + torchvision 0.29.1
# come from this machine's wheel cache; torchcodec 0.14 needs Debian's FFmpeg 5 libraries.
set -euo pipefail
VENV=${VENV_LEROBOT:-.venv-lerobot}
PYTHON=${PYTHON:-python3.11}
STAMP=$VENV/.lerobot-installed
[ -f "$STAMP" ] && exit 0
if ! ldconfig -p | grep -q 'libavcodec.so.59'; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 libavfilter8
  else
    echo "setup_venv: torchcodec needs Debian's FFmpeg libraries: apt-get install libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 libavfilter8" >&2
    exit 1
  fi
fi
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/pip install --quiet"
$PIP --upgrade pip
$PIP torch==2.14.1 torchvision==0.29.1
$PIP torchcodec==0.14.*
$PIP --no-deps lerobot==0.4.4
# lerobot 0.4.4's own dependencies (pyproject), without torch/torchvision/torchcodec (above)
$PIP 'datasets>=4.0.0,<5.0.0' 'diffusers>=0.27.2,<0.36.0' 'huggingface-hub[hf-transfer,cli]>=0.34.2,<0.36.0' \
  'accelerate>=1.10.0,<2.0.0' 'setuptools>=71.0.0,<81.0.0' 'einops>=0.8.0,<0.9.0' \
  'opencv-python-headless>=4.9.0,<4.13.0' 'av>=15.0.0,<16.0.0' 'jsonlines>=4.0.0,<5.0.0' \
  'packaging>=24.2,<26.0' 'pynput>=1.7.7,<1.9.0' 'pyserial>=3.5,<4.0' 'draccus==0.10.0' \
  'gymnasium>=1.1.1,<2.0.0' 'deepdiff>=7.0.1,<9.0.0' 'imageio[ffmpeg]>=2.34.0,<3.0.0' \
  'termcolor>=2.4.0,<4.0.0' 'wandb>=0.24.0,<0.25.0' pytest
touch "$STAMP"
