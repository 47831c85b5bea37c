"""What the QA reads from a bag: receive times, header stamps, and only the payloads a check needs.

:class:`BagData` opens a :class:`~robot_capture.bag.reader.BagReader` and reads each
chunk's MCAP MessageIndex records (log time and offset of every message; written by our
writer and by rosbag2), so a multi-GB camera bag is timed without reading images. Then:

* :meth:`BagData.log_times` (int64 ns, receive time = MCAP ``log_time``), from the indexes;
* :meth:`BagData.stamps`: ``std_msgs/Header.stamp`` in ns, read straight from the CDR
  bytes. Every message type that starts with a Header (JointState, Image,
  CompressedImage, CameraInfo, PoseStamped, PoseArray, DiagnosticArray) has the stamp at
  a fixed place: after the 4-byte encapsulation header, ``int32 sec, uint32 nanosec``
  (OMG XCDR1, little or big endian per the encapsulation id). In an uncompressed chunk
  that is an 8-byte ``pread`` per message at ``offset + 31 + 4`` (31 = the MCAP Message
  record header: opcode, length, channel id, sequence, log and publish time);
* :meth:`BagData.payloads`: the raw CDR bytes of one topic's messages (a read per message
  in uncompressed chunks);
* :func:`parse_joint_state`: names and positions from JointState CDR bytes (no full
  deserialization), and :meth:`BagData.decoded` for anything else (mcap_ros2, with the
  schema stored in the bag).

A compressed chunk (lz4/zstd) is decompressed once when a needed message is in it. A file
without message indexes falls back to iterating its messages once.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import numpy as np

from robot_capture.bag.reader import BagReader

__all__ = ["BagData", "DamagedDataError", "HEADER_TYPES", "parse_joint_state"]

#: message types whose first field is ``std_msgs/Header header``
HEADER_TYPES = frozenset({
    "sensor_msgs/msg/JointState", "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/Imu", "sensor_msgs/msg/PointCloud2",
    "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/PoseArray", "geometry_msgs/msg/TransformStamped",
    "geometry_msgs/msg/TwistStamped", "geometry_msgs/msg/WrenchStamped", "diagnostic_msgs/msg/DiagnosticArray",
    "trajectory_msgs/msg/JointTrajectory", "nav_msgs/msg/Odometry",
    # not a Header, but its first field is the same builtin_interfaces/Time stamp (robot_capture.video)
    "foxglove_msgs/msg/CompressedVideo",
})
_MSG_HEADER = 31  # MCAP Message record: opcode u8, length u64, channel u16, sequence u32, log u64, publish u64
_REC_HEAD = struct.Struct("<BQHIQ")  # opcode, length, channel, sequence, log time


class DamagedDataError(ValueError):
    """A chunk or message record the QA needed is damaged (fails its checks, or is not the
    record its MessageIndex entry names): the check cannot run; ``recover`` the bag."""


@dataclass
class _Chunk:
    file: int
    records_start: int        # file offset of the chunk's records (uncompressed chunks)
    compression: str
    start: int                # chunk record offset
    length: int
    uncompressed_size: int


@dataclass
class _Topic:
    type: str
    log: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    chunk: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # index into BagData._chunks
    offset: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # in the uncompressed records


class BagData:
    """Index-based access to one bag (see the module docstring). Use as a context manager.

    Raises (from BagReader): NotABagError, IncompleteBagFileError (run ``recover``), ValueError.
    """

    def __init__(self, bag_dir):
        self.reader = BagReader(bag_dir)
        self.metadata = self.reader.metadata
        self._fds = [os.open(p, os.O_RDONLY) for p in self.reader.files]
        self._chunks: list[_Chunk] = []
        self._topics: dict[str, _Topic] = {t: _Topic(i.type) for t, i in self.reader.topics.items()}
        self._fallback: dict[str, list] | None = None
        self._chunk_cache: dict[int, bytes] = {}
        self._stamps: dict[str, np.ndarray | None] = {}
        self._index()

    # ------------------------------------------------------------------ index
    def _index(self) -> None:
        acc: dict[str, list] = {}
        for fi, summary in enumerate(self.reader._summaries):
            ok = self._index_file(fi, summary, acc)
            if not ok:
                self._fallback_file(fi, acc)
        for topic, parts in acc.items():
            if topic not in self._topics:
                continue
            log = np.concatenate([p[0] for p in parts]).astype(np.int64)
            ch = np.concatenate([p[1] for p in parts]).astype(np.int64)
            off = np.concatenate([p[2] for p in parts]).astype(np.int64)
            order = np.argsort(log, kind="stable")
            t = self._topics[topic]
            t.log, t.chunk, t.offset = log[order], ch[order], off[order]

    def _index_file(self, fi: int, summary, acc) -> bool:
        fd = self._fds[fi]
        if summary is None:
            return False
        if not summary.chunk_indexes and summary.statistics is not None and summary.statistics.message_count:
            return False  # unchunked file
        for ci in summary.chunk_indexes:
            if not ci.message_index_offsets:
                return False
            comp = ci.compression or ""
            cidx = len(self._chunks)
            self._chunks.append(_Chunk(fi, ci.chunk_start_offset + 49 + len(comp.encode()), comp,
                                       ci.chunk_start_offset, ci.chunk_length, ci.uncompressed_size))
            for cid, off in ci.message_index_offsets.items():
                head = os.pread(fd, 15, off)
                if len(head) < 15 or head[0] != 0x07:
                    return False
                _op, length, ch, nbytes = struct.unpack("<BQHI", head)
                if ch != cid or nbytes % 16 or length != 6 + nbytes or nbytes > ci.uncompressed_size * 16:
                    return False  # a damaged index: read this file through the checked reader
                body = os.pread(fd, nbytes, off + 15)
                if len(body) != nbytes:
                    return False
                arr = np.frombuffer(body, dtype="<u8").reshape(-1, 2)
                if len(arr) and (arr[:, 0].min() < ci.message_start_time or arr[:, 0].max() > ci.message_end_time
                                 or arr[:, 1].max() >= ci.uncompressed_size):
                    return False
                channel = summary.channels.get(cid)
                if channel is None:
                    continue
                acc.setdefault(channel.topic, []).append(
                    (arr[:, 0].astype(np.int64), np.full(len(arr), cidx), arr[:, 1].astype(np.int64)))
        return True

    def _fallback_file(self, fi: int, acc) -> None:
        """No (or a damaged) message index: iterate the file once through the CRC-checked
        reader (damaged chunks skipped, in ``reader.damaged_chunks``), keep payloads in memory."""
        self._fallback = self._fallback or {}
        one = BagReader(self.reader.files[fi])
        for m in one.messages():
            lst = self._fallback.setdefault(m.topic, [])
            acc.setdefault(m.topic, []).append(
                (np.array([m.log_time_ns]), np.array([-1]), np.array([len(lst)])))
            lst.append(m.data)
        self.reader.damaged_chunks.extend(one.damaged_chunks)

    # ------------------------------------------------------------------ access
    @property
    def topics(self) -> dict[str, str]:
        """``{topic: type}`` of every topic in the bag (also those with no message)."""
        return {k: v.type for k, v in self._topics.items()}

    def count(self, topic: str) -> int:
        t = self._topics.get(topic)
        return 0 if t is None else len(t.log)

    def log_times(self, topic: str) -> np.ndarray:
        """Receive times (int64 ns, sorted) of ``topic``; empty if absent."""
        t = self._topics.get(topic)
        return t.log if t is not None else np.zeros(0, np.int64)

    def _chunk_bytes(self, cidx: int) -> bytes:
        data = self._chunk_cache.get(cidx)
        if data is None:
            from robot_capture.bag.chunks import ChunkDamagedError, decode_chunk_body

            c = self._chunks[cidx]
            raw = os.pread(self._fds[c.file], c.length, c.start)
            try:  # framing, decompression, size and CRC checked (robot_capture.bag.chunks)
                data = decode_chunk_body(memoryview(raw)[9:], validate_crc=True)[2]
            except ChunkDamagedError as exc:
                raise DamagedDataError(f"{self.reader.files[c.file]}: damaged chunk at byte {c.start} ({exc}); "
                                       f"run `robot-capture recover`") from None
            self._chunk_cache = {cidx: data}  # one chunk at a time: bounded memory
        return data

    def _read(self, t: _Topic, i: int, nbytes: int | None) -> bytes:
        """Message data (or its first ``nbytes``) of message ``i`` of topic ``t``, after checking
        that the record there is a Message of the log time the index gives (a damaged index or
        chunk raises DamagedDataError instead of handing on other bytes)."""
        return self._read_sized(t, i, nbytes)[0]

    def _read_sized(self, t: _Topic, i: int, nbytes: int | None) -> tuple[bytes, int]:
        """:meth:`_read` and the message's full data length."""
        cidx, off = int(t.chunk[i]), int(t.offset[i])
        if cidx < 0:
            return None, 0  # fallback handled by caller
        c = self._chunks[cidx]
        if c.compression:
            buf = self._chunk_bytes(cidx)
            self._check_record(buf[off:off + _MSG_HEADER], t, i, c)
            length = struct.unpack_from("<Q", buf, off + 1)[0]
            end = off + 9 + length
            if end > len(buf):
                self._damaged(c)
            return (buf[off + _MSG_HEADER:end if nbytes is None else min(end, off + _MSG_HEADER + nbytes)],
                    end - off - _MSG_HEADER)
        fd = self._fds[c.file]
        pos = c.records_start + off
        head = os.pread(fd, _MSG_HEADER + nbytes if nbytes is not None else 4096, pos)
        self._check_record(head, t, i, c)
        total = 9 + struct.unpack_from("<Q", head, 1)[0]
        if not _MSG_HEADER <= total <= c.uncompressed_size - off:
            self._damaged(c)
        size = total - _MSG_HEADER
        if nbytes is not None:
            return head[_MSG_HEADER:min(total, _MSG_HEADER + nbytes)], size
        if total <= len(head):
            return head[_MSG_HEADER:total], size
        return os.pread(fd, size, pos + _MSG_HEADER), size  # one read, no copy (a raw frame is ~1 MB)

    def _check_record(self, head: bytes, t: _Topic, i: int, c: _Chunk) -> None:
        if len(head) < _MSG_HEADER:
            self._damaged(c)
        op, _length, _ch, _seq, log = _REC_HEAD.unpack_from(head, 0)
        if op != 0x05 or log != int(t.log[i]):
            self._damaged(c)

    def _damaged(self, c: _Chunk):
        raise DamagedDataError(f"{self.reader.files[c.file]}: damaged message record or index in the chunk at byte "
                               f"{c.start}; run `robot-capture recover`")

    def payloads(self, topic: str, indices=None) -> list[bytes]:
        """Raw CDR bytes of ``topic``'s messages in receive order (or only ``indices``)."""
        t = self._topics.get(topic)
        if t is None:
            return []
        idx = range(len(t.log)) if indices is None else indices
        fb = (self._fallback or {}).get(topic)
        out = []
        for i in idx:
            if int(t.chunk[i]) < 0:
                out.append(fb[int(t.offset[i])])
            else:
                out.append(self._read(t, i, None))
        return out

    def heads(self, topic: str, nbytes: int) -> list[tuple[bytes, int]]:
        """``(first nbytes of the CDR data, full data length)`` of each of ``topic``'s messages in
        receive order: one small read per message in uncompressed chunks (the video checks' frame
        structure check, :func:`robot_capture.qa.frames.structure_problem`)."""
        t = self._topics.get(topic)
        if t is None:
            return []
        fb = (self._fallback or {}).get(topic)
        out = []
        for i in range(len(t.log)):
            if int(t.chunk[i]) < 0:
                b = fb[int(t.offset[i])]
                out.append((b[:nbytes], len(b)))
            else:
                out.append(self._read_sized(t, i, nbytes))
        return out

    def has_header(self, topic: str) -> bool:
        return self._topics.get(topic, _Topic("")).type in HEADER_TYPES

    def stamps(self, topic: str) -> np.ndarray | None:
        """Header stamps (int64 ns) in receive order, or None when the type has no Header."""
        if topic in self._stamps:
            return self._stamps[topic]
        t = self._topics.get(topic)
        if t is None or t.type not in HEADER_TYPES:
            self._stamps[topic] = None
            return None
        out = np.zeros(len(t.log), np.int64)
        fb = (self._fallback or {}).get(topic)
        for i in range(len(t.log)):
            b = fb[int(t.offset[i])][:12] if int(t.chunk[i]) < 0 else self._read(t, i, 12)
            if len(b) < 12:
                out[i] = 0
                continue
            big = b[1] == 0x00 and b[0] == 0x00  # encapsulation CDR_BE = 0x0000, CDR_LE = 0x0001
            sec, nsec = struct.unpack_from(">iI" if big else "<iI", b, 4)
            out[i] = sec * 1_000_000_000 + nsec
        self._stamps[topic] = out
        return out

    def decoded(self, topic: str, indices=None) -> list:
        """Messages of ``topic`` decoded with the bag's stored schema (mcap_ros2); [] if no schema."""
        from mcap_ros2.decoder import DecoderFactory

        summary_ch = None
        for s in self.reader._summaries:
            for ch in s.channels.values():
                if ch.topic == topic:
                    summary_ch = (ch, s.schemas.get(ch.schema_id))
                    break
            if summary_ch:
                break
        if not summary_ch or summary_ch[1] is None or not summary_ch[1].data:
            return []
        dec = DecoderFactory().decoder_for(summary_ch[0].message_encoding, summary_ch[1])
        if dec is None:
            return []
        out = []
        for b in self.payloads(topic, indices):
            try:
                out.append(dec(b))
            except Exception:  # noqa: BLE001 - a malformed message is skipped, not a crash
                out.append(None)
        return out

    def close(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        self.reader.close()

    def __enter__(self) -> "BagData":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _align(p: int, n: int) -> int:
    """Align offset ``p`` (relative to the data after the 4-byte encapsulation) to ``n``."""
    r = (p - 4) % n
    return p if r == 0 else p + n - r


_JS_CACHE: list = [None]  # [(prefix bytes, names, end offset)]: one slot, replaced whole (thread-safe reads)


def parse_joint_state(b: bytes) -> tuple[int, list[str], np.ndarray]:
    """``(stamp ns, names, positions (n,) float64)`` from sensor_msgs/JointState CDR bytes.

    Reads the header, the name sequence and the position sequence only (velocity and effort
    are not touched). A message whose frame_id and names are byte-identical to the previous
    one's reuses them (a stream repeats its names). Raises ValueError on truncated or
    malformed bytes.
    """
    c = _JS_CACHE[0]
    if c is not None and b[1:2] == b"\x01" and b[12:c[2]] == c[0]:
        p = c[2]
        try:
            (npos,) = struct.unpack_from("<I", b, _align(p, 4))
            q = _align(p, 4) + 4
            q = _align(q, 8)
            if q + 8 * npos <= len(b):
                sec, nsec = struct.unpack_from("<iI", b, 4)
                return sec * 1_000_000_000 + nsec, c[1], np.frombuffer(b, "<f8", npos, q).astype(np.float64)
        except struct.error:
            pass
    try:
        e = "<" if b[1] == 1 else ">"
        sec, nsec = struct.unpack_from(e + "iI", b, 4)
        p = 12
        (n,) = struct.unpack_from(e + "I", b, p)  # frame_id
        p += 4 + n
        p = _align(p, 4)
        (count,) = struct.unpack_from(e + "I", b, p)
        p += 4
        names = []
        for _ in range(count):
            p = _align(p, 4)
            (n,) = struct.unpack_from(e + "I", b, p)
            names.append(b[p + 4:p + 4 + n - 1].decode("utf-8", "replace"))
            p += 4 + n
        if e == "<":
            _JS_CACHE[0] = (bytes(b[12:p]), names, p)
        p = _align(p, 4)
        (npos,) = struct.unpack_from(e + "I", b, p)
        p += 4
        p = _align(p, 8)
        if p + 8 * npos > len(b):
            raise ValueError("truncated position sequence")
        pos = np.frombuffer(b, dtype=e + "f8", count=npos, offset=p).astype(np.float64)
    except (struct.error, IndexError) as exc:
        raise ValueError(f"malformed JointState: {exc}") from None
    return sec * 1_000_000_000 + nsec, names, pos
