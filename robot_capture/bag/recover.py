"""Recover a bag after a crash: rebuild readable MCAP files and metadata.yaml.

After a SIGKILL, a power cut or a truncated copy, an MCAP file may lack its footer
and summary, and may end in a half-written record; metadata.yaml may be stale or
missing. ``recover(bag_dir)``:

1. For each ``*.mcap`` file (split order): if it opens with a valid summary (footer,
   summary CRC) and every chunk passes its checks (``robot_capture.bag.chunks``:
   framing, decompression, size, CRC), keep it (``intact``). Otherwise scan it
   record by record, checking every record's length against the bytes present (the
   ``mcap`` StreamReader silently accepts short reads, which would yield a truncated
   last message). A chunk that fails its checks is skipped whole and counted
   (``damaged_chunks``); after bytes that do not frame as a record (a flipped
   length, a zeroed range), the scan searches forward for the next chunk that
   passes every check and goes on from there, so one damaged region never hides
   the chunks after it. Channels and schemas also come from the file's summary when
   it passes its CRC (so messages whose Channel record was damaged keep their topic).
   Every message of every good chunk, with its schema, channel, metadata and
   attachments, is rewritten (with chunk CRCs) to a new file, which replaces the
   original; the original is kept as ``<file>.orig`` (never deleted).
2. metadata.yaml is rebuilt from what the files hold (topics, types, QoS, type
   hashes, per-file and per-topic counts and times); ``custom_data`` and
   ``ros_distro`` are kept from the old metadata.yaml or a ``rosbag2`` record.
   The old metadata.yaml, if any, is kept as ``metadata.yaml.orig``.
3. When a file was rebuilt or the episode was never stopped, the episode is marked in
   ``custom_data``: ``episode.recovered: "true"``, ``episode.recovered_ns``, and
   ``episode.stop_reason: crash`` unless the recorder had written one; labels missing from
   ``custom_data`` are taken from the files' ``episode``/``episode_start`` records.

The report gives recovered messages per topic and per file.
"""
from __future__ import annotations

import io
import logging
import mmap
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mcap.data_stream import ReadDataStream
from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.reader import make_reader
from mcap.records import Attachment, Channel, Chunk, Message, Metadata, Schema

from robot_capture.bag.chunks import (ChunkDamagedError, DamagedChunk, chunk_records, decode_chunk_body,
                                      plausible_chunk_at)
from robot_capture.bag.errors import BagError, IncompleteBagFileError, NotABagError
from robot_capture.bag.lock import LOCK_NAME, is_recording
from robot_capture.bag.mcap_file import McapFileWriter
from robot_capture.bag.metadata import (METADATA_FILENAME, BagMetadata, FileInfo, TopicMeta,
                                        read_metadata, write_metadata)
from robot_capture.bag.qos import load_qos_list
from robot_capture.bag.reader import BagReader, _load_summary, list_mcap_files

__all__ = ["FileRecovery", "RecoveryReport", "recover"]

log = logging.getLogger(__name__)

_MAGIC = b"\x89MCAP0\r\n"
_CHUNK_REWRITE_SIZE = 4 * 1024 * 1024
_PROGRESS_BYTES = 256 * 1024 * 1024


@dataclass
class FileRecovery:
    """What happened to one file. ``status``: ``intact`` (had a valid summary, untouched),
    ``rebuilt`` (rewritten from its complete records), ``unreadable`` (nothing usable;
    moved aside). ``stopped_at``: why the scan stopped (rebuilt files).
    ``damaged_chunks``: chunks skipped because they failed a check (DamagedChunk);
    ``skipped_bytes``: bytes passed over while searching for the next good chunk."""

    path: str
    status: str
    messages: int = 0
    topics: dict = field(default_factory=dict)
    backup: str | None = None
    stopped_at: str = ""
    start_ns: int = 0
    end_ns: int = 0
    damaged_chunks: list = field(default_factory=list)
    skipped_bytes: int = 0


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
            if f.damaged_chunks or f.skipped_bytes:
                lost = sum(d.messages for d in f.damaged_chunks if d.messages > 0)
                lines.append(f"    {len(f.damaged_chunks)} damaged chunk(s) skipped"
                             + (f" (>= {lost} messages lost)" if lost else "")
                             + (f", {f.skipped_bytes} unframed byte(s) passed over" if f.skipped_bytes else ""))
                for d in f.damaged_chunks[:5]:
                    lines.append(f"      at byte {d.offset}: {d.reason}")
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

    def __init__(self, writer: McapFileWriter, path: Path):
        self.w = writer
        self.path = path
        self.schemas: dict[int, Schema] = {}
        self.channels: dict[int, Channel] = {}
        self.stopped_at = ""
        self.orphans = 0
        self.damaged: list[DamagedChunk] = []
        self.skipped_bytes = 0
        self.bad_records = 0  # non-chunk records that did not parse (skipped)

    def seed(self, summary) -> None:
        """Schemas and channels from a summary that passed its CRC."""
        for sc in summary.schemas.values():
            if sc.id not in self.schemas:
                self.schemas[sc.id] = sc
                self.w.add_schema(sc.id, sc.name, sc.encoding, bytes(sc.data))
        for ch in summary.channels.values():
            if ch.id not in self.channels and (ch.schema_id == 0 or ch.schema_id in self.schemas):
                self.channels[ch.id] = ch
                self.w.add_channel(ch.id, ch.schema_id, ch.topic, ch.message_encoding, dict(ch.metadata))

    def take_chunk_data(self, data: bytes) -> None:
        """The records of a chunk that passed its checks (schemas/channels first, then messages)."""
        records = chunk_records(data)
        parsed = []
        for op, inner in records:  # parse all before writing any, so a bad record drops the whole chunk
            if op in (Opcode.SCHEMA, Opcode.CHANNEL, Opcode.MESSAGE):
                parsed.append((op, inner, _parse(op, inner)))
        for op, inner, rec in parsed:
            self._add(op, rec)

    def take(self, opcode: int, body: memoryview, pos: int = 0) -> None:
        if opcode == Opcode.CHUNK:
            try:
                _s, _e, data = decode_chunk_body(body, validate_crc=True)
                self.take_chunk_data(data)
            except (ChunkDamagedError, ValueError, KeyError, McapError, struct.error, UnicodeDecodeError,
                    EOFError) as exc:
                self.damaged.append(DamagedChunk(str(self.path), pos, str(exc)))
            return
        if opcode not in (Opcode.SCHEMA, Opcode.CHANNEL, Opcode.MESSAGE, Opcode.METADATA, Opcode.ATTACHMENT):
            return
        self._add(opcode, _parse(opcode, body))

    def _add(self, opcode: int, rec) -> None:
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


_VALID_OPCODES = frozenset(range(0x01, 0x10))


_RESYNC_NEXT = frozenset({Opcode.SCHEMA, Opcode.CHANNEL, Opcode.CHUNK, Opcode.MESSAGE_INDEX, Opcode.METADATA,
                          Opcode.ATTACHMENT, Opcode.DATA_END})
_RESYNC_PARSE = {Opcode.SCHEMA: Schema, Opcode.CHANNEL: Channel, Opcode.METADATA: Metadata}


def _plausible_record_at(buf, pos: int, size: int) -> bool:
    """A Schema, Channel or Metadata record that parses to exactly its length and is
    followed by a likely record (these records carry no CRC: this is the best check there is)."""
    length = struct.unpack_from("<Q", buf, pos + 1)[0]
    nxt = pos + 9 + length
    if length < 4 or nxt + 9 > size or buf[nxt] not in _RESYNC_NEXT:
        return False
    try:
        with memoryview(buf)[pos + 9:nxt] as body:
            stream = ReadDataStream(io.BytesIO(body))
            _RESYNC_PARSE[buf[pos]].read(stream)
            return stream.count == length
    except (ValueError, McapError, struct.error, UnicodeDecodeError, EOFError):
        return False


def _next_good_record(buf, pos: int, size: int):
    """Offset of the first chunk passing every check (or Schema, Channel, Metadata record,
    see ``_plausible_record_at``) at or after ``pos``, or None."""
    nxt = {op: -2 for op in (Opcode.CHUNK, *_RESYNC_PARSE)}  # next occurrence of each opcode byte from pos
    while pos + 9 <= size:
        for op in nxt:
            if nxt[op] != -1 and nxt[op] < pos:
                nxt[op] = buf.find(bytes([op]), pos, size)
        cands = [q for q in nxt.values() if 0 <= q and q + 9 <= size]
        if not cands:
            return None
        q = min(cands)
        if buf[q] == Opcode.CHUNK and plausible_chunk_at(buf, q, size) is not None:
            return q
        if buf[q] in _RESYNC_PARSE and _plausible_record_at(buf, q, size):
            return q
        pos = q + 1
    return None


def _rebuild(path: Path, out: Path, progress=None, summary=None,
             progress_bytes=None) -> tuple[_Scan | None, McapFileWriter | None, str]:
    """Scan ``path`` and rewrite the records of its good chunks to ``out``. Returns (scan,
    writer (flushed, not finished), why the scan stopped); (None, None, why) if not MCAP.
    ``summary``: the file's summary if it passed its CRC (seeds schemas and channels)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            return None, None, "file shorter than the MCAP magic"
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        pos = 8
        if buf[:8] != _MAGIC:
            pos = _next_good_record(buf, 0, size)
            if pos is None:
                return None, None, "no MCAP magic and no readable chunk"
        w = McapFileWriter(out, compression=_first_chunk_compression(buf, size),
                           chunk_size=_CHUNK_REWRITE_SIZE, chunk_crc=True, library="robot_capture recover")
        s = _Scan(w, path)
        if pos != 8:
            s.skipped_bytes += pos
        next_report, next_bytes = _PROGRESS_BYTES, 0
        try:
            if summary is not None:
                s.seed(summary)
            while True:
                if progress and pos >= next_report:
                    progress(f"{path.name}: scanned {pos / 1e6:.0f} of {size / 1e6:.0f} MB")
                    next_report += _PROGRESS_BYTES
                if progress_bytes and pos >= next_bytes:
                    progress_bytes(path.name, pos, size)
                    next_bytes = pos + (8 << 20)
                if pos + 9 > size:
                    s.stopped_at = f"{size - pos} trailing byte(s) at byte {pos}" if pos < size else ""
                    break
                opcode, length = struct.unpack_from("<BQ", buf, pos)
                bad = ""
                if opcode not in _VALID_OPCODES:
                    bad = f"unknown opcode {opcode:#x} at byte {pos}"
                elif pos + 9 + length > size:
                    bad = (f"incomplete record (opcode {opcode:#x}) at byte {pos}: "
                           f"{length} bytes announced, {size - pos - 9} present")
                elif opcode == Opcode.FOOTER or (opcode == Opcode.DATA_END and length == 4):
                    break
                if not bad:
                    n_damaged = len(s.damaged)
                    try:
                        with memoryview(buf)[pos + 9:pos + 9 + length] as body:
                            s.take(opcode, body, pos)
                    except (ValueError, KeyError, McapError, struct.error, UnicodeDecodeError, EOFError,
                            RuntimeError) as exc:
                        bad = f"corrupt record (opcode {opcode:#x}) at byte {pos}: {exc}"
                        s.bad_records += 1
                    if not bad and len(s.damaged) == n_damaged:
                        pos += 9 + length
                        continue
                    # a damaged record's length cannot be trusted: search from its next byte
                    bad = bad or f"damaged chunk at byte {pos} ({s.damaged[-1].reason})"
                q = _next_good_record(buf, pos + 1, size)
                if q is None:
                    s.stopped_at = bad
                    break
                s.skipped_bytes += q - pos
                log.warning("%s: %s; resuming at the next good chunk, byte %d", path, bad, q)
                pos = q
            w.flush_chunk()
        except BaseException:
            w.close_fd()
            raise
        return s, w, s.stopped_at
    finally:
        buf.close()


def _file_summary(path: Path):
    """(summary, rosbag2 record, damaged chunks, problems) for a file whose summary opens
    and passes its CRC; (None, None, [], []) otherwise. Every chunk is decoded and checked."""
    try:
        summary = _load_summary(path, path.parent)
    except IncompleteBagFileError:
        return None, None, [], []
    try:
        r = BagReader(path)
        damaged = r.check()
        rec = r.metadata_records().get("rosbag2")
        return summary, rec, damaged, list(r.problems)
    except (BagError, ValueError, OSError) as exc:
        return summary, None, [], [str(exc)]


def _mark_recovered(custom: dict, files, reports) -> dict:
    """custom_data of a recovered episode: the ``recovered`` marker and a stop reason (see step 3)."""
    import time

    out = dict(custom)
    records: dict[str, dict] = {}
    for path in files:  # rewritten by now: every file has a summary
        try:
            with open(path, "rb") as h:
                for rec in make_reader(h).iter_metadata():
                    records[rec.name] = dict(rec.metadata)
        except (McapError, OSError, ValueError, EOFError, struct.error):
            continue
    labels = records.get("episode") or records.get("episode_start") or {}
    stopped = "episode.stop_time_ns" in out or "stop_time_ns" in labels
    if all(r.status == "intact" for r in reports) and (stopped or out.get("episode.recovered") == "true"):
        return out  # a clean or already recovered bag: recovering it again changes nothing
    for k, v in labels.items():
        out.setdefault(f"episode.{k}", str(v))
    out["episode.recovered"] = "true"
    out["episode.recovered_ns"] = str(time.time_ns())
    if not stopped or "episode.stop_reason" not in out:
        out["episode.stop_reason"] = "crash"
    return out


def recover(bag_dir, progress=None, progress_bytes=None) -> RecoveryReport:
    """Rebuild the bag's damaged MCAP files and its metadata.yaml (see module docstring).

    Args:
        bag_dir: the bag directory.
        progress: optional callable(str) for one line per file.
        progress_bytes: optional callable(file_name, bytes_done, file_bytes), called as each file
            is checked or scanned (for a progress bar with a percentage).

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
        summary, rec, damaged, problems = _file_summary(path)
        if summary is not None and not damaged and not problems:
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
            try:
                scan, w, why = _rebuild(path, tmp, progress, summary, progress_bytes)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
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
                              start_ns=start if n else 0, end_ns=end if n else 0,
                              damaged_chunks=scan.damaged, skipped_bytes=scan.skipped_bytes)
            add_channels(scan.schemas, scan.channels, counts)
        reports.append(fr)
        finfos.append(FileInfo(path=path.name, starting_time_ns=fr.start_ns,
                               duration_ns=fr.end_ns - fr.start_ns, message_count=fr.messages))
        if progress:
            progress(f"{path.name}: {fr.status}, {fr.messages} messages")
        if progress_bytes:
            size = path.stat().st_size if path.exists() else 0
            progress_bytes(path.name, size, size)

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
    custom = _mark_recovered(custom, [Path(f.path) for f in reports if Path(f.path).exists()], reports)
    with_msgs = [f for f in finfos if f.message_count]
    start = min((f.starting_time_ns for f in with_msgs), default=0)
    end = max((f.starting_time_ns + f.duration_ns for f in with_msgs), default=0)
    meta = BagMetadata(duration_ns=end - start, starting_time_ns=start,
                       message_count=sum(f.message_count for f in finfos), topics=list(topic_meta.values()),
                       relative_file_paths=[f.path for f in finfos], files=finfos, custom_data=custom,
                       ros_distro=distro or os.environ.get("ROS_DISTRO", ""))
    if (bag / METADATA_FILENAME).is_file():
        shutil.copy2(bag / METADATA_FILENAME, _backup_path(bag / METADATA_FILENAME))
    mpath = write_metadata(bag, meta)
    return RecoveryReport(str(bag), reports, {t.name: t.message_count for t in topic_meta.values()}, str(mpath))
