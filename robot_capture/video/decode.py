"""CompressedVideo messages -> RGB frames (PyAV / FFmpeg; ROS-free), for QA, export, play and report.

:func:`decode_frames` is the plain entry point: bag messages of ``foxglove_msgs/msg/CompressedVideo``
(CDR bytes, or objects with a ``.data`` attribute such as ``BagReader`` messages), in log order, ->
an iterator of ``(stamp_ns, (H, W, 3) uint8 RGB)``. Frames before the first keyframe (a file that
starts mid-GOP, a recovered tail) cannot be decoded and are skipped and counted, never guessed.

:class:`VideoDecoder` is the stateful form (one per camera topic), with counters
``frames``, ``skipped`` (no keyframe yet) and ``errors`` (packets FFmpeg rejected).
:func:`is_keyframe` tells an H.264 IDR access unit from its NAL unit types (ITU-T H.264 7.4.1.2:
type 5 = IDR slice).
"""
from __future__ import annotations

import logging
import re
from typing import Iterable, Iterator

import numpy as np

from robot_capture.video.msgdef import parse_compressed_video, serialize_image

__all__ = ["VideoDecoder", "VideoDecodeError", "decode_frames", "image_messages", "is_keyframe", "luma_decoder"]

log = logging.getLogger(__name__)

#: CompressedVideo ``format`` -> FFmpeg decoder
DECODERS = {"h264": "h264", "h265": "hevc", "vp9": "vp9", "av1": "av1"}
_START = re.compile(b"\x00\x00\x01")


class VideoDecodeError(ValueError):
    """A ``format`` no decoder here reads."""


def is_keyframe(data, fmt: str = "h264") -> bool:
    """True if the H.264 access unit ``data`` (Annex B) holds an IDR slice (NAL type 5).
    Other formats: False (unknown)."""
    if fmt != "h264":
        return False
    b = bytes(data)
    return any(m.end() < len(b) and (b[m.end()] & 0x1F) == 5 for m in _START.finditer(b))


class VideoDecoder:
    """Decode one camera's CompressedVideo messages in order.

    ``decode(message_bytes) -> list[(stamp_ns, (H, W, 3) uint8 RGB)]``: usually one frame, none
    before the first keyframe or while FFmpeg's frame threading holds one; :meth:`flush` returns
    the rest. Raises :class:`VideoDecodeError` for an unknown ``format`` and ValueError for a
    truncated message.
    """

    def __init__(self):
        self._cc = None
        self._fmt = ""
        self._stamps: dict[int, int] = {}
        self._pts = 0
        self._keyed = False
        self.frames = 0
        self.skipped = 0
        self.errors = 0

    def decode(self, data) -> list[tuple[int, np.ndarray]]:
        stamp, _frame_id, blob, fmt = parse_compressed_video(data)
        if self._cc is None or fmt != self._fmt:
            self._open(fmt)
        if not self._keyed:
            if not is_keyframe(blob, fmt) and fmt == "h264":
                self.skipped += 1
                return []
            self._keyed = True
        import av

        pkt = av.Packet(bytes(blob))
        pkt.pts = pkt.dts = self._pts
        self._stamps[self._pts] = stamp
        self._pts += 1
        try:
            return self._frames(self._cc.decode(pkt))
        except av.error.FFmpegError as exc:
            self.errors += 1
            self._stamps.pop(pkt.pts, None)
            log.debug(f"video: packet at {stamp} does not decode: {exc}")
            return []

    def flush(self) -> list[tuple[int, np.ndarray]]:
        if self._cc is None:
            return []
        import av

        try:
            return self._frames(self._cc.decode(None))
        except av.error.FFmpegError:
            return []

    def _open(self, fmt: str) -> None:
        name = DECODERS.get(fmt)
        if name is None:
            raise VideoDecodeError(f"CompressedVideo format {fmt!r} is not supported (supported: "
                                   f"{', '.join(DECODERS)})")
        import av

        av.logging.set_level(av.logging.ERROR)
        self._cc = av.codec.CodecContext.create(name, "r")
        self._cc.thread_type = "SLICE"  # no frame threading: each packet gives its picture at once (1 in, 1 out)
        self._fmt, self._keyed = fmt, False

    def _frames(self, frames) -> list[tuple[int, np.ndarray]]:
        out = []
        for f in frames:
            stamp = self._stamps.pop(f.pts, 0) if f.pts is not None else 0
            out.append((stamp, f.to_ndarray(format="rgb24")))
        self.frames += len(out)
        return out


def decode_frames(messages: Iterable, decoder: VideoDecoder | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Bag messages of one CompressedVideo topic (CDR ``bytes``/``memoryview`` or objects with
    ``.data``), in log order -> ``(stamp_ns, (H, W, 3) uint8 RGB)`` per decodable frame.

    Pass a :class:`VideoDecoder` to read its ``skipped``/``errors`` counters afterwards.
    Raises VideoDecodeError (unknown format) or ValueError (truncated message).
    """
    dec = decoder or VideoDecoder()
    for m in messages:
        yield from dec.decode(getattr(m, "data", m))
    yield from dec.flush()


def image_messages(decoder: VideoDecoder, data) -> list[bytes]:
    """One CompressedVideo CDR message -> the sensor_msgs/Image CDR messages (rgb8, the frame's stamp,
    this message's ``frame_id``) of the frames it completes: ``play`` gives ROS consumers Images back.
    Raises as :meth:`VideoDecoder.decode`."""
    frame_id = parse_compressed_video(data)[1]
    return [serialize_image(stamp, frame_id, rgb.tobytes(), rgb.shape[0], rgb.shape[1], "rgb8")
            for stamp, rgb in decoder.decode(data)]


def luma_decoder(max_width: int = 0):
    """For the QA's sampled video checks (``robot_capture.qa.frames.register_decoder``, sequential):
    ``decode(cdr) -> (H, W) uint8`` luma (BT.601, as OpenCV's RGB2GRAY) of the picture that message
    completes, reduced by the integer factor ``width // max_width`` (area average; 0 = full size).
    Feed it every message of one topic in order. Raises ValueError naming why a message gives no
    picture (before the first keyframe, or it does not decode)."""
    import cv2

    dec = VideoDecoder()

    def decode(data) -> np.ndarray:
        skipped, errors = dec.skipped, dec.errors
        frames = dec.decode(data)
        if not frames:
            raise ValueError("no picture: before the first keyframe" if dec.skipped > skipped else
                             "H.264 frame does not decode" if dec.errors > errors else "no picture yet")
        rgb = frames[-1][1]
        f = max(1, rgb.shape[1] // max_width) if max_width > 0 else 1
        if f > 1:
            h, w = rgb.shape[0] // f, rgb.shape[1] // f
            rgb = cv2.resize(rgb[:h * f, :w * f], (w, h), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return decode
