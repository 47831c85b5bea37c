"""Direct CDR parsing of the few message types the exporter reads (no ROS, no codegen).

The exporter reads hundreds of thousands of messages per episode; parsing them with
``struct`` and ``numpy.frombuffer`` is much cheaper than building Python message objects
(``mcap_ros2``), and image pixels are never copied before they reach the encoder.

Layout: XCDR1 as ROS 2 (rmw_fastrtps, rosbag2) writes it: a 4-byte encapsulation header
(``00 01 00 00`` little endian), then the members, each aligned to its own size relative
to the end of that header (OMG DDS-XTypes 1.3, 7.4.1 "Encoding of primitive types").
Strings are a uint32 length that counts the terminating NUL, then the bytes.

Every function takes the raw bytes of one message and raises ``ValueError`` (message
names the type) on a truncated or big-endian buffer. Stamps are ``int`` ns
(``header.stamp.sec * 1e9 + nanosec``).
"""
from __future__ import annotations

import struct

import numpy as np

__all__ = ["stamp_ns", "joint_state", "JointStateParser", "image", "compressed_image", "pose_array", "pose_stamped",
           "SUPPORTED_TYPES"]

SUPPORTED_TYPES = ("sensor_msgs/msg/JointState", "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
                   "geometry_msgs/msg/PoseArray", "geometry_msgs/msg/PoseStamped")

_U32 = struct.Struct("<I")
_STAMP = struct.Struct("<iI")


class _Cursor:
    __slots__ = ("buf", "pos", "what")

    def __init__(self, data, what: str):
        buf = memoryview(data)
        if len(buf) < 4:
            raise ValueError(f"{what}: {len(buf)} bytes is not a CDR message")
        if buf[1] != 1:
            raise ValueError(f"{what}: big-endian or unknown CDR encapsulation {bytes(buf[:2]).hex()}")
        self.buf, self.pos, self.what = buf, 4, what

    def align(self, n: int) -> None:
        r = (self.pos - 4) % n
        if r:
            self.pos += n - r

    def need(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            raise ValueError(f"{self.what}: truncated message ({len(self.buf)} bytes, need {self.pos + n})")

    def u32(self) -> int:
        self.align(4)
        self.need(4)
        (v,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return v

    def u8(self) -> int:
        self.need(1)
        v = self.buf[self.pos]
        self.pos += 1
        return v

    def string(self) -> str:
        n = self.u32()
        self.need(n)
        s = bytes(self.buf[self.pos:self.pos + max(n - 1, 0)]).decode("utf-8", errors="replace")
        self.pos += n
        return s

    def stamp(self) -> int:
        self.align(4)
        self.need(8)
        sec, nsec = _STAMP.unpack_from(self.buf, self.pos)
        self.pos += 8
        return sec * 1_000_000_000 + nsec

    def header(self) -> int:
        t = self.stamp()
        self.string()  # frame_id
        return t

    def f64_seq(self) -> np.ndarray:
        n = self.u32()
        if n == 0:
            return np.zeros(0)
        self.align(8)
        self.need(8 * n)
        a = np.frombuffer(self.buf, dtype="<f8", count=n, offset=self.pos)
        self.pos += 8 * n
        return a

    def f64(self, n: int) -> np.ndarray:
        self.align(8)
        self.need(8 * n)
        a = np.frombuffer(self.buf, dtype="<f8", count=n, offset=self.pos)
        self.pos += 8 * n
        return a

    def bytes_seq(self) -> memoryview:
        n = self.u32()
        self.need(n)
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out


def stamp_ns(data) -> int:
    """``header.stamp`` of any message that starts with a ``std_msgs/Header``."""
    return _Cursor(data, "header").stamp()


def joint_state(data):
    """sensor_msgs/JointState -> ``(stamp_ns, names, position, velocity, effort)``;
    the arrays are float64 views (rad, rad/s, N m), possibly empty."""
    c = _Cursor(data, "sensor_msgs/msg/JointState")
    t = c.header()
    names = [c.string() for _ in range(c.u32())]
    return t, names, c.f64_seq(), c.f64_seq(), c.f64_seq()


class JointStateParser:
    """:func:`joint_state` for a stream of messages that repeat the same joint names: the
    name block is compared as bytes with the previous message's and parsed only when it
    differs (a 29-joint robot at 500 Hz spends most of its parse time on the names)."""

    def __init__(self):
        self._start = -1
        self._block = b""
        self._names: list[str] = []

    def __call__(self, data):
        c = _Cursor(data, "sensor_msgs/msg/JointState")
        t = c.header()
        start = c.pos
        n = len(self._block)
        if start == self._start and n and bytes(c.buf[start:start + n]) == self._block:
            c.pos = start + n
            names = self._names
        else:
            names = [c.string() for _ in range(c.u32())]
            self._start, self._block, self._names = start, bytes(c.buf[start:c.pos]), names
        return t, names, c.f64_seq(), c.f64_seq(), c.f64_seq()


def image(data):
    """sensor_msgs/Image -> ``(stamp_ns, height, width, encoding, step, is_bigendian, pixels)``;
    ``pixels`` is a memoryview of the row-major data (``step`` bytes per row)."""
    c = _Cursor(data, "sensor_msgs/msg/Image")
    t = c.header()
    h = c.u32()
    w = c.u32()
    enc = c.string()
    big = c.u8()
    step = c.u32()
    px = c.bytes_seq()
    if len(px) < step * h:
        raise ValueError(f"sensor_msgs/msg/Image: {len(px)} bytes of pixels for {h} rows of {step}")
    return t, h, w, enc, step, big, px


def compressed_image(data):
    """sensor_msgs/CompressedImage -> ``(stamp_ns, format, data memoryview)``."""
    c = _Cursor(data, "sensor_msgs/msg/CompressedImage")
    t = c.header()
    fmt = c.string()
    return t, fmt, c.bytes_seq()


def pose_array(data):
    """geometry_msgs/PoseArray -> ``(stamp_ns, poses (N, 7) float64)``; each row
    ``x, y, z, qx, qy, qz, qw`` (m; quaternion as in ROS)."""
    c = _Cursor(data, "geometry_msgs/msg/PoseArray")
    t = c.header()
    n = c.u32()
    return t, (c.f64(7 * n).reshape(n, 7) if n else np.zeros((0, 7)))


def pose_stamped(data):
    """geometry_msgs/PoseStamped -> ``(stamp_ns, pose (7,) float64)`` as ``x, y, z, qx, qy, qz, qw``."""
    c = _Cursor(data, "geometry_msgs/msg/PoseStamped")
    t = c.header()
    return t, c.f64(7)
