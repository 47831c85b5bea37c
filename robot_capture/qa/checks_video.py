"""Video checks: what each camera's pictures show, on a decoded sample of frames.

Checks (``check(ctx) -> list[Finding]``, thresholds in ``config/qa.yaml`` ``video:`` with their
sources; units: s, rad, 8-bit luma levels 0..255):

* ``decode``: frames that do not decode. Every frame gets the structure check of
  :func:`robot_capture.qa.frames.structure_problem` (a raw frame whose data length is wrong for
  its encoding, a truncated JPEG/PNG); the sampled frames are decoded in full. ``video.decode_fail_frames``
  (1) or more bad frames fail: the exporter cannot convert such a frame (``export/video.message_rgb``).
* ``exposure``: stretches of black (every pixel but ``1 - flat_fraction`` at or below ``dark_luma``)
  or overexposed (at or above ``bright_luma``) frames.
* ``frozen``: stretches of sampled frames pixel-identical to the sample before them while the
  robot moved between the two (any joint of ``sync.state_topic`` by ``motion_rad`` or more). A
  real sensor's noise never repeats a frame exactly; a driver that resends its last buffer does.
  A bag without ``sync.state_topic`` joint states is not judged for ``frozen`` or ``static``.
* ``blur``: stretches of frames whose variance of the Laplacian (Pech-Pacheco et al., 2000,
  "Diatom autofocusing in brightfield microscopy") is under ``blur_fraction`` of the camera's
  own median over the episode (scenes differ: an absolute threshold fits one camera only).
* ``static``: a camera whose content does not change over the episode while the robot's joints
  move by ``static_motion_rad`` or more: the largest change between any sampled frame and the
  first, as the 99th percentile of |difference| of 8x8-pixel block means (block means average
  sensor noise away), stays under ``static_change_luma``. Warns (a camera may look where nothing
  moves); a camera whose samples are all identical is ``frozen``'s, not this check's.

Frames wider than :data:`JUDGE_WIDTH` (320 px) are judged reduced by an integer factor
(:func:`robot_capture.qa.frames.sampled_frames`; a block mean keeps a black frame black and two
noisy frames different). A stretch is a run of
consecutive flagged samples; its length runs from its first sample to one
sample interval after its last (pairs for ``frozen``: from the first sample of the first pair).
``video.stretch_warn_s`` or longer warns, ``video.stretch_fail_s`` or longer fails (``blur``:
``blur_fail_s``). Each frame is judged by one check only: a frame that does not decode by
``decode``, a black or overexposed frame by ``exposure`` (its Laplacian is ~0 and it repeats), so one
defect is one finding. Cameras: topics of a type with a frame decoder
(:data:`robot_capture.qa.frames.DECODERS`), except ``video.exclude``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from robot_capture.episodes import Finding
from robot_capture.qa import frames as F
from robot_capture.qa.context import EpisodeContext

__all__ = ["decode", "exposure", "frozen", "blur", "static", "CHECKS", "camera_topics", "camera_sample", "JUDGE_WIDTH"]

#: pictures wider than this are judged reduced by an integer factor (raw: area average; JPEG: the
#: DCT-domain 1/2, 1/4, 1/8 decode): a 640x480 frame at 320x240, a quarter of the pixel work; a
#: defocus of sigma 2 px is still sigma 1
JUDGE_WIDTH = 320


@dataclass
class CameraSample:
    """One camera's sampled frames and the figures the checks judge (index k = k-th sample)."""

    topic: str
    count: int                       # frames in the bag
    t_s: np.ndarray                  # receive time of each sample, s from the episode start
    interval_s: float                # median interval between samples
    bad: list = field(default_factory=list)   # [(frame index, t_s, problem)] over ALL frames (structure + decode)
    ok: np.ndarray = None            # decoded
    black: np.ndarray = None
    bright: np.ndarray = None
    same: np.ndarray = None          # pixel-identical to the previous sample (k >= 1)
    moved_rad: np.ndarray = None     # largest joint motion since the previous sample (NaN: no joint data)
    lapvar: np.ndarray = None
    change: np.ndarray = None        # p99 |8x8 block means - first good sample's|
    motion_range_rad: float = float("nan")
    unsupported: bool = False        # an encoding whose pictures are not judged (depth, 16-bit)


def camera_topics(ctx: EpisodeContext) -> list[str]:
    """Topics with frames the QA can decode, sorted, minus ``video.exclude``."""
    return sorted(t for t, typ in ctx.data.topics.items()
                  if typ in F.DECODERS and ctx.data.count(t) and t not in ctx.config.video.exclude)


def _motion(ctx: EpisodeContext):
    from robot_capture.qa.checks_motion import joints

    return joints(ctx, ctx.config.sync.state_topic)


def camera_sample(ctx: EpisodeContext, topic: str) -> CameraSample:
    """The sample of ``topic`` (decoded once per episode, cached on the context)."""
    key = ("video", topic)
    if key in ctx._timing:
        return ctx._timing[key]
    import cv2

    c = ctx.config.video
    n = ctx.data.count(topic)
    log = ctx.data.log_times(topic)
    rate = ctx.timing(topic).rate_hz
    idx = F.sample_indices(n, rate, c.sample_hz)
    s = CameraSample(topic, n, (log[idx] - ctx.start_ns) / 1e9, 0.0)
    s.interval_s = float(np.median(np.diff(s.t_s))) if len(idx) > 1 else (1.0 / rate if rate > 0 else 0.0)
    typ = ctx.data.topics[topic]
    for i, (head, size) in enumerate(ctx.data.heads(topic, 160)):
        problem = F.structure_problem(typ, head, size, lambda i=i: ctx.data.payloads(topic, [i])[0])
        if problem:
            s.bad.append((i, (int(log[i]) - ctx.start_ns) / 1e9, problem))
    structural = {b[0] for b in s.bad}
    m = len(idx)
    s.ok, s.black, s.bright, s.same = (np.zeros(m, bool) for _ in range(4))
    s.lapvar, s.change, s.moved_rad = (np.full(m, np.nan) for _ in range(3))
    prev = ref = None
    full_width = None
    for k, fr in enumerate(F.sampled_frames(ctx.data, topic, idx, log, JUDGE_WIDTH)):
        if fr.luma is None:
            if fr.unsupported:
                s.unsupported = True
                continue
            if fr.index not in structural:
                s.bad.append((fr.index, float(s.t_s[k]), fr.error))
            prev = None
            continue
        y = fr.luma
        if full_width is None:
            full_width = _full_width(ctx, topic, fr.index, y.shape[1])
        f = max(1, full_width // max(y.shape[1], 1))  # the decoder's reduction
        s.ok[k] = True
        # a mean above flat_fraction * dark_luma + (1 - flat_fraction) * 255 cannot be a black frame
        # (and one below flat_fraction * bright_luma cannot be overexposed): count pixels only then
        mean = cv2.mean(y)[0]
        if mean <= c.flat_fraction * c.dark_luma + (1 - c.flat_fraction) * 255:
            s.black[k] = np.count_nonzero(y <= c.dark_luma) >= c.flat_fraction * y.size
        if mean >= c.flat_fraction * c.bright_luma:
            s.bright[k] = np.count_nonzero(y >= c.bright_luma) >= c.flat_fraction * y.size
        s.same[k] = prev is not None and prev.shape == y.shape and np.array_equal(prev, y)
        prev = y
        if s.black[k] or s.bright[k]:
            continue
        s.lapvar[k] = float(cv2.meanStdDev(cv2.Laplacian(y, cv2.CV_16S))[1][0, 0] ** 2)
        b = max(1, 8 // max(f, 1))  # 8x8 blocks of the full frame
        if y.shape[0] >= b and y.shape[1] >= b:
            blocks = cv2.resize(y[:(y.shape[0] // b) * b, :(y.shape[1] // b) * b], (y.shape[1] // b, y.shape[0] // b),
                                interpolation=cv2.INTER_AREA).astype(np.float32)
            if ref is None or ref.shape != blocks.shape:
                ref = blocks
            s.change[k] = float(np.percentile(np.abs(blocks - ref), 99))
    s.bad.sort()
    js = _motion(ctx)
    if js is not None and len(js[0]) >= 2:
        t_j, _names, q = js
        tj = (t_j - ctx.start_ns) / 1e9
        finite = np.where(np.isfinite(q), q, np.nan)
        with warnings.catch_warnings():  # a joint that is NaN all along (flagged by the retarget check)
            warnings.simplefilter("ignore", RuntimeWarning)
            s.motion_range_rad = float(np.nanmax(np.nanmax(finite, axis=0) - np.nanmin(finite, axis=0)))
            at = np.clip(np.searchsorted(tj, s.t_s), 0, len(tj) - 1)
            for k in range(1, m):
                seg = finite[at[k - 1]:at[k] + 1]
                if len(seg) >= 2:
                    s.moved_rad[k] = float(np.nanmax(np.abs(seg - seg[0])))
    ctx._timing[key] = s
    return s


def _full_width(ctx, topic: str, index: int, reduced: int) -> int:
    """The frame's width before the decoder's reduction (raw: from its header; else decoded once)."""
    b = ctx.data.payloads(topic, [index])[0]
    try:
        if ctx.data.topics[topic] == "sensor_msgs/msg/Image":
            return F._raw_fields(b)[1]
        return F.DECODERS[ctx.data.topics[topic]].factory(0)(b).shape[1]
    except Exception:  # noqa: BLE001 - a codec's own error: judged at the reduced size
        return reduced


def _stretches(flags: np.ndarray, t_s: np.ndarray, interval_s: float, pairs: bool = False) -> list[tuple[float, float, int]]:
    """``[(start s, length s, samples)]`` of runs of True in ``flags``."""
    out = []
    k, m = 0, len(flags)
    while k < m:
        if not flags[k]:
            k += 1
            continue
        j = k
        while j + 1 < m and flags[j + 1]:
            j += 1
        start = t_s[k - 1] if pairs and k >= 1 else t_s[k]
        end = t_s[j] if pairs else t_s[j] + interval_s
        out.append((float(start), float(end - start), j - k + 1))
        k = j + 1
    return out


def _stretch_findings(ctx, check: str, topic: str, what: str, runs, fail_s: float) -> list[Finding]:
    c = ctx.config.video
    if not runs:
        return []
    longest = max(runs, key=lambda r: r[1])
    total = sum(r[1] for r in runs)
    if longest[1] < c.stretch_warn_s - 1e-9:
        return []
    sev = "fail" if longest[1] >= fail_s - 1e-9 else "warn"
    return [Finding(check, sev, f"{ctx.name(topic)}: {what} for {total:.1f} s in {len(runs)} stretch"
                    f"{'es' if len(runs) > 1 else ''}, longest {longest[1]:.1f} s at {longest[0]:.1f} s", topic,
                    {"seconds": round(total, 3), "stretches": len(runs), "longest_s": round(longest[1], 3),
                     "at_s": round(longest[0], 3)})]


def decode(ctx: EpisodeContext) -> list[Finding]:
    """Frames that do not decode (structure of every frame, full decode of the sample)."""
    out, figs = [], {}
    for topic in camera_topics(ctx):
        s = camera_sample(ctx, topic)
        figs[topic] = {"frames": s.count, "sampled": int(len(s.t_s)), "bad": len(s.bad)}
        if s.unsupported:
            figs[topic]["pictures"] = "not judged (encoding)"
        if not s.bad:
            continue
        first = s.bad[0]
        sev = "fail" if len(s.bad) >= ctx.config.video.decode_fail_frames else "warn"
        out.append(Finding("decode", sev, f"{ctx.name(topic)}: {len(s.bad)} frame{'s' if len(s.bad) > 1 else ''} "
                           f"do not decode, first at {first[1]:.1f} s (frame {first[0]}: {first[2]})", topic,
                           {"bad_frames": len(s.bad), "first_frame": first[0], "at_s": round(first[1], 3),
                            "problem": first[2]}))
    for topic, typ in sorted(ctx.data.topics.items()):  # a camera codec without a frame decoder: said, not judged
        if topic not in figs and ctx.data.count(topic) and typ not in F.DECODERS and \
                typ.rsplit("/", 1)[-1] in ("CompressedVideo", "Image", "CompressedImage"):
            figs[topic] = {"frames": ctx.data.count(topic), "pictures": f"not judged (no frame decoder for {typ})"}
    ctx.metrics["video"] = figs
    return out


def exposure(ctx: EpisodeContext) -> list[Finding]:
    """Stretches of black or overexposed frames (figure ``kind``: ``black`` | ``overexposed``)."""
    out = []
    for topic in camera_topics(ctx):
        s = camera_sample(ctx, topic)
        for flags, kind in ((s.black, "black"), (s.bright, "overexposed")):
            got = _stretch_findings(ctx, "exposure", topic, f"{kind} frames", _stretches(flags, s.t_s, s.interval_s),
                                    ctx.config.video.stretch_fail_s)
            for f in got:
                f.figures["kind"] = kind
            out += got
    return out


def frozen(ctx: EpisodeContext) -> list[Finding]:
    """Stretches of identical frames while the robot moves."""
    c = ctx.config.video
    out = []
    for topic in camera_topics(ctx):
        s = camera_sample(ctx, topic)
        with np.errstate(invalid="ignore"):
            flags = s.same & ~s.black & ~s.bright & (s.moved_rad >= c.motion_rad)
        out += _stretch_findings(ctx, "frozen", topic, "frozen (identical frames while the robot moves)",
                                 _stretches(flags, s.t_s, s.interval_s, pairs=True), c.stretch_fail_s)
    return out


def blur(ctx: EpisodeContext) -> list[Finding]:
    """Stretches of frames far less sharp than the camera's own median."""
    c = ctx.config.video
    out = []
    for topic in camera_topics(ctx):
        s = camera_sample(ctx, topic)
        lv = s.lapvar[np.isfinite(s.lapvar)]
        if len(lv) < 3:
            continue
        med = float(np.median(lv))
        with np.errstate(invalid="ignore"):
            flags = np.isfinite(s.lapvar) & (s.lapvar < c.blur_fraction * med)
        got = _stretch_findings(ctx, "blur", topic, f"blurred (sharpness under {100 * c.blur_fraction:.0f} % of "
                                f"its median)", _stretches(flags, s.t_s, s.interval_s), c.blur_fail_s)
        for f in got:
            f.figures["median_laplacian_var"] = round(med, 2)
        out += got
    return out


def static(ctx: EpisodeContext) -> list[Finding]:
    """A camera whose picture does not change while the robot's joints move."""
    c = ctx.config.video
    out = []
    for topic in camera_topics(ctx):
        s = camera_sample(ctx, topic)
        ch = s.change[np.isfinite(s.change)]
        if len(ch) < 3 or not np.isfinite(s.motion_range_rad) or s.motion_range_rad < c.static_motion_rad:
            continue
        good = s.ok & ~s.black & ~s.bright
        if np.all(s.same[good][1:]):
            continue  # every sample identical: the frozen check's
        if float(ch.max()) < c.static_change_luma:
            out.append(Finding("static", "warn", f"{ctx.name(topic)}: the picture does not change while the robot's "
                               f"joints move {s.motion_range_rad:.2f} rad (largest change {float(ch.max()):.1f} "
                               f"luma levels)", topic, {"change_luma": round(float(ch.max()), 3),
                                                        "motion_rad": round(s.motion_range_rad, 4)}))
    return out


#: the video checks in run order (decode first: it decodes the sample the others read)
CHECKS = {"decode": decode, "exposure": exposure, "frozen": frozen, "blur": blur, "static": static}
