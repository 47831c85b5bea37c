"""Recover a bag after a crash: rebuild readable MCAP files and metadata.yaml.

After a SIGKILL, a power cut or a truncated copy, an MCAP file may lack its footer
and summary, and may end in a half-written record; metadata.yaml may be stale or
missing. ``recover(bag_dir)``:

1. For each ``*.mcap`` file (split order): if it opens with a valid summary, keep it.
   Otherwise scan it record by record, checking every record's length against the
   bytes present (the ``mcap`` StreamReader silently accepts short reads, which
   would yield a truncated last message), decompressing chunks and checking their
   sizes (and CRCs when set), and stop at the first incomplete or corrupt record.
   Every complete message, with its schema, channel, metadata and attachments, is
   rewritten to a new file, which replaces the original; the original is kept as
   ``<file>.orig`` (never deleted).
2. metadata.yaml is rebuilt from what the files hold (topics, types, QoS, type
   hashes, per-file and per-topic counts and times); ``custom_data`` and
   ``ros_distro`` are kept from the old metadata.yaml or a ``rosbag2`` record.
   The old metadata.yaml, if any, is kept as ``metadata.yaml.orig``.

The report gives recovered messages per topic and per file.
"""
from __future__ import annotations

import io
import logging
import mmap
import os
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mcap.data_stream import ReadDataStream
from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.reader import make_reader
from mcap.records import Attachment, Channel, Chunk, Message, Metadata, Schema

from robot_capture.bag.errors import BagError, NotABagError
from robot_capture.bag.lock import LOCK_NAME, is_recording
from robot_capture.bag.mcap_file import McapFileWriter
from robot_capture.bag.metadata import (METADATA_FILENAME, BagMetadata, FileInfo, TopicMeta,
                                        read_metadata, write_metadata)
from robot_capture.bag.qos import load_qos_list
from robot_capture.bag.reader import list_mcap_files

__all__ = ["FileRecovery", "RecoveryReport", "recover"]

log = logging.getLogger(__name__)

_MAGIC = b"\x89MCAP0\r\n"
_CHUNK_REWRITE_SIZE = 4 * 1024 * 1024
_PROGRESS_BYTES = 256 * 1024 * 1024


@dataclass
class FileRecovery:
    """What happened to one file. ``status``: ``intact`` (had a valid summary, untouched),
    ``rebuilt`` (rewritten from its complete records), ``unreadable`` (nothing usable;
    moved aside). ``stopped_at``: why the scan stopped (rebuilt files)."""

    path: str
    status: str
    messages: int = 0
    topics: dict = field(default_factory=dict)
    backup: str | None = None
    stopped_at: str = ""
    start_ns: int = 0
    end_ns: int = 0


@dataclass
class RecoveryReport:
    """Result of ``recover``. ``topics``: recovered messages per topic over all files."""

    bag_dir: str
    files: list[FileRecovery]
    topics: dict[str, int]
    metadata_path: str

    @property
    def message_count(self) -> int:
        return sum(self.topics.values())

    def format(self) -> str:
        lines = [f"recovered bag {self.bag_dir}: {self.message_count} messages"]
        for f in self.files:
            extra = f" (original kept as {os.path.basename(f.backup)})" if f.backup else ""
            why = f"; scan stopped: {f.stopped_at}" if f.stopped_at else ""
            lines.append(f"  {os.path.basename(f.path)}: {f.status}, {f.messages} messages{extra}{why}")
        width = max((len(t) for t in self.topics), default=5)
        lines.append("  per topic:")
        for t, n in self.topics.items():
            lines.append(f"    {t:<{width}}  {n}")
        lines.append(f"  wrote {self.metadata_path}")
        return "\n".join(lines)


def _backup_path(p: Path) -> Path:
    cand = p.with_name(p.name + ".orig")
    i = 1
    while cand.exists():
        cand = p.with_name(f"{p.name}.orig.{i}")
        i += 1
    return cand


def _decompress(chunk: Chunk) -> bytes:
    if chunk.compression == "":
        data = chunk.data
    elif chunk.compression == "zstd":
        import zstandard

        data = zstandard.ZstdDecompressor().decompress(chunk.data, max_output_size=chunk.uncompressed_size)
    elif chunk.compression == "lz4":
        import lz4.frame

        data = lz4.frame.decompress(chunk.data)
    else:
        raise ValueError(f"unknown chunk compression {chunk.compression!r}")
    if len(data) != chunk.uncompressed_size:
        raise ValueError(f"chunk decompressed to {len(data)} bytes, header says {chunk.uncompressed_size}")
    if chunk.uncompressed_crc and zlib.crc32(data) != chunk.uncompressed_crc:
        raise ValueError("chunk CRC mismatch")
    return data


def _records(buf, end: int, pos: int):
    """Yield (opcode, body) of complete records in ``buf[pos:end]``; stops at a short one."""
    while pos + 9 <= end:
        opcode, length = struct.unpack_from("<BQ", buf, pos)
        if pos + 9 + length > end:
            return
        yield opcode, memoryview(buf)[pos + 9:pos + 9 + length], pos
        pos += 9 + length


def _parse(opcode: int, body: memoryview):
    stream = ReadDataStream(io.BytesIO(body))
    if opcode == Opcode.MESSAGE:
        return Message.read(stream, len(body))
    return {Opcode.SCHEMA: Schema, Opcode.CHANNEL: Channel, Opcode.METADATA: Metadata,
            Opcode.ATTACHMENT: Attachment, Opcode.CHUNK: Chunk}[opcode].read(stream)


class _Scan:
    """Rewrites the complete records of a damaged file, in order, into ``writer``."""

    def __init__(self, writer: McapFileWriter):
        self.w = writer
        self.schemas: dict[int, Schema] = {}
        self.channels: dict[int, Channel] = {}
        self.stopped_at = ""
        self.orphans = 0

    def take(self, opcode: int, body: memoryview) -> None:
        if opcode == Opcode.CHUNK:
            chunk = _parse(opcode, body)
            if len(chunk.data) != struct.unpack_from("<Q", body, 28 + 4 + len(chunk.compression))[0]:
                raise ValueError("short chunk")
            data = _decompress(chunk)
            for op, inner, _pos in _records(data, len(data), 0):
                self.take(op, inner)
            return
        if opcode not in (Opcode.SCHEMA, Opcode.CHANNEL, Opcode.MESSAGE, Opcode.METADATA, Opcode.ATTACHMENT):
            return
        rec = _parse(opcode, body)
        w = self.w
        if opcode == Opcode.SCHEMA:
            if rec.id not in self.schemas:
                self.schemas[rec.id] = rec
                w.add_schema(rec.id, rec.name, rec.encoding, bytes(rec.data))
        elif opcode == Opcode.CHANNEL:
            if rec.id not in self.channels:
                self.channels[rec.id] = rec
                w.add_channel(rec.id, rec.schema_id, rec.topic, rec.message_encoding, dict(rec.metadata))
        elif opcode == Opcode.MESSAGE:
            if rec.channel_id in self.channels:
                w.add_message(rec.channel_id, rec.log_time, rec.publish_time, bytes(rec.data))
                if w.chunk_len >= _CHUNK_REWRITE_SIZE:
                    w.flush_chunk()
            else:
                self.orphans += 1
        elif opcode == Opcode.METADATA:
            if rec.name != "rosbag2":
                w.add_metadata(rec.name, dict(rec.metadata))
        else:
            w.add_attachment(rec.name, bytes(rec.data), rec.media_type, rec.log_time, rec.create_time)


def _first_chunk_compression(buf, end: int) -> str:
    for opcode, body, _pos in _records(buf, end, 8):
        if opcode == Opcode.CHUNK and len(body) >= 32:
            n = struct.unpack_from("<I", body, 28)[0]
            name = bytes(body[32:32 + n]).decode("utf-8", "replace")
            return {"": "none", "lz4": "lz4", "zstd": "zstd"}.get(name, "none")
    return "none"


def _rebuild(path: Path, out: Path, progress=None) -> tuple[_Scan | None, McapFileWriter | None, str]:
    """Scan ``path`` and rewrite its complete records to ``out``. Returns (scan, writer
    (flushed, not finished), why the scan stopped); (None, None, why) if not MCAP."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            return None, None, "file shorter than the MCAP magic"
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        if buf[:8] != _MAGIC:
            return None, None, "no MCAP magic"
        w = McapFileWriter(out, compression=_first_chunk_compression(buf, size),
                           chunk_size=_CHUNK_REWRITE_SIZE, library="robot_capture recover")
        s = _Scan(w)
        pos = 8
        next_report = _PROGRESS_BYTES
        try:
            while True:
                if progress and pos >= next_report:
                    progress(f"{path.name}: scanned {pos / 1e6:.0f} of {size / 1e6:.0f} MB")
                    next_report += _PROGRESS_BYTES
                if pos + 9 > size:
                    s.stopped_at = f"{size - pos} trailing byte(s) at byte {pos}" if pos < size else ""
                    break
                opcode, length = struct.unpack_from("<BQ", buf, pos)
                if pos + 9 + length > size:
                    s.stopped_at = (f"incomplete record (opcode {opcode:#x}) at byte {pos}: "
                                    f"{length} bytes announced, {size - pos - 9} present")
                    break
                if opcode in (Opcode.DATA_END, Opcode.FOOTER):
                    break
                mark = (w.pos, w.chunk_messages)
                try:
                    with memoryview(buf)[pos + 9:pos + 9 + length] as body:
                        s.take(opcode, body)
                except (ValueError, KeyError, McapError, struct.error, UnicodeDecodeError, EOFError,
                        RuntimeError) as exc:
                    s.stopped_at = f"corrupt record (opcode {opcode:#x}) at byte {pos}: {exc}"
                    if mark[1] == 0 and w.chunk_messages:  # drop a half-taken chunk's messages
                        w._reset_chunk()
                    break
                pos += 9 + length
            w.flush_chunk()
        except BaseException:
            w.close_fd()
            raise
        return s, w, s.stopped_at
    finally:
        buf.close()


def _file_summary(path: Path):
    """(summary, rosbag2 record) if the file opens with a valid summary, else (None, None)."""
    try:
        with open(path, "rb") as h:
            r = make_reader(h)
            summary = r.get_summary()
            if summary is None:
                return None, None
            rec = None
            for m in r.iter_metadata():
                if m.name == "rosbag2":
                    rec = dict(m.metadata)
            return summary, rec
    except Exception:  # noqa: BLE001 - any parse failure means "needs rebuilding"
        return None, None


def recover(bag_dir, progress=None) -> RecoveryReport:
    """Rebuild the bag's damaged MCAP files and its metadata.yaml (see module docstring).

    Args:
        bag_dir: the bag directory.
        progress: optional callable(str) for one line per file.

    Returns:
        RecoveryReport (per-topic and per-file recovered counts).

    Raises:
        NotABagError: not a directory, or no .mcap file in it.
        BagError: a live process is still recording the bag.
        OSError: I/O failure while rewriting (originals are untouched until a rewrite
            is complete; then they are renamed, never deleted).
    """
    bag = Path(bag_dir)
    if not bag.is_dir():
        raise NotABagError(f"{bag}: not a bag directory")
    if is_recording(bag):
        raise BagError(f"{bag} is being recorded right now (its writer holds {LOCK_NAME}); "
                       "stop the recording before recovering")
    try:
        (bag / LOCK_NAME).unlink()  # stale: its writer is gone (the lock is not data)
    except OSError:
        pass
    files = list_mcap_files(bag)
    if not files:
        raise NotABagError(f"{bag}: no .mcap files to recover")
    old_meta = None
    if (bag / METADATA_FILENAME).is_file():
        try:
            old_meta = read_metadata(bag)
        except (ValueError, OSError) as exc:
            log.warning("old metadata.yaml unreadable (%s); rebuilding from the files", exc)
    reports: list[FileRecovery] = []
    topic_meta: dict[str, TopicMeta] = {}
    finfos: list[FileInfo] = []
    rosbag2_rec = None

    def add_channels(schemas, channels, counts):
        for cid, ch in channels.items():
            sc = schemas.get(ch.schema_id)
            t = topic_meta.get(ch.topic)
            if t is None:
                try:
                    qos = load_qos_list(ch.metadata.get("offered_qos_profiles"))
                except ValueError:
                    qos = []
                t = topic_meta[ch.topic] = TopicMeta(
                    name=ch.topic, type=sc.name if sc else "", serialization_format=ch.message_encoding,
                    offered_qos_profiles=qos, type_description_hash=ch.metadata.get("topic_type_hash", ""))
            t.message_count += counts.get(cid, 0)

    for path in files:
        summary, rec = _file_summary(path)
        if summary is not None:
            st = summary.statistics
            counts = dict(st.channel_message_counts) if st else {}
            n = st.message_count if st else 0
            fr = FileRecovery(str(path), "intact", n,
                              {summary.channels[c].topic: k for c, k in counts.items() if c in summary.channels},
                              start_ns=st.message_start_time if n else 0, end_ns=st.message_end_time if n else 0)
            add_channels(summary.schemas, summary.channels, counts)
            rosbag2_rec = rec or rosbag2_rec
        else:
            backup = _backup_path(path)
            tmp = path.with_name(path.name + ".recovering")
            if tmp.exists():
                tmp.unlink()
            scan, w, why = _rebuild(path, tmp, progress)
            if scan is None or (not scan.channels and w.message_count == 0):
                if w is not None:
                    w.close_fd()
                    tmp.unlink()
                os.replace(path, backup)
                reports.append(FileRecovery(str(path), "unreadable", 0, backup=str(backup), stopped_at=why))
                if progress:
                    progress(f"{path.name}: unreadable ({why}), moved to {backup.name}")
                continue
            counts = dict(w._stat_counts)
            start, end, n = w.start_time, w.end_time, w.message_count
            w.finish()
            os.replace(path, backup)
            os.replace(tmp, path)
            fr = FileRecovery(str(path), "rebuilt", n,
                              {scan.channels[c].topic: k for c, k in counts.items()},
                              backup=str(backup), stopped_at=why,
                              start_ns=start if n else 0, end_ns=end if n else 0)
            add_channels(scan.schemas, scan.channels, counts)
        reports.append(fr)
        finfos.append(FileInfo(path=path.name, starting_time_ns=fr.start_ns,
                               duration_ns=fr.end_ns - fr.start_ns, message_count=fr.messages))
        if progress:
            progress(f"{path.name}: {fr.status}, {fr.messages} messages")

    custom, distro = {}, ""
    if old_meta is not None:
        custom, distro = dict(old_meta.custom_data), old_meta.ros_distro
    elif rosbag2_rec:
        try:
            doc = yaml.safe_load(rosbag2_rec.get("serialized_metadata", "")) or {}
            custom = {str(k): str(v) for k, v in (doc.get("custom_data") or {}).items()}
            distro = str(doc.get("ros_distro", "") or "")
        except (yaml.YAMLError, AttributeError):
            pass
    with_msgs = [f for f in finfos if f.message_count]
    start = min((f.starting_time_ns for f in with_msgs), default=0)
    end = max((f.starting_time_ns + f.duration_ns for f in with_msgs), default=0)
    meta = BagMetadata(duration_ns=end - start, starting_time_ns=start,
                       message_count=sum(f.message_count for f in finfos), topics=list(topic_meta.values()),
                       relative_file_paths=[f.path for f in finfos], files=finfos, custom_data=custom,
                       ros_distro=distro or os.environ.get("ROS_DISTRO", "kilted"))
    if (bag / METADATA_FILENAME).is_file():
        shutil.copy2(bag / METADATA_FILENAME, _backup_path(bag / METADATA_FILENAME))
    mpath = write_metadata(bag, meta)
    return RecoveryReport(str(bag), reports, {t.name: t.message_count for t in topic_meta.values()}, str(mpath))
