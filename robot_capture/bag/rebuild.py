"""Rebuild one damaged MCAP file from its good records (the file-level half of ``recover``).

:func:`rebuild_file` scans a file record by record, checking every record's length against
the bytes present (the ``mcap`` StreamReader silently accepts short reads, which would yield
a truncated last message). A chunk that fails its checks (``robot_capture.bag.chunks``:
framing, decompression, size, CRC) is skipped whole and counted; after bytes that do not
frame as a record (a flipped length, a zeroed range) the scan searches forward for the next
chunk that passes every check (or a Schema/Channel/Metadata record that parses to exactly
its length and is followed by a likely record) and goes on, so one damaged region never
hides the chunks after it. Every message of every good chunk, with its schema, channel,
metadata and attachments, is rewritten (with chunk CRCs) to a new file.

Schemas and channels may be given up front (``seed``): from the file's own summary when it
passes its CRC, and, from ``recover``, definitions the bag's other files agree on, so the
messages of intact chunks whose Channel records were all damaged keep their topic.
"""
from __future__ import annotations

import io
import logging
import mmap
import os
import struct
from pathlib import Path

from mcap.data_stream import ReadDataStream
from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.records import Attachment, Channel, Chunk, Message, Metadata, Schema

from robot_capture.bag.chunks import ChunkDamagedError, DamagedChunk, chunk_records, decode_chunk_body, \
    plausible_chunk_at
from robot_capture.bag.mcap_file import McapFileWriter

__all__ = ["Scan", "rebuild_file"]

log = logging.getLogger(__name__)

_MAGIC = b"\x89MCAP0\r\n"
_CHUNK_REWRITE_SIZE = 4 * 1024 * 1024
_PROGRESS_BYTES = 256 * 1024 * 1024


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


class Scan:
    """Rewrites the complete records of a damaged file, in order, into ``writer``."""

    def __init__(self, writer: McapFileWriter, path: Path):
        self.w = writer
        self.path = path
        self.schemas: dict[int, Schema] = {}
        self.channels: dict[int, Channel] = {}
        self.stopped_at = ""
        self.orphans = 0
        self.orphan_ids: set[int] = set()  # channel ids of messages dropped for want of a Channel record
        self.damaged: list[DamagedChunk] = []
        self.skipped_bytes = 0
        self.bad_records = 0  # non-chunk records that did not parse (skipped)

    def seed(self, schemas, channels) -> None:
        """Known definitions (``{id: Schema}``, ``{id: Channel}``, e.g. a summary's that passed
        its CRC); a channel whose schema is unknown is left out."""
        for sc in schemas.values():
            if sc.id not in self.schemas:
                self.schemas[sc.id] = sc
                self.w.add_schema(sc.id, sc.name, sc.encoding, bytes(sc.data))
        for ch in channels.values():
            if ch.id not in self.channels and (ch.schema_id == 0 or ch.schema_id in self.schemas):
                self.channels[ch.id] = ch
                self.w.add_channel(ch.id, ch.schema_id, ch.topic, ch.message_encoding, dict(ch.metadata))

    @property
    def missing_schema_ids(self) -> set[int]:
        """Schema ids the file's channels refer to whose Schema records were all damaged."""
        return {ch.schema_id for ch in self.channels.values() if ch.schema_id and ch.schema_id not in self.schemas}

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
                self.orphan_ids.add(rec.channel_id)
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
# records whose content the scan checks as it takes them (chunks: framing, CRC; attachments: CRC;
# definitions and metadata: they parse); any other record's length is taken on trust
_VERIFIED = frozenset({Opcode.CHUNK, Opcode.ATTACHMENT, *_RESYNC_PARSE})


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


def rebuild_file(path: Path, out: Path, progress=None, seeds=(),
                 progress_bytes=None) -> tuple[Scan | None, McapFileWriter | None, str]:
    """Scan ``path`` and rewrite the records of its good chunks to ``out``.

    Args:
        seeds: ``(schemas, channels)`` pairs of ``{id: Schema}``, ``{id: Channel}`` known before
            the scan, first wins (the file's own summary if it passed its CRC, then definitions
            from the bag's other files).
        progress: callable(str), one line per 256 MB scanned; progress_bytes: callable(name, done, total).

    Returns:
        (scan, writer (flushed, not finished), why the scan stopped); (None, None, why) if not MCAP.
    """
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
        s = Scan(w, path)
        if pos != 8:
            s.skipped_bytes += pos
        next_report, next_bytes = _PROGRESS_BYTES, 0
        try:
            for schemas, channels in seeds:
                s.seed(schemas, channels)
            # end of the last record the scan could verify (a chunk that passed its checks, a
            # definition that parsed): a record with no check of its own (a MessageIndex) may carry
            # a flipped length, so after bad bytes the search starts here, never past a good chunk
            verified = pos
            resync_floor = 0
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
                        if opcode in _VERIFIED:
                            verified = pos
                        continue
                    # a damaged record's length cannot be trusted: search from its next byte
                    bad = bad or f"damaged chunk at byte {pos} ({s.damaged[-1].reason})"
                start = max(verified if verified < pos else pos + 1, resync_floor)
                q = _next_good_record(buf, start, size)
                if q is None:
                    s.stopped_at = bad
                    break
                s.skipped_bytes += max(0, q - pos)
                log.warning("%s: %s; resuming at the next good chunk, byte %d", path, bad, q)
                pos = q
                resync_floor = q + 1  # each resync moves on: the scan always ends
            w.flush_chunk()
        except BaseException:
            w.close_fd()
            raise
        return s, w, s.stopped_at
    finally:
        buf.close()
