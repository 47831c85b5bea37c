"""``foxglove_msgs/msg/CompressedVideo``: its ROS 2 definition text and its CDR layout, without ROS.

foxglove_msgs is not installed on a station, so the definition lives here: the bag writer's
schema lookup (``robot_capture.bag.msgdefs.definition_for``) falls back to :data:`VENDORED` for a
type the ament index does not know, and each bag then carries the full ``ros2msg`` schema that
``mcap``, ``rosbags`` and Foxglove decode without a ROS package.

Fields (Foxglove schema "CompressedVideo", https://docs.foxglove.dev/docs/sdk/schemas/compressed-video):
``timestamp`` (builtin_interfaces/Time, the capture time of the frame), ``frame_id`` (the
camera's optical frame: +x right, +y down, +z forward), ``data`` (one frame of an Annex B
bitstream, keyframes carry SPS/PPS) and ``format`` (``h264``, ``h265``, ``vp9``, ``av1``).

Also here: :func:`parse_image`, a sensor_msgs/Image CDR parser that keeps ``frame_id``
(``robot_capture.export.cdr.image`` drops it). CDR layout as in ``export/cdr.py``: XCDR1
little endian, alignment relative to the end of the 4-byte encapsulation header.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = ["COMPRESSED_VIDEO", "IMAGE", "VENDORED", "ImageMsg", "serialize_compressed_video",
           "parse_compressed_video", "parse_image", "serialize_image"]

COMPRESSED_VIDEO = "foxglove_msgs/msg/CompressedVideo"
IMAGE = "sensor_msgs/msg/Image"

_TIME = "int32 sec\nuint32 nanosec\n"
_CV = ("# A single frame of a compressed video bitstream (Foxglove schema CompressedVideo)\n"
       "\n"
       "# capture time of the frame\n"
       "builtin_interfaces/Time timestamp\n"
       "\n"
       "# frame of reference of the video (camera optical frame)\n"
       "string frame_id\n"
       "\n"
       "# one frame of the bitstream (Annex B for h264/h265; a keyframe carries its parameter sets)\n"
       "uint8[] data\n"
       "\n"
       "# h264, h265, vp9 or av1\n"
       "string format\n")

#: {type name: concatenated ros2msg definition} (rosbag2's layout: root text, then ``=``*80 and
#: ``MSG: pkg/Type`` before each dependency)
VENDORED = {COMPRESSED_VIDEO: _CV + "\n" + "=" * 80 + "\nMSG: builtin_interfaces/Time\n" + _TIME}

_U32 = struct.Struct("<I")
_STAMP = struct.Struct("<iI")


def _pad(n: int, align: int) -> int:
    return (-(n - 4)) % align


def _string(out: bytearray, s: str) -> None:
    out += b"\0" * _pad(len(out), 4)
    b = s.encode("utf-8") + b"\0"
    out += _U32.pack(len(b)) + b


def serialize_compressed_video(stamp_ns: int, frame_id: str, data, fmt: str = "h264") -> bytes:
    """One CompressedVideo message as CDR bytes (little endian). ``stamp_ns``: int ns since the epoch."""
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    out = bytearray(b"\x00\x01\x00\x00")
    out += _STAMP.pack(sec, nsec)
    _string(out, frame_id)
    out += b"\0" * _pad(len(out), 4)
    out += _U32.pack(len(data))
    out += data
    _string(out, fmt)
    return bytes(out)


class _Cursor:
    def __init__(self, data, what: str):
        self.buf, self.pos, self.what = memoryview(data), 4, what
        if len(self.buf) < 4 or self.buf[1] != 1:
            raise ValueError(f"{what}: not a little-endian CDR message ({len(self.buf)} bytes)")

    def take(self, n: int, align: int = 1) -> memoryview:
        self.pos += _pad(self.pos, align)
        if self.pos + n > len(self.buf):
            raise ValueError(f"{self.what}: truncated message ({len(self.buf)} bytes, need {self.pos + n})")
        v = self.buf[self.pos:self.pos + n]
        self.pos += n
        return v

    def u32(self) -> int:
        return _U32.unpack(self.take(4, 4))[0]

    def stamp(self) -> int:
        sec, nsec = _STAMP.unpack(self.take(8, 4))
        return sec * 1_000_000_000 + nsec

    def string(self) -> str:
        n = self.u32()
        return bytes(self.take(n)).rstrip(b"\0").decode("utf-8", "replace")

    def blob(self) -> memoryview:
        return self.take(self.u32())


def parse_compressed_video(data) -> tuple[int, str, memoryview, str]:
    """CDR CompressedVideo -> ``(stamp_ns, frame_id, data, format)``. Raises ValueError when truncated."""
    c = _Cursor(data, COMPRESSED_VIDEO)
    t = c.stamp()
    frame_id = c.string()
    blob = c.blob()
    return t, frame_id, blob, c.string()


class ImageMsg(NamedTuple):
    """A parsed sensor_msgs/Image: header stamp (int ns), frame_id, size in pixels, encoding,
    ``step`` (bytes a row) and the row-major pixel bytes (a view of the message, not a copy)."""

    stamp_ns: int
    frame_id: str
    height: int
    width: int
    encoding: str
    step: int
    pixels: memoryview


def parse_image(data) -> ImageMsg:
    """CDR sensor_msgs/Image -> :class:`ImageMsg`. Raises ValueError (truncated, big endian pixels,
    fewer bytes than ``step * height``)."""
    c = _Cursor(data, IMAGE)
    t = c.stamp()
    frame_id = c.string()
    h, w = c.u32(), c.u32()
    enc = c.string()
    big = c.take(1)[0]
    step = c.u32()
    px = c.blob()
    if big:
        raise ValueError(f"{IMAGE}: big-endian pixel data is not supported")
    if len(px) < step * h:
        raise ValueError(f"{IMAGE}: {len(px)} bytes of pixels for {h} rows of {step}")
    return ImageMsg(t, frame_id, h, w, enc, step, px)


def serialize_image(stamp_ns: int, frame_id: str, pixels, height: int, width: int, encoding: str = "rgb8",
                    step: int | None = None) -> bytes:
    """A sensor_msgs/Image as CDR bytes (tests, ``play``); ``pixels`` is row-major, ``step`` bytes a row."""
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    px = bytes(pixels)
    step = step if step is not None else (len(px) // height if height else 0)
    out = bytearray(b"\x00\x01\x00\x00")
    out += _STAMP.pack(sec, nsec)
    _string(out, frame_id)
    out += b"\0" * _pad(len(out), 4)
    out += _U32.pack(height) + _U32.pack(width)
    _string(out, encoding)
    out += b"\0"
    out += b"\0" * _pad(len(out), 4)
    out += _U32.pack(step) + _U32.pack(len(px)) + px
    return bytes(out)

