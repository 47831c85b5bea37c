"""BagReader: read a rosbag2 MCAP bag directory (ours or rosbag2's), no ROS needed.

Messages come in log-time order across all split files (a k-way merge of the
files' time-ordered iterators), filtered by topic and an inclusive time range,
as raw CDR bytes or, with ``decode=True``, decoded by ``mcap_ros2`` from the
schema stored in the file (so decoding needs no installed message package).

A bag directory that is not the whole recording (:func:`robot_capture.bag.completeness.check_bag`
rules: a ``.mcap`` file metadata.yaml does not list, a listed file missing, a file without
a footer: crash, power cut, truncation), or a file whose summary fails its CRC, raises
``IncompleteBagFileError`` with one line saying ``incomplete: run `robot-capture recover BAG```
and what is wrong.

Damaged chunks (DESIGN.md "Damaged chunks"): each chunk is decoded and checked on
its own (``robot_capture.bag.chunks``): framing, decompression, size and, with
``validate_crc`` (the default), its CRC32. A chunk that fails is skipped, logged
and listed in ``BagReader.damaged_chunks``; every message of every other chunk is
still returned, and no byte of a failed chunk is ever handed on as data.
"""
from __future__ import annotations

import heapq
import inspect
import logging
import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from mcap.exceptions import McapError
from mcap.reader import McapReader, make_reader

from robot_capture.bag.chunks import (ChunkDamagedError, DamagedChunk, chunk_records, decode_chunk_body,
                                      message_fields, verify_chunk_body)
from robot_capture.bag.completeness import check_folder, list_mcap_files, load_summary
from robot_capture.bag.errors import NotABagError
from robot_capture.bag.metadata import METADATA_FILENAME, BagMetadata, FileInfo, TopicMeta, read_metadata
from robot_capture.bag.qos import load_qos_list

__all__ = ["BagMessage", "BagReader", "TopicInfo", "list_mcap_files"]

log = logging.getLogger(__name__)


@dataclass
class TopicInfo:
    """One topic of a bag. ``qos``: offered profiles (v9 dicts)."""

    type: str
    count: int
    qos: list = field(default_factory=list)
    serialization_format: str = "cdr"
    type_hash: str = ""


@dataclass
class BagMessage:
    """One message. Times in ns since the epoch; ``message`` is set with ``decode=True``
    (None if the type has no stored definition)."""

    topic: str
    type: str
    data: bytes
    log_time_ns: int
    publish_time_ns: int
    message: Any = None


class BagReader:
    """Open a bag directory (or a single ``.mcap`` file).

    Args:
        bag_dir: bag directory or one ``.mcap`` file.
        validate_crc: check each chunk's CRC32 before using it (chunks with CRC 0,
            e.g. rosbag2's, cannot be checked; ``crc_checked`` counts those that were).

    Attributes:
        path: the bag directory. files: the MCAP files in split order.
        metadata: BagMetadata (from metadata.yaml, or rebuilt from the files' summaries;
            a metadata.yaml that does not parse is reported in ``problems`` and rebuilt).
        topics: dict topic -> TopicInfo.
        damaged_chunks: DamagedChunk list, filled as chunks are read (``messages``, ``check``).
        problems: one line per other damage met (unreadable metadata.yaml or records).

    Raises:
        NotABagError: no such directory, or neither metadata.yaml nor .mcap files in it.
        IncompleteBagFileError: the bag is incomplete (``completeness.check_bag`` rules: unlisted
            or missing files, a file without summary/footer) or a summary is damaged (run
            ``recover``); a bag being recorded says so instead.
    """

    def __init__(self, bag_dir, validate_crc: bool = True):
        self.validate_crc = bool(validate_crc)
        self.damaged_chunks: list[DamagedChunk] = []
        self.problems: list[str] = []
        self.crc_checked = 0
        self._damaged_seen: set = set()
        p = Path(bag_dir)
        if p.is_file() and p.suffix == ".mcap":
            files, p = [p], p.parent
        elif not p.is_dir():
            raise NotABagError(f"{p}: not a bag directory (does not exist or is not a directory)")
        else:
            files = None
        self.path = p
        has_meta = (p / METADATA_FILENAME).is_file() and files is None
        meta = None
        if has_meta:
            try:
                meta = read_metadata(p)
            except (ValueError, OSError) as exc:
                self.problems.append(f"{p / METADATA_FILENAME}: unreadable ({exc}); using the files' summaries")
                log.warning(self.problems[-1])
        if files is None:
            files = check_folder(p, list_mcap_files(p), meta)
        if not files and meta is None:
            raise NotABagError(f"{p}: not a bag directory (no metadata.yaml and no .mcap files)")
        if meta is not None and meta.storage_identifier != "mcap":
            raise NotABagError(f"{p}: storage {meta.storage_identifier!r} is not supported (only mcap)")
        if meta is not None and meta.compression_format:
            raise NotABagError(f"{p}: rosbag2 {meta.compression_mode or 'file'} compression "
                               f"{meta.compression_format!r} is not supported (MCAP chunk compression is)")
        self.files = files
        self._summaries = [load_summary(f, p) for f in files]
        self.metadata = meta if meta is not None else self._metadata_from_summaries()
        self.topics = self._topics()

    # ---- summaries ----------------------------------------------------------------------
    def _metadata_from_summaries(self) -> BagMetadata:
        topics: dict[str, TopicMeta] = {}
        files = []
        for f, s in zip(self.files, self._summaries):
            st = s.statistics
            n = st.message_count if st else 0
            files.append(FileInfo(path=f.name, starting_time_ns=st.message_start_time if n else 0,
                                  duration_ns=(st.message_end_time - st.message_start_time) if n else 0,
                                  message_count=n))
            for cid, ch in s.channels.items():
                schema = s.schemas.get(ch.schema_id)
                t = topics.get(ch.topic)
                if t is None:
                    t = topics[ch.topic] = TopicMeta(
                        name=ch.topic, type=schema.name if schema else "",
                        serialization_format=ch.message_encoding,
                        offered_qos_profiles=_safe_qos(ch.metadata.get("offered_qos_profiles")),
                        type_description_hash=ch.metadata.get("topic_type_hash", ""))
                t.message_count += (st.channel_message_counts.get(cid, 0) if st else 0)
        with_msgs = [fi for fi in files if fi.message_count]
        start = min((fi.starting_time_ns for fi in with_msgs), default=0)
        end = max((fi.starting_time_ns + fi.duration_ns for fi in with_msgs), default=0)
        custom, distro = {}, ""
        rec = self.metadata_records().get("rosbag2", {})
        if rec.get("serialized_metadata"):
            import yaml

            try:
                doc = yaml.safe_load(rec["serialized_metadata"]) or {}
                custom = {str(k): str(v) for k, v in (doc.get("custom_data") or {}).items()}
                distro = str(doc.get("ros_distro", "") or "")
            except (yaml.YAMLError, AttributeError):
                pass
        return BagMetadata(duration_ns=end - start, starting_time_ns=start,
                           message_count=sum(fi.message_count for fi in files), topics=list(topics.values()),
                           relative_file_paths=[fi.path for fi in files], files=files,
                           custom_data=custom, ros_distro=distro or rec.get("ROS_DISTRO", ""))

    def _topics(self) -> dict[str, TopicInfo]:
        return {t.name: TopicInfo(type=t.type, count=t.message_count, qos=list(t.offered_qos_profiles),
                                  serialization_format=t.serialization_format, type_hash=t.type_description_hash)
                for t in self.metadata.topics}

    @property
    def chunk_compression(self) -> set[str]:
        """The chunk compressions used in the files (``none``, ``lz4``, ``zstd``)."""
        out = set()
        for s in self._summaries:
            for ci in s.chunk_indexes:
                out.add(ci.compression or "none")
        return out

    # ---- messages -----------------------------------------------------------------------
    def messages(self, topics=None, start_ns: int | None = None, end_ns: int | None = None,
                 decode: bool = False) -> Iterator[BagMessage]:
        """Iterate messages in log-time order across files, skipping damaged chunks.

        Args:
            topics: iterable of topic names (None = all).
            start_ns, end_ns: inclusive log-time bounds in ns (None = open).
            decode: also decode with mcap_ros2 (``BagMessage.message``).

        A chunk that fails its checks is skipped whole and appended to
        ``damaged_chunks`` (logged once); iteration goes on with the next chunk.
        """
        topic_set = None if topics is None else set(topics)
        decoder_factory = None
        if decode:
            from mcap_ros2.decoder import DecoderFactory

            decoder_factory = DecoderFactory()
        iters = [self._file_messages(i, f, s, topic_set, start_ns, end_ns)
                 for i, (f, s) in enumerate(zip(self.files, self._summaries))]
        decoders: dict = {}
        for t, i, schema, ch, data, pub in heapq.merge(*iters, key=lambda x: (x[0], x[1])):
            msg = None
            if decode and schema is not None:
                key = (i, schema.id)
                dec = decoders.get(key, False)
                if dec is False:
                    dec = _decoder(decoder_factory, ch, schema)
                    decoders[key] = dec
                if dec is not None:
                    try:
                        msg = dec(data)
                    except Exception as exc:  # noqa: BLE001 - an undecodable payload: keep the raw bytes
                        log.warning("cannot decode a %s message on %s: %s", schema.name, ch.topic, exc)
            yield BagMessage(topic=ch.topic, type=schema.name if schema else "", data=data,
                             log_time_ns=t, publish_time_ns=pub, message=msg)

    def check(self) -> list[DamagedChunk]:
        """Decode and check every chunk of every file (no message is kept); returns
        ``damaged_chunks``. Use before QA or export to know what a bag has lost."""
        for _m in self.messages():
            pass
        return self.damaged_chunks

    def _file_messages(self, i: int, path: Path, summary, topics, start_ns, end_ns):
        """(log_time, i, schema, channel, data, publish_time) of one file in log-time order:
        chunks by start time, a heap holding decoded messages until no later chunk can precede them."""
        channels, schemas = summary.channels, summary.schemas
        wanted = None if topics is None else {cid for cid, ch in channels.items() if ch.topic in topics}
        cis = []
        for ci in summary.chunk_indexes:
            if start_ns is not None and ci.message_end_time < start_ns:
                continue
            if end_ns is not None and ci.message_start_time > end_ns:
                continue
            if wanted is not None and ci.message_index_offsets and not wanted & set(ci.message_index_offsets):
                continue
            cis.append(ci)
        cis.sort(key=lambda c: (c.message_start_time, c.chunk_start_offset))
        if not cis:
            if not summary.chunk_indexes and summary.statistics and summary.statistics.message_count:
                yield from self._unindexed_messages(i, path, summary, topics, start_ns, end_ns)
            return
        heap: list = []
        with open(path, "rb") as h:
            size = os.fstat(h.fileno()).st_size
            for k, ci in enumerate(cis):
                while heap and heap[0][0] < ci.message_start_time:
                    t, _k, _j, item = heapq.heappop(heap)
                    yield (t, i) + item
                records = self._read_chunk(h, size, path, ci)
                for j, (op, body) in enumerate(records):
                    if op != 0x05:
                        continue
                    cid, _seq, t, pub, data = message_fields(body)
                    ch = channels.get(cid)
                    if ch is None or (wanted is not None and cid not in wanted):
                        continue
                    if (start_ns is not None and t < start_ns) or (end_ns is not None and t > end_ns):
                        continue
                    heapq.heappush(heap, (t, k, j, (schemas.get(ch.schema_id), ch, bytes(data), pub)))
        while heap:
            t, _k, _j, item = heapq.heappop(heap)
            yield (t, i) + item

    def _read_chunk(self, h, size: int, path: Path, ci) -> list:
        """The records of the chunk at ``ci``; [] (and one DamagedChunk) if it fails a check."""
        off, length = ci.chunk_start_offset, ci.chunk_length
        try:
            if off < 8 or length < 9 or off + length > size:
                raise ChunkDamagedError(f"chunk index points outside the file ({off}+{length} > {size})")
            h.seek(off)
            raw = h.read(length)
            opcode, rec_len = struct.unpack_from("<BQ", raw, 0)
            if opcode != 0x06 or rec_len != length - 9:
                raise ChunkDamagedError(f"no chunk record at the indexed offset (opcode {opcode:#x})")
            _s, _e, data = decode_chunk_body(memoryview(raw)[9:], self.validate_crc)
            recs = chunk_records(data)
            if self.validate_crc and struct.unpack_from("<I", raw, 9 + 24)[0]:
                self.crc_checked += 1
            return recs
        except (ChunkDamagedError, OSError, struct.error) as exc:
            self._note_damaged(path, off, str(exc), h, size, ci)
            return []

    def _note_damaged(self, path: Path, off: int, reason: str, h, size: int, ci) -> None:
        key = (str(path), off)
        if key not in self._damaged_seen:
            self._damaged_seen.add(key)
            d = DamagedChunk(str(path), off, reason, _indexed_count(h, size, ci) if ci is not None else -1)
            self.damaged_chunks.append(d)
            log.warning("skipping damaged chunk: %s", d)

    def verify_chunks(self) -> list[DamagedChunk]:
        """Check every chunk of every file (framing, decompression, size, CRC32 with
        ``validate_crc``, inner record framing) without parsing or keeping a message: the
        cheap form of :meth:`check` (an uncompressed chunk is CRC'd in place, on an mmap).

        Returns ``damaged_chunks`` (the failures are appended there too). A file without a
        chunk index is read through the checked linear reader; a failure there counts as
        one damaged chunk at offset 0."""
        for i, (path, summary) in enumerate(zip(self.files, self._summaries)):
            if not summary.chunk_indexes:
                if summary.statistics and summary.statistics.message_count:
                    n = len(self.problems)
                    for _m in self._unindexed_messages(i, path, summary, None, None, None):
                        pass
                    for line in self.problems[n:]:
                        self._note_damaged(path, 0, line, None, 0, None)
                continue
            with open(path, "rb") as h:
                size = os.fstat(h.fileno()).st_size
                buf = mmap.mmap(h.fileno(), 0, access=mmap.ACCESS_READ)
                try:
                    for ci in summary.chunk_indexes:
                        self._verify_chunk(buf, h, size, path, ci)
                finally:
                    buf.close()
        return self.damaged_chunks

    def _verify_chunk(self, buf, h, size: int, path: Path, ci) -> None:
        off, length = ci.chunk_start_offset, ci.chunk_length
        try:
            if off < 8 or length < 9 or off + length > size:
                raise ChunkDamagedError(f"chunk index points outside the file ({off}+{length} > {size})")
            opcode, rec_len = struct.unpack_from("<BQ", buf, off)
            if opcode != 0x06 or rec_len != length - 9:
                raise ChunkDamagedError(f"no chunk record at the indexed offset (opcode {opcode:#x})")
            with memoryview(buf)[off + 9:off + length] as body:
                self.crc_checked += verify_chunk_body(body, self.validate_crc)
        except (ChunkDamagedError, struct.error) as exc:
            self._note_damaged(path, off, str(exc), h, size, ci)

    def _unindexed_messages(self, i, path, summary, topics, start_ns, end_ns):
        """A file with messages but no chunk index: the mcap library's linear reader."""
        try:
            with open(path, "rb") as h:
                for schema, ch, m in make_reader(h, validate_crcs=self.validate_crc).iter_messages(
                        topics=None if topics is None else list(topics), log_time_order=True,
                        **_time_range(start_ns, end_ns)):
                    yield m.log_time, i, schema, ch, bytes(m.data), m.publish_time
        except Exception as exc:  # noqa: BLE001 - damaged unindexed data: stop this file, report
            self.problems.append(f"{path}: unindexed messages unreadable after some point ({exc})")
            log.warning(self.problems[-1])

    # ---- records ------------------------------------------------------------------------
    def metadata_records(self) -> dict[str, dict[str, str]]:
        """MCAP Metadata records by name (the last one wins, e.g. ``episode``, ``rosbag2``).
        A file whose records cannot be read is skipped and noted in ``problems``."""
        out: dict[str, dict[str, str]] = {}
        for f in self.files:
            try:
                with open(f, "rb") as h:
                    for rec in make_reader(h).iter_metadata():
                        out[rec.name] = dict(rec.metadata)
            except (McapError, EOFError, ValueError, OSError, struct.error, UnicodeDecodeError) as exc:
                self._problem(f"{f}: metadata records unreadable ({type(exc).__name__}: {exc})")
        return out

    def attachments(self) -> dict[str, tuple[str, bytes]]:
        """MCAP attachments by name -> (media_type, data); duplicates across split files collapse.
        Attachments failing their CRC are left out and noted in ``problems``."""
        out: dict[str, tuple[str, bytes]] = {}
        for f in self.files:
            try:
                with open(f, "rb") as h:
                    for a in make_reader(h).iter_attachments():
                        out[a.name] = (a.media_type, bytes(a.data))
            except (McapError, EOFError, ValueError, OSError, struct.error, UnicodeDecodeError) as exc:
                self._problem(f"{f}: attachments unreadable ({type(exc).__name__}: {exc})")
        return out

    def _problem(self, line: str) -> None:
        if line not in self.problems:
            self.problems.append(line)
            log.warning(line)

    def close(self) -> None:
        """Nothing to release (files are opened per call); kept for the context manager."""

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _indexed_count(h, size: int, ci) -> int:
    """Messages the chunk's MessageIndex records list (-1 if they cannot be read)."""
    try:
        pos, end = ci.chunk_start_offset + ci.chunk_length, ci.chunk_start_offset + ci.chunk_length + \
            ci.message_index_length
        if not ci.message_index_length or end > size:
            return -1
        h.seek(pos)
        raw = h.read(end - pos)
        n, at = 0, 0
        while at + 15 <= len(raw):
            op, length, _cid, nbytes = struct.unpack_from("<BQHI", raw, at)
            if op != 0x07:
                return -1
            n += nbytes // 16
            at += 9 + length
        return n
    except (OSError, struct.error):
        return -1


def _time_range(start_ns, end_ns) -> dict:
    """Inclusive bounds in the keyword names of the installed mcap version."""
    if "starting_at" in inspect.signature(McapReader.iter_messages).parameters:
        return {"starting_at": start_ns, "ending_at": end_ns}
    return {"start_time": start_ns, "end_time": None if end_ns is None else end_ns + 1}


def _decoder(factory, channel, schema):
    """An mcap_ros2 decoder for the schema, or None (no stored definition, or a bad one)."""
    if not schema.data:
        return None
    try:
        return factory.decoder_for(channel.message_encoding, schema)
    except Exception as exc:  # noqa: BLE001 - a bad stored schema: keep the raw bytes
        log.warning("cannot build a decoder for %s: %s", schema.name, exc)
        return None


def _safe_qos(value) -> list:
    try:
        return load_qos_list(value)
    except ValueError:
        return []
