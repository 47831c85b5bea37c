"""Camera frames for the video checks: which frames to decode, and decoding them to luma.

The video checks (:mod:`robot_capture.qa.checks_video`) judge a **sample** of each camera's
frames, so that the QA stays fast enough for the batch on long, high-resolution episodes:
every ``stride``-th frame, ``stride = max(1, round(camera rate / video.sample_hz))``
(:func:`sample_indices`). A sampled frame is decoded to an 8-bit **luma** image (BT.601
``Y = 0.299 R + 0.587 G + 0.114 B``, ``(H, W)`` uint8): brightness, sharpness and change are
judged on luma only.

Every frame (not only the sample) gets a cheap **structure check** (:func:`structure_problem`):
a raw ``sensor_msgs/Image`` must carry ``height * step`` bytes with ``step >= width *
bytes per pixel`` of its encoding (depth and 16-bit encodings too: their pictures are not
judged, :class:`UnsupportedFrame`); a JPEG must start with SOI ``FF D8`` and end with EOI ``FF D9``
(ITU-T T.81, B.2.1), a PNG with its 8-byte signature and the ``IEND`` chunk (RFC 2083, 3.1,
4.1.4). A raw frame's pixels are not read for this (a 160-byte head read), so a multi-GB raw
camera stream is checked without reading it.

Decoders plug in by message type (:data:`DECODERS`, :func:`register_decoder`). A decoder is a
factory ``(max_width) -> callable(cdr bytes) -> luma (H, W) uint8`` that raises :class:`FrameError`
(one line: what is wrong) for a frame that does not decode. A codec with inter-frame
prediction (H.264 ``foxglove_msgs/CompressedVideo``, ``robot_capture/video/decode.py``)
registers with ``sequential=True``: :func:`sampled_frames` then feeds it every frame in order
(a P-frame needs the frames before it) and keeps only the sampled ones.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

__all__ = ["FrameError", "UnsupportedFrame", "Frame", "DECODERS", "register_decoder", "sample_indices", "sampled_frames",
           "structure_problem", "CHANNELS"]

#: bytes per pixel of the raw encodings the QA reads to luma (sensor_msgs/image_encodings.hpp names)
CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1, "8UC3": 3, "8UC4": 4}
#: bytes per pixel of other encodings (depth, 16-bit, Bayer): their data length is checked, their
#: pictures are not judged (:class:`UnsupportedFrame`)
OTHER_BYTES = {"mono16": 2, "16UC1": 2, "16SC1": 2, "32FC1": 4, "32SC1": 4, "64FC1": 8, "rgb16": 6, "bgr16": 6,
               "rgba16": 8, "bgra16": 8, "8UC2": 2, "16UC3": 6, "32FC3": 12, "yuv422": 2, "uyvy": 2, "yuyv": 2,
               **{f"bayer_{p}{b}": b // 8 for p in ("rggb", "bggr", "gbrg", "grbg") for b in (8, 16)}}
_HEAD_BYTES = 160  # header, frame_id, height, width, encoding, is_bigendian, step, data length of a raw Image


class FrameError(ValueError):
    """A camera frame that cannot be decoded; the message says why in one line."""


class UnsupportedFrame(FrameError):
    """A well-formed frame of an encoding the video checks do not judge (depth, 16-bit, Bayer)."""


@dataclass
class Frame:
    """One decoded frame: ``index`` in the topic's receive order, ``stamp_ns`` (header stamp, or
    receive time when the type has none), ``luma`` (H, W) uint8, or ``error`` (one line) instead."""

    index: int
    stamp_ns: int
    luma: np.ndarray | None
    error: str = ""
    unsupported: bool = False     # a well-formed frame the checks do not judge (UnsupportedFrame)


@dataclass
class _Decoder:
    factory: Callable[[int], Callable[[bytes], np.ndarray]]
    sequential: bool


#: message type -> decoder (see the module docstring); extend with :func:`register_decoder`
DECODERS: dict[str, _Decoder] = {}


def register_decoder(type_name: str, factory: Callable[[int], Callable[[bytes], np.ndarray]],
                     sequential: bool = False) -> None:
    """Decode frames of ``type_name`` (e.g. ``foxglove_msgs/msg/CompressedVideo``) with
    ``factory(max_width)`` (a fresh decoder per topic and episode; it may return pictures
    reduced by an integer factor to no less than ``max_width`` // 2 px wide, 0 = full size).
    ``sequential``: the decoder needs every frame in order (inter-frame codecs)."""
    DECODERS[type_name] = _Decoder(factory, sequential)


def _string(b, p: int) -> tuple[str, int]:
    p += (-(p - 4)) % 4
    (n,) = struct.unpack_from("<I", b, p)
    if n > len(b) - p - 4:
        raise FrameError("truncated string")
    return bytes(b[p + 4:p + 4 + max(n - 1, 0)]).decode("utf-8", "replace"), p + 4 + n


def _raw_fields(b) -> tuple[int, int, str, int, int, int]:
    """``(height, width, encoding, step, data length, data offset)`` of Image CDR bytes."""
    if len(b) < 12 or b[1] != 1:
        raise FrameError("not a little-endian CDR sensor_msgs/Image")
    try:
        _frame_id, p = _string(b, 12)
        p += (-(p - 4)) % 4
        h, w = struct.unpack_from("<II", b, p)
        enc, p = _string(b, p + 8)
        p += 1                                    # is_bigendian
        p += (-(p - 4)) % 4
        step, n = struct.unpack_from("<II", b, p)
    except struct.error:
        raise FrameError("truncated sensor_msgs/Image header") from None
    return h, w, enc, step, n, p + 8


def _raw_problem(h: int, w: int, enc: str, step: int, n: int) -> str:
    ch = CHANNELS.get(enc) or OTHER_BYTES.get(enc)
    if ch is None:
        return f"unknown image encoding {enc!r}"
    if h == 0 or w == 0:
        return f"empty image {w}x{h}"
    if step < w * ch:
        return f"step {step} bytes is less than width {w} x {ch} bytes of {enc}"
    if n != h * step:
        return f"{n} bytes of pixels where {h} rows of {step} bytes ({h * step}) are due for {enc} {w}x{h}"
    return ""


def _compressed_data(b) -> memoryview:
    if len(b) < 12 or b[1] != 1:
        raise FrameError("not a little-endian CDR sensor_msgs/CompressedImage")
    try:
        _frame_id, p = _string(b, 12)
        _fmt, p = _string(b, p)
        p += (-(p - 4)) % 4
        (n,) = struct.unpack_from("<I", b, p)
    except struct.error:
        raise FrameError("truncated sensor_msgs/CompressedImage header") from None
    if p + 4 + n > len(b):
        raise FrameError(f"{n} bytes of data declared, {len(b) - p - 4} present")
    return memoryview(b)[p + 4:p + 4 + n]


_PNG = b"\x89PNG\r\n\x1a\n"


def _compressed_problem(data) -> str:
    head, tail = bytes(data[:8]), bytes(data[-12:])
    if head[:2] == b"\xff\xd8":
        return "" if tail[-2:] == b"\xff\xd9" else "JPEG without its end marker (truncated)"
    if head == _PNG:
        return "" if tail[4:8] == b"IEND" else "PNG without its IEND chunk (truncated)"
    return f"{len(data)} bytes that are neither JPEG nor PNG" if len(data) else "empty compressed image"


def structure_problem(type_name: str, head: bytes, size: int, read_all: Callable[[], bytes]) -> str:
    """One line saying what is wrong with a frame's structure, or "" (see the module docstring).

    Args:
        type_name: the message type. head: the first bytes of the CDR message (at least 160 when
            the message is that long). size: the message's full length in bytes.
        read_all: returns the whole message (used for compressed images, whose end is checked).
    Types without a structure rule (e.g. a registered video codec) give "".
    """
    try:
        if type_name == "sensor_msgs/msg/Image":
            h, w, enc, step, n, off = _raw_fields(head if len(head) >= min(size, _HEAD_BYTES) else read_all())
            problem = _raw_problem(h, w, enc, step, n)
            if not problem and off + n > size:
                problem = f"{size - off} bytes of pixels present, {n} declared (truncated message)"
            return problem
        if type_name == "sensor_msgs/msg/CompressedImage":
            return _compressed_problem(_compressed_data(read_all()))
    except FrameError as exc:
        return str(exc)
    return ""


def _factor(width: int, max_width: int) -> int:
    return max(1, width // max_width) if max_width > 0 else 1


def _luma_raw(max_width: int = 0):
    """Raw Image -> luma; wider than ``max_width``: area-averaged by the integer factor
    ``width // max_width`` first (cv2.INTER_AREA: each pixel the mean of its block)."""
    import cv2

    def decode(b) -> np.ndarray:
        h, w, enc, step, n, off = _raw_fields(b)
        problem = _raw_problem(h, w, enc, step, n) or ("" if off + n <= len(b) else "truncated pixel data")
        if problem:
            raise FrameError(problem)
        ch = CHANNELS.get(enc)
        if ch is None:
            raise UnsupportedFrame(f"encoding {enc} is not judged by the video checks")
        a = np.frombuffer(b, np.uint8, h * step, off).reshape(h, step)[:, :w * ch].reshape(h, w, ch)
        f = _factor(w, max_width)
        if f > 1 and h >= f:
            a = cv2.resize(a[:(h // f) * f, :(w // f) * f], (w // f, h // f), interpolation=cv2.INTER_AREA)
            a = a.reshape(h // f, w // f, ch)
        if ch == 1:
            return np.ascontiguousarray(a[:, :, 0])
        code = {"bgr8": cv2.COLOR_BGR2GRAY, "bgra8": cv2.COLOR_BGRA2GRAY}.get(enc)
        if code is None:
            code = cv2.COLOR_RGB2GRAY if ch == 3 else cv2.COLOR_RGBA2GRAY
        return cv2.cvtColor(np.ascontiguousarray(a), code)
    return decode


def _luma_compressed(max_width: int = 0):
    """JPEG/PNG -> luma; a JPEG wider than ``max_width`` is decoded at 1/2, 1/4 or 1/8 size in
    the DCT domain (OpenCV IMREAD_REDUCED_GRAYSCALE_n; the factor from the first frame)."""
    import cv2

    reduced = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
               8: cv2.IMREAD_REDUCED_GRAYSCALE_8}
    state = {"flag": None}

    def decode(b) -> np.ndarray:
        data = _compressed_data(b)
        problem = _compressed_problem(data)
        if problem:
            raise FrameError(problem)
        buf = np.frombuffer(data, np.uint8)
        img = cv2.imdecode(buf, state["flag"] or cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise FrameError(f"{len(data)}-byte compressed image does not decode")
        if state["flag"] is None:
            f = _factor(img.shape[1], max_width)
            p2 = max((k for k in reduced if k <= f), default=1)
            state["flag"] = reduced.get(p2, cv2.IMREAD_GRAYSCALE) if bytes(data[:2]) == b"\xff\xd8" else \
                cv2.IMREAD_GRAYSCALE
            if state["flag"] != cv2.IMREAD_GRAYSCALE:
                img = cv2.imdecode(buf, state["flag"])
        return img
    return decode


def _luma_video(max_width: int = 0):
    """H.264 CompressedVideo (robot_capture.video) -> luma, fed every frame in order."""
    from robot_capture.video.decode import luma_decoder

    decode = luma_decoder(max_width)

    def luma(b) -> np.ndarray:
        try:
            return decode(b)
        except ValueError as exc:
            raise FrameError(str(exc)) from None
    return luma


register_decoder("sensor_msgs/msg/Image", _luma_raw)
register_decoder("sensor_msgs/msg/CompressedImage", _luma_compressed)
register_decoder("foxglove_msgs/msg/CompressedVideo", _luma_video, sequential=True)


def sample_indices(n: int, rate_hz: float, sample_hz: float) -> np.ndarray:
    """Indices of the frames to decode among ``n``: every ``max(1, round(rate_hz / sample_hz))``-th,
    starting at 0 (int64). ``rate_hz`` <= 0 (unknown) samples every frame."""
    stride = max(1, int(round(rate_hz / sample_hz))) if rate_hz > 0 and sample_hz > 0 else 1
    return np.arange(0, max(n, 0), stride, dtype=np.int64)


def sampled_frames(data, topic: str, indices, times_ns, max_width: int = 0) -> Iterator[Frame]:
    """Decode the frames ``indices`` (sorted, receive order) of ``topic`` from ``data``
    (:class:`robot_capture.qa.bagdata.BagData`); ``times_ns[i]`` is frame i's time; pictures
    wider than ``max_width`` px come reduced by an integer factor (0 = full size).

    Yields a :class:`Frame` per index, with ``error`` set for a frame that does not decode.
    Raises KeyError for a message type without a registered decoder (see :data:`DECODERS`).
    """
    dec = DECODERS[data.topics[topic]]
    decode = dec.factory(max_width)
    indices = [int(i) for i in indices]
    if dec.sequential and indices:  # inter-frame codec: feed every frame up to the last sampled one
        wanted = set(indices)
        feed = range(indices[-1] + 1)
    else:
        wanted, feed = None, indices
    for i, b in zip(feed, _payloads(data, topic, feed)):
        unsupported = False
        try:
            luma = decode(b)
            err = ""
        except UnsupportedFrame as exc:
            luma, err, unsupported = None, str(exc), True
        except FrameError as exc:
            luma, err = None, str(exc)
        except Exception as exc:  # noqa: BLE001 - a decoder library's own error is a bad frame, not a crash
            luma, err = None, f"{type(exc).__name__}: {exc}"
        if wanted is None or i in wanted:
            yield Frame(i, int(times_ns[i]), luma, err, unsupported)


def _payloads(data, topic: str, indices) -> Iterator[bytes]:
    """One message at a time (bounded memory: one frame)."""
    for i in indices:
        yield data.payloads(topic, [i])[0]
