"""One chunked, indexed MCAP file with a cheap per-message path.

Why not just ``mcap.writer.Writer``: its per-message cost (a ``Message`` dataclass,
several ``struct.pack``/``BytesIO`` writes, statistics updates) and the four copies
each payload goes through before reaching the file make it the recorder's CPU
bottleneck (ENVIRONMENT.md). Here a message costs one ``struct.pack`` of its
31-byte record header and two list appends; the payload is not copied until the
chunk is joined (one copy) and handed to the kernel. Everything that is not on the
hot path (header, schemas, channels, metadata, attachments, statistics, indexes,
summary offsets, footer) is serialized by the ``mcap`` library's own record classes.

Layout written (MCAP spec, https://mcap.dev/spec): magic, Header(profile ``ros2``),
Schema/Channel records outside chunks (each written before any message that uses
it), Chunks each followed by its MessageIndex records, Metadata/Attachment records
between chunks, DataEnd, a summary (schemas, channels, statistics, chunk indexes,
attachment and metadata indexes, summary offsets), Footer, magic. Like rosbag2's
MCAP plugin, chunk CRCs are off by default (``chunk_crc``); record times are ns.

A file killed mid-write holds every chunk flushed so far; ``recover`` reads them.
"""
from __future__ import annotations

import os
import struct
from typing import Dict, List

from mcap.data_stream import RecordBuilder
from mcap.opcode import Opcode
from mcap.records import (
    Attachment,
    AttachmentIndex,
    Channel,
    ChunkIndex,
    DataEnd,
    Footer,
    Header,
    Metadata,
    MetadataIndex,
    Schema,
    Statistics,
    SummaryOffset,
)
from mcap.writer import MCAP0_MAGIC

from robot_capture.bag.crc import crc32, crc32_parts
from robot_capture.bag.errors import DISK_FULL_ERRNOS, BagDiskFullError, BagWriteError

__all__ = ["COMPRESSIONS", "McapFileWriter", "SealedChunk"]

COMPRESSIONS = ("none", "lz4", "zstd")

_MSG_HEADER = struct.Struct("<BQHIQQ").pack  # opcode, record length, channel, sequence, log, publish
_CHUNK_HEAD = struct.Struct("<BQQQQI")  # opcode, length, start, end, uncompressed size, crc
_U32 = struct.Struct("<I").pack
_U64 = struct.Struct("<Q").pack
_MSG_OVERHEAD = 9 + 22
_INF = (1 << 64) - 1
_MAX_UNJOINED_PARTS = 1024  # an uncompressed chunk of at most this many parts is written without a join


def _compressor(name: str, level: int | None):
    """A ``bytes -> bytes`` chunk compressor (``None`` for no compression)."""
    if name == "none":
        return None
    if name == "lz4":
        import lz4.frame

        lvl = 0 if level is None else int(level)
        return lambda data: lz4.frame.compress(data, compression_level=lvl)
    if name == "zstd":
        import zstandard

        comp = zstandard.ZstdCompressor(level=3 if level is None else int(level))
        return comp.compress
    raise ValueError(f"compression must be one of {COMPRESSIONS}, got {name!r}")


class McapFileWriter:
    """Write one MCAP file. Not thread-safe (``BagWriter`` serializes calls).

    Args:
        path: new file (must not exist).
        compression: ``none``, ``lz4`` or ``zstd``; ``compression_level`` for lz4/zstd.
        chunk_size: uncompressed bytes after which the caller should flush the chunk
            (``chunk_full``); this class never flushes on its own.
        chunk_crc: compute the uncompressed-chunk CRC32 (rosbag2 leaves it 0).
        profile, library: Header record fields.

    Raises:
        FileExistsError: ``path`` exists. ValueError: unknown compression.
        BagDiskFullError: a write hit ENOSPC/EDQUOT/EFBIG (the file is truncated back
            to its last complete record first).
    """

    def __init__(self, path, *, compression: str = "none", compression_level: int | None = None,
                 chunk_size: int = 4 * 1024 * 1024, chunk_crc: bool = False,
                 profile: str = "ros2", library: str = "robot_capture"):
        self.path = str(path)
        self._compress = _compressor(compression, compression_level)
        self._compression = "" if compression == "none" else compression
        self.chunk_size = int(chunk_size)
        self._chunk_crc = chunk_crc
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
        self.pos = 0  # bytes handed to the kernel, always at a record boundary
        self.closed = False
        self.complete = False  # footer written
        self._schemas: Dict[int, Schema] = {}
        self._channels: Dict[int, Channel] = {}
        self._chunk_indexes: List[ChunkIndex] = []
        self._attachment_indexes: List[AttachmentIndex] = []
        self._metadata_indexes: List[MetadataIndex] = []
        self._stat_counts: Dict[int, int] = {}
        self._sealed_bytes = 0
        self._written_sealed_bytes = 0
        self.message_count = 0  # flushed messages
        self.start_time = 0  # of flushed messages (valid if message_count)
        self.end_time = 0
        self._reset_chunk()
        self._write([MCAP0_MAGIC, self._record(Header(profile=profile, library=library))])

    # ---- hot path -----------------------------------------------------------------
    def _reset_chunk(self) -> None:
        self._parts: list = []
        self._index: Dict[int, list] = {}
        self.chunk_len = 0
        self.chunk_messages = 0
        self._chunk_start = _INF
        self._chunk_end = 0

    def add_message(self, channel_id: int, log_time: int, publish_time: int, data: bytes) -> None:
        """Append one message to the chunk being built (no I/O).

        Raises:
            struct.error: a time is negative or >= 2**64, or channel_id >= 2**16.
        """
        off = self.chunk_len
        n = len(data)
        self._parts.append(_MSG_HEADER(5, 22 + n, channel_id, 0, log_time, publish_time))
        self._parts.append(data)
        self.chunk_len = off + _MSG_OVERHEAD + n
        self.chunk_messages += 1
        idx = self._index.get(channel_id)
        if idx is None:
            idx = self._index[channel_id] = []
        idx.append(log_time)
        idx.append(off)
        if log_time < self._chunk_start:
            self._chunk_start = log_time
        if log_time > self._chunk_end:
            self._chunk_end = log_time

    @property
    def size(self) -> int:
        """Bytes on disk plus the uncompressed size of the chunk being built."""
        return self.pos + self.chunk_len

    # ---- records --------------------------------------------------------------------
    @staticmethod
    def _record(rec) -> bytes:
        b = RecordBuilder()
        rec.write(b)
        return b.end()

    def _write(self, bufs: list) -> None:
        """Write ``bufs`` fully; on failure truncate back to the previous record boundary."""
        start = self.pos
        views = [memoryview(b) for b in bufs if len(b)]
        i = 0
        try:
            while i < len(views):
                n = os.writev(self._fd, views[i:i + 512])
                self.pos += n
                while i < len(views) and n >= len(views[i]):
                    n -= len(views[i])
                    i += 1
                if n:
                    views[i] = views[i][n:]
        except OSError as exc:
            self._truncate(start)
            cls = BagDiskFullError if exc.errno in DISK_FULL_ERRNOS else BagWriteError
            raise cls(self.path, exc.errno or 0) from exc

    def _truncate(self, pos: int) -> None:
        try:
            os.ftruncate(self._fd, pos)
            os.lseek(self._fd, pos, os.SEEK_SET)
            self.pos = pos
        except OSError:
            pass

    def add_schema(self, schema_id: int, name: str, encoding: str, data: bytes) -> None:
        s = Schema(id=schema_id, name=name, encoding=encoding, data=data)
        self._write([self._record(s)])
        self._schemas[schema_id] = s

    def add_channel(self, channel_id: int, schema_id: int, topic: str, message_encoding: str,
                    metadata: Dict[str, str]) -> None:
        c = Channel(id=channel_id, schema_id=schema_id, topic=topic,
                    message_encoding=message_encoding, metadata=dict(metadata))
        self._write([self._record(c)])
        self._channels[channel_id] = c

    def add_metadata(self, name: str, data: Dict[str, str]) -> None:
        """Write a Metadata record (flushes the chunk being built first)."""
        self.flush_chunk()
        rec = self._record(Metadata(name=name, metadata={str(k): str(v) for k, v in data.items()}))
        offset = self.pos
        self._write([rec])
        self._metadata_indexes.append(MetadataIndex(offset=offset, length=len(rec), name=name))

    def add_attachment(self, name: str, data: bytes, media_type: str, log_time: int, create_time: int) -> None:
        """Write an Attachment record with its CRC (flushes the chunk being built first)."""
        self.flush_chunk()
        rec = self._record(Attachment(create_time=create_time, log_time=log_time, name=name,
                                      media_type=media_type, data=bytes(data)))
        offset = self.pos
        self._write([rec])
        self._attachment_indexes.append(AttachmentIndex(
            offset=offset, length=len(rec), create_time=create_time, log_time=log_time,
            data_size=len(data), name=name, media_type=media_type))

    def seal_chunk(self) -> "SealedChunk | None":
        """Take the chunk being built (O(1), no I/O) for ``write_chunk``; None if empty."""
        if self.chunk_messages == 0:
            return None
        sealed = SealedChunk(self._parts, self._index, self._chunk_start, self._chunk_end, self.chunk_messages,
                             self.chunk_len)
        self._sealed_bytes += self.chunk_len
        self._reset_chunk()
        return sealed

    def write_chunk(self, sealed: "SealedChunk") -> int:
        """Join, CRC, compress and write a sealed chunk and its message indexes.

        May run on another thread than ``add_message`` (the GIL is released while
        compressing, CRC-ing and writing), but calls that write to this file must
        not overlap. Returns the number of messages written.

        Raises:
            BagDiskFullError: the chunk did not fit; its messages are dropped (the
                error's ``lost_messages``), the file ends at the previous chunk.
        """
        try:
            return self._write_chunk(sealed)
        finally:
            self._written_sealed_bytes += sealed.size

    @property
    def pending_bytes(self) -> int:
        """Uncompressed bytes sealed but not yet written (queued for an I/O thread)."""
        return self._sealed_bytes - self._written_sealed_bytes

    def _write_chunk(self, sealed: "SealedChunk") -> int:
        parts = sealed.parts
        if self._compress is None and len(parts) <= _MAX_UNJOINED_PARTS:
            # few, large parts (camera frames): CRC and writev them in place, no 4 MB join copy
            usize = sealed.size
            crc = crc32_parts(parts) if self._chunk_crc else 0
            comp_len, comp_bufs = usize, parts
        else:
            payload = b"".join(parts)
            usize = len(payload)
            crc = crc32(payload) if self._chunk_crc else 0
            comp = self._compress(payload) if self._compress is not None else payload
            comp_len, comp_bufs = len(comp), [comp]
        name = self._compression.encode()
        body_len = 8 + 8 + 8 + 4 + 4 + len(name) + 8 + comp_len
        head = _CHUNK_HEAD.pack(6, body_len, sealed.start, sealed.end, usize, crc)
        chunk_offset = self.pos
        chunk_length = 9 + body_len
        bufs = [head, _U32(len(name)), name, _U64(comp_len), *comp_bufs]
        idx_offsets = {}
        at = chunk_offset + chunk_length
        for cid, lst in sealed.index.items():
            k = len(lst)
            rec = struct.pack(f"<BQHI{k}Q", Opcode.MESSAGE_INDEX, 6 + 8 * k, cid, 8 * k, *lst)
            idx_offsets[cid] = at
            at += len(rec)
            bufs.append(rec)
        try:
            self._write(bufs)
        except BagWriteError as exc:
            exc.lost_messages = sealed.count
            exc.args = (str(exc).replace("0 buffered", f"{sealed.count} buffered"),)
            raise
        self._chunk_indexes.append(ChunkIndex(
            message_start_time=sealed.start, message_end_time=sealed.end,
            chunk_start_offset=chunk_offset, chunk_length=chunk_length,
            message_index_offsets=idx_offsets, message_index_length=at - chunk_offset - chunk_length,
            compression=self._compression, compressed_size=comp_len, uncompressed_size=usize))
        counts = dict(self._stat_counts)
        for cid, lst in sealed.index.items():
            counts[cid] = counts.get(cid, 0) + len(lst) // 2
        self._stat_counts = counts  # replaced, never mutated: readers may snapshot it unlocked
        if self.message_count == 0 or sealed.start < self.start_time:
            self.start_time = sealed.start
        self.end_time = max(self.end_time, sealed.end)
        self.message_count += sealed.count
        return sealed.count

    def flush_chunk(self) -> int:
        """``write_chunk(seal_chunk())``: write the chunk being built now. Returns messages written.

        Raises:
            BagDiskFullError: see ``write_chunk``.
        """
        sealed = self.seal_chunk()
        return self.write_chunk(sealed) if sealed is not None else 0

    @property
    def channel_counts(self) -> Dict[int, int]:
        """Messages on disk per channel id (a snapshot)."""
        return self._stat_counts

    def sync(self) -> None:
        """fdatasync the file (what is written survives a power cut)."""
        os.fdatasync(self._fd) if hasattr(os, "fdatasync") else os.fsync(self._fd)

    def dup_fd(self) -> int:
        """A duplicate descriptor, for syncing from another thread without racing close()."""
        return os.dup(self._fd)

    # ---- end ------------------------------------------------------------------------
    def finish(self) -> None:
        """Flush, write DataEnd + summary + footer + magic, fsync and close.

        On disk-full while writing the summary, the file is truncated back to its
        data (readable by ``recover``), closed, and BagDiskFullError is raised.
        """
        if self.closed:
            return
        err = None
        try:
            self.flush_chunk()
        except BagWriteError as exc:  # the truncation freed room: still try the summary
            err = exc
        try:
            data_end = self._record(DataEnd(data_section_crc=0))
            summary_start = self.pos + len(data_end)
            b = RecordBuilder()
            offsets = []

            def group(opcode, records):
                start = b.count
                for r in records:
                    r.write(b)
                if b.count > start:
                    offsets.append(SummaryOffset(group_opcode=opcode, group_start=summary_start + start,
                                                 group_length=b.count - start))

            group(Opcode.SCHEMA, self._schemas.values())
            group(Opcode.CHANNEL, self._channels.values())
            group(Opcode.STATISTICS, [Statistics(
                message_count=self.message_count, schema_count=len(self._schemas),
                channel_count=len(self._channels), attachment_count=len(self._attachment_indexes),
                metadata_count=len(self._metadata_indexes), chunk_count=len(self._chunk_indexes),
                message_start_time=self.start_time if self.message_count else 0,
                message_end_time=self.end_time if self.message_count else 0,
                channel_message_counts=dict(sorted(self._stat_counts.items())))])
            group(Opcode.CHUNK_INDEX, self._chunk_indexes)
            group(Opcode.ATTACHMENT_INDEX, self._attachment_indexes)
            group(Opcode.METADATA_INDEX, self._metadata_indexes)
            summary_offset_start = summary_start + b.count
            for o in offsets:
                o.write(b)
            summary = b.end()
            crc = crc32(summary)
            crc = crc32(struct.pack("<BQQQ", Opcode.FOOTER, 20, summary_start, summary_offset_start), crc)
            footer = self._record(Footer(summary_start=summary_start,
                                         summary_offset_start=summary_offset_start, summary_crc=crc))
            self._write([data_end, summary, footer, MCAP0_MAGIC])
            self.complete = True
            try:
                self.sync()
            except OSError:
                pass
        except BagWriteError as exc:
            err = err or exc
        finally:
            self.close_fd()
        if err is not None:
            raise err

    def close_fd(self) -> None:
        """Close without writing a footer (the file stays recoverable).

        Frees the summary indexes: a closed file's writer stays in its episode's list of
        files for the counts and times (``message_count``, ``start_time``, ``end_time``,
        ``size``), and ~1 KB of ChunkIndex per chunk, 13 chunks a second at 2 raw cameras,
        grew a 20-minute episode's memory by 0.65 MB a minute (``benchmarks/soak.py``).
        """
        if not self.closed:
            self.closed = True
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._chunk_indexes, self._attachment_indexes, self._metadata_indexes = [], [], []
            self._reset_chunk()


class SealedChunk:
    """A chunk taken from the builder, waiting to be written (see ``write_chunk``)."""

    __slots__ = ("parts", "index", "start", "end", "count", "size")

    def __init__(self, parts, index, start, end, count, size):
        self.parts, self.index, self.start, self.end, self.count, self.size = parts, index, start, end, count, size
