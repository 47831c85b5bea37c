"""Synthetic camera frames and Image CDR for the video tests (a moving gradient with a square)."""
from __future__ import annotations

import numpy as np

from robot_capture.video.msgdef import serialize_image


def frame(i: int, h: int = 240, w: int = 320) -> np.ndarray:
    """Frame ``i``: (h, w, 3) uint8 RGB, smooth content that moves 3 px a frame."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (x + 3 * i) % 256
    img[..., 1] = (y * 2) % 256
    img[..., 2] = 128
    s = (20 + 3 * i) % max(1, w - 40)
    img[h // 3:h // 3 + 30, s:s + 30] = (250, 40, 40)
    return img


def image_msg(i: int, h: int = 240, w: int = 320, encoding: str = "rgb8", fps: float = 30.0,
              t0_ns: int = 1_700_000_000_000_000_000) -> bytes:
    """Frame ``i`` as a sensor_msgs/Image CDR message stamped ``t0 + i / fps``."""
    img = frame(i, h, w)
    if encoding == "bgr8":
        img = img[..., ::-1]
    elif encoding == "mono8":
        img = img[..., 1]
    return serialize_image(t0_ns + int(i * 1e9 / fps), "head_optical", np.ascontiguousarray(img).tobytes(), h, w,
                           encoding)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
