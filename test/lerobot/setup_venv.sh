#!/usr/bin/env bash
# Build a lerobot venv (its own, never the main one) to verify our exports:
#   test/lerobot/setup_venv.sh [0.4.4|0.6.1]     (default 0.4.4)
# 0.4.4 -> .venv-lerobot   (Python 3.11, torch 2.14.1 + torchvision 0.29.1, torchcodec 0.14)
# 0.6.1 -> .venv-lerobot06 (Python >= 3.12, torch 2.11.0 + torchvision 0.26.0, torchcodec 0.11;
#          lerobot 0.6.1 pins torch < 2.12, torchvision < 0.27, torchcodec < 0.12, numpy < 2.3)
# Recipe (issue 10): pip's resolver falls back to an old v2.1-only lerobot when torch is pinned,
# so install lerobot --no-deps and its dependencies by hand. torchcodec needs an FFmpeg (4-7):
# Debian's FFmpeg 5 libraries. VENV_LEROBOT and PYTHON override the venv path and interpreter.
set -euo pipefail
VERSION=${1:-0.4.4}
case "$VERSION" in
  0.4.4) VENV=${VENV_LEROBOT:-.venv-lerobot}; PYTHON=${PYTHON:-python3.11} ;;
  0.6.1) VENV=${VENV_LEROBOT:-.venv-lerobot06}
         # a pyenv shim named python3.12 may exist without a 3.12 selected: use one that runs
         if [ -z "${PYTHON:-}" ]; then
           PYTHON=/root/.pyenv/versions/3.12.1/bin/python3.12
           python3.12 -c '' 2>/dev/null && PYTHON=python3.12
         fi ;;
  *) echo "setup_venv: unknown lerobot version '$VERSION' (known: 0.4.4, 0.6.1)" >&2; exit 2 ;;
esac
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
# dependencies shared by both versions (their pyproject ranges agree on these)
COMMON=('einops>=0.8.0,<0.9.0' 'gymnasium>=1.1.1,<2.0.0' 'jsonlines>=4.0.0,<5.0.0' 'av>=15.0.0,<16.0.0'
  'packaging>=24.2,<26.0' 'termcolor>=2.4.0,<4.0.0' pytest)
case "$VERSION" in
  0.4.4)
    $PIP torch==2.14.1 torchvision==0.29.1
    $PIP torchcodec==0.14.*
    $PIP --no-deps lerobot==0.4.4
    # lerobot 0.4.4's own dependencies (pyproject), without torch/torchvision/torchcodec (above)
    $PIP "${COMMON[@]}" 'accelerate>=1.10.0,<2.0.0' 'datasets>=4.0.0,<5.0.0' 'diffusers>=0.27.2,<0.36.0' \
      'huggingface-hub[hf-transfer,cli]>=0.34.2,<0.36.0' 'setuptools>=71.0.0,<81.0.0' \
      'opencv-python-headless>=4.9.0,<4.13.0' 'pynput>=1.7.7,<1.9.0' 'pyserial>=3.5,<4.0' 'draccus==0.10.0' \
      'deepdiff>=7.0.1,<9.0.0' 'imageio[ffmpeg]>=2.34.0,<3.0.0' 'wandb>=0.24.0,<0.25.0'
    ;;
  0.6.1)
    $PIP torch==2.11.0 torchvision==0.26.0
    $PIP torchcodec==0.11.*
    $PIP --no-deps lerobot==0.6.1
    # lerobot 0.6.1's own dependencies (pyproject: core + [dataset] + [training]), without torch/torchvision/torchcodec
    $PIP "${COMMON[@]}" 'numpy>=2.0.0,<2.3.0' 'opencv-python-headless>=4.9.0,<4.14.0' 'Pillow>=10.0.0,<13.0.0' \
      'draccus>=0.11.6,<0.12.0' 'huggingface-hub>=1.6.0,<2.0.0' 'requests>=2.32.0,<3.0.0' \
      'safetensors>=0.4.3,<1.0.0' 'tqdm>=4.66.0,<5.0.0' 'cmake>=3.29.0.1,<4.2.0' 'setuptools>=71.0.0,<82.0.0' \
      'datasets>=4.8.0,<5.0.0' 'pandas>=2.0.0,<3.0.0' 'pyarrow>=21.0.0,<30.0.0' 'wandb>=0.24.0,<0.28.0' \
      'accelerate>=1.14.0,<2.0.0'
    ;;
esac
"$VENV/bin/python" -c "import lerobot, torch, torchcodec; print('setup_venv: lerobot', lerobot.__version__, 'torch', torch.__version__, 'torchcodec', torchcodec.__version__)"
touch "$STAMP"
