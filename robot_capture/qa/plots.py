"""Pictures of one episode for the QA report: camera thumbnails and matplotlib plots, as PNG bytes.

Thumbnails decode only ``n`` frames per camera (sensor_msgs/Image raw: rgb8, bgr8, mono8,
rgba8, bgra8; sensor_msgs/CompressedImage: JPEG/PNG via OpenCV). Plots: command vs
measured state of the arm joints, the IK wrist error over time (retarget diagnostics,
window maxima), and each stream's rate against its expected rate.
"""
from __future__ import annotations

import io
import struct

import numpy as np

from robot_capture.qa.checks_motion import joints, wrist_errors
from robot_capture.qa.checks_streams import _is_camera
from robot_capture.qa.context import EpisodeContext

__all__ = ["decode_image", "thumbnail_strip", "episode_figure"]

_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4, "8UC1": 1, "8UC3": 3}


def _string(b: bytes, p: int) -> tuple[str, int]:
    p += (-(p - 4)) % 4
    (n,) = struct.unpack_from("<I", b, p)
    return b[p + 4:p + 4 + n - 1].decode("utf-8", "replace"), p + 4 + n


def decode_image(type_name: str, b: bytes) -> np.ndarray | None:
    """An RGB uint8 image (h, w, 3) from Image or CompressedImage CDR bytes; None if not decodable."""
    import cv2

    try:
        _frame, p = _string(b, 12)
        if type_name.endswith("CompressedImage"):
            _fmt, p = _string(b, p)
            p += (-(p - 4)) % 4
            (n,) = struct.unpack_from("<I", b, p)
            img = cv2.imdecode(np.frombuffer(b, np.uint8, n, p + 4), cv2.IMREAD_COLOR)
            return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        p += (-(p - 4)) % 4
        h, w = struct.unpack_from("<II", b, p)
        enc, p = _string(b, p + 8)
        p += 1                              # is_bigendian
        p += (-(p - 4)) % 4
        (step,) = struct.unpack_from("<I", b, p)
        (n,) = struct.unpack_from("<I", b, p + 4)
        ch = _CHANNELS.get(enc)
        if ch is None or step < w * ch or n < h * step:
            return None
        img = np.frombuffer(b, np.uint8, h * step, p + 8).reshape(h, step)[:, :w * ch].reshape(h, w, ch)
        if ch == 1:
            return np.repeat(img, 3, axis=2)
        img = img[:, :, :3]
        return img[:, :, ::-1] if enc.startswith("bgr") else np.ascontiguousarray(img)
    except (struct.error, ValueError, IndexError):
        return None


def thumbnail_strip(ctx: EpisodeContext, topic: str, n: int = 6, height: int = 72) -> bytes | None:
    """PNG of ``n`` evenly spaced frames of camera ``topic`` side by side, ``height`` px tall."""
    import cv2

    count = ctx.data.count(topic)
    if not count:
        return None
    idx = sorted(set(np.linspace(0, count - 1, min(n, count)).round().astype(int).tolist()))
    frames = []
    if ctx.data.topics[topic] == "foxglove_msgs/msg/CompressedVideo":  # H.264: a frame needs those before it
        from robot_capture.video.decode import decode_frames

        want = set(idx)
        images = [img for k, (_s, img) in enumerate(decode_frames(ctx.data.payloads(topic))) if k in want]
    else:
        images = [decode_image(ctx.data.topics[topic], b) for b in ctx.data.payloads(topic, idx)]
    for img in images:
        if img is not None:
            w = max(1, int(img.shape[1] * height / img.shape[0]))
            frames.append(cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA))
    if not frames:
        return None
    gap = np.full((height, 3, 3), 255, np.uint8)
    strip = np.hstack([x for f in frames for x in (f, gap)][:-1])
    ok, png = cv2.imencode(".png", strip[:, :, ::-1])
    return png.tobytes() if ok else None


def cameras(ctx: EpisodeContext) -> list[str]:
    return sorted(t for t in ctx.data.topics if _is_camera(t) and ctx.data.count(t))


def episode_figure(ctx: EpisodeContext, max_joints: int = 4) -> bytes:
    """PNG: command vs measured state (arm joints), IK wrist error over time, stream rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(12, 2.6), dpi=72)
    cmd = joints(ctx, ctx.config.retarget.command_topic)
    state = joints(ctx, ctx.config.idle.robot_topic)
    a = ax[0]
    if cmd is not None:
        t, names, q = cmd
        arm = [i for i, n in enumerate(names) if any(k in n for k in ("shoulder_pitch", "elbow"))][:max_joints]
        arm = arm or list(range(min(max_joints, len(names))))
        for k, i in enumerate(arm):
            line, = a.plot((t - ctx.start_ns) / 1e9, q[:, i], lw=1.2, label=names[i].replace("_joint", ""))
            if state is not None and names[i] in state[1]:
                j = state[1].index(names[i])
                a.plot((state[0] - ctx.start_ns) / 1e9, state[2][:, j], lw=0.8, ls="--", color=line.get_color())
        a.legend(fontsize=6, loc="upper right")
    a.set_title("command (solid) vs measured (dashed), rad", fontsize=8)
    a.set_xlabel("s", fontsize=7)
    t, err, _outs, _fails = wrist_errors(ctx)
    a = ax[1]
    if len(t):
        a.plot((t - ctx.start_ns) / 1e9, err * 1e3, marker=".", lw=1)
        a.axhline(ctx.config.retarget.wrist_p95_warn_m * 1e3, color="orange", lw=0.8, ls=":")
    a.set_title("IK wrist error (window max), mm", fontsize=8)
    a.set_xlabel("s", fontsize=7)
    a = ax[2]
    rates = ctx.metrics.get("rates") or {}
    if not rates:  # no expected rates (a foreign bag): the measured sustained rates, Hz
        meas = {t: ctx.timing(t).rate_hz for t in sorted(ctx.data.topics) if ctx.data.count(t) >= 3}
        if meas:
            a.barh(range(len(meas)), list(meas.values()), color="tab:blue")
            a.set_yticks(range(len(meas)))
            a.set_yticklabels([n if len(n) < 28 else "..." + n[-25:] for n in meas], fontsize=6)
            a.set_xscale("log")
        a.set_title("measured rate, Hz (no expected rates)", fontsize=8)
    else:
        names = list(rates)
        ratio = [rates[k]["rate_hz"] / rates[k]["expected_hz"] for k in names]
        colors = ["tab:red" if r < ctx.config.rate.fail_below else "tab:orange" if r < ctx.config.rate.warn_below
                  else "tab:green" for r in ratio]
        a.barh(range(len(names)), ratio, color=colors)
        a.set_yticks(range(len(names)))
        a.set_yticklabels([n if len(n) < 28 else "..." + n[-25:] for n in names], fontsize=6)
        a.axvline(1.0, color="k", lw=0.6)
        a.set_xlim(0, max(1.3, max(ratio) * 1.05))
        a.set_title("rate / expected", fontsize=8)
    for a in ax:
        a.tick_params(labelsize=6)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
