"""Checked MCAP chunk decoding: one damaged chunk never hides the others.

The ``mcap`` library's reader aborts a whole iteration at the first chunk that
fails to decompress (``ZstdError``) and, by default, never checks chunk CRCs, so
a flipped byte comes back as valid data. Here every chunk is decoded on its own
and checked before any of its messages is handed on:

1. the record framing (opcode 0x06, the length fields agree with each other and
   with the bytes present; MCAP spec, "Chunk" record, https://mcap.dev/spec);
2. the compression is ``""``, ``zstd`` or ``lz4`` and decompresses to exactly the
   ``uncompressed_size`` announced (bounded by ``MAX_CHUNK_BYTES``, so a flipped
   size cannot allocate gigabytes);
3. with ``validate_crc``, the CRC32 of the uncompressed records equals the chunk's
   ``uncompressed_crc`` (a CRC of 0 means "not computed": rosbag2 writes none,
   our writer writes one by default, ``WriterOptions.chunk_crc``);
4. every inner record is complete and every Message record is at least its
   22-byte header.

A chunk that fails any check raises :class:`ChunkDamagedError` (a ValueError)
and yields nothing; callers count it as a :class:`DamagedChunk` and go on with
the next chunk. Without a CRC, check 4 still keeps the framing sound, but flipped
payload bytes cannot be detected (say so when a bag has no CRCs).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from robot_capture.bag.crc import crc32

__all__ = ["ChunkDamagedError", "DamagedChunk", "MAX_CHUNK_BYTES", "chunk_records", "decode_chunk_body",
           "plausible_chunk_at", "verify_chunk_body"]

#: Largest uncompressed chunk accepted (1 GiB). The writer's default chunk is 4 MiB; a
#: larger announced size is taken as a damaged header, not an allocation request.
MAX_CHUNK_BYTES = 1 << 30

_CHUNK_OPCODE = 0x06
_MESSAGE_OPCODE = 0x05
_HEAD = struct.Struct("<QQQI")  # message start, end, uncompressed size, crc
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_REC = struct.Struct("<BQ")
_MSG = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time
_COMPRESSIONS = ("", "zstd", "lz4")


class ChunkDamagedError(ValueError):
    """A chunk failed a check (framing, decompression, size or CRC); none of its messages is used."""


@dataclass
class DamagedChunk:
    """One chunk that was skipped. ``offset``: byte offset of the chunk record in ``file``;
    ``messages``: messages the index says it held (-1 when unknown); ``reason``: the failed check."""

    file: str
    offset: int
    reason: str
    messages: int = -1

    def __str__(self) -> str:
        n = f", {self.messages} messages" if self.messages >= 0 else ""
        return f"{self.file} @ byte {self.offset}{n}: {self.reason}"


def _decompress(compression: str, data, usize: int) -> bytes:
    try:
        if compression == "":
            return bytes(data)
        if compression == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().decompress(data, max_output_size=usize)
        import lz4.frame

        return lz4.frame.decompress(data)
    except Exception as exc:  # noqa: BLE001 - zstd/lz4 raise their own error types on garbage
        raise ChunkDamagedError(f"{compression} decompression failed: {type(exc).__name__}: {exc}") from None


def _chunk_head(body) -> tuple[int, int, int, int, str, int]:
    """(start, end, uncompressed size, crc, compression, offset of the records) of a Chunk
    record body, after the framing checks 1-2 of the module docstring (not decompression)."""
    n = len(body)
    if n < _HEAD.size + 4 + 8:
        raise ChunkDamagedError(f"chunk body of {n} bytes is shorter than its header")
    start, end, usize, crc = _HEAD.unpack_from(body, 0)
    name_len = _U32.unpack_from(body, _HEAD.size)[0]
    at = _HEAD.size + 4
    if name_len > 16 or at + name_len + 8 > n:
        raise ChunkDamagedError(f"bad compression name length {name_len}")
    try:
        compression = bytes(body[at:at + name_len]).decode("ascii")
    except UnicodeDecodeError:
        raise ChunkDamagedError("compression name is not ASCII") from None
    if compression not in _COMPRESSIONS:
        raise ChunkDamagedError(f"unknown chunk compression {compression!r}")
    at += name_len
    rec_len = _U64.unpack_from(body, at)[0]
    at += 8
    if at + rec_len != n:
        raise ChunkDamagedError(f"records length {rec_len} does not match the {n - at} bytes present")
    if usize > MAX_CHUNK_BYTES or (compression == "" and usize != rec_len):
        raise ChunkDamagedError(f"implausible uncompressed size {usize}")
    if start > end:
        raise ChunkDamagedError(f"message start time {start} after end time {end}")
    return start, end, usize, crc, compression, at


def _check_crc(data, crc: int) -> None:
    got = crc32(data)
    if got != crc:
        raise ChunkDamagedError(f"CRC mismatch (stored {crc:#010x}, computed {got:#010x})")


def decode_chunk_body(body, validate_crc: bool = True) -> tuple[int, int, bytes]:
    """Check and decompress one Chunk record body (the bytes after opcode and length).

    Returns:
        (message_start_time_ns, message_end_time_ns, uncompressed records).

    Raises:
        ChunkDamagedError: any check of the module docstring failed.
    """
    start, end, usize, crc, compression, at = _chunk_head(body)
    data = _decompress(compression, memoryview(body)[at:], usize)
    if len(data) != usize:
        raise ChunkDamagedError(f"decompressed to {len(data)} bytes, header says {usize}")
    if validate_crc and crc:
        _check_crc(data, crc)
    return start, end, data


def verify_chunk_body(body, validate_crc: bool = True) -> bool:
    """Every check of :func:`decode_chunk_body` and the inner record framing of
    :func:`chunk_records`, without keeping anything: an uncompressed chunk is checked in
    place (no copy; e.g. on an mmap). Returns True when a CRC was checked (False: the
    chunk has none, or ``validate_crc`` is off). Raises ChunkDamagedError."""
    _start, _end, usize, crc, compression, at = _chunk_head(body)
    with memoryview(body)[at:] as payload:
        data = payload if compression == "" else _decompress(compression, payload, usize)
        if len(data) != usize:
            raise ChunkDamagedError(f"decompressed to {len(data)} bytes, header says {usize}")
        if validate_crc and crc:
            _check_crc(data, crc)
        _check_framing(data)
    return bool(validate_crc and crc)


def _check_framing(data) -> None:
    """Check 4 of the module docstring, without making views (see :func:`chunk_records`)."""
    pos, n = 0, len(data)
    while pos < n:
        if pos + 9 > n:
            raise ChunkDamagedError(f"{n - pos} trailing byte(s) in the chunk records")
        opcode, length = _REC.unpack_from(data, pos)
        if pos + 9 + length > n:
            raise ChunkDamagedError(f"inner record (opcode {opcode:#x}) at {pos} runs past the chunk end")
        if opcode == _MESSAGE_OPCODE and length < _MSG.size:
            raise ChunkDamagedError(f"message record of {length} bytes at {pos}")
        pos += 9 + length


def chunk_records(data: bytes) -> list[tuple[int, memoryview]]:
    """(opcode, body) of every record in decompressed chunk ``data``.

    Raises:
        ChunkDamagedError: a record runs past the end, or a Message record is shorter
            than its header (the chunk is then used not at all).
    """
    out = []
    mv = memoryview(data)
    pos, n = 0, len(data)
    while pos < n:
        if pos + 9 > n:
            raise ChunkDamagedError(f"{n - pos} trailing byte(s) in the chunk records")
        opcode, length = _REC.unpack_from(data, pos)
        if pos + 9 + length > n:
            raise ChunkDamagedError(f"inner record (opcode {opcode:#x}) at {pos} runs past the chunk end")
        if opcode == _MESSAGE_OPCODE and length < _MSG.size:
            raise ChunkDamagedError(f"message record of {length} bytes at {pos}")
        out.append((opcode, mv[pos + 9:pos + 9 + length]))
        pos += 9 + length
    return out


def message_fields(body: memoryview) -> tuple[int, int, int, int, memoryview]:
    """(channel_id, sequence, log_time, publish_time, data) of a Message record body."""
    cid, seq, log_time, pub_time = _MSG.unpack_from(body, 0)
    return cid, seq, log_time, pub_time, body[_MSG.size:]


def plausible_chunk_at(buf, pos: int, end: int, validate_crc: bool = True):
    """Decode a Chunk record at ``buf[pos]`` if one is there and passes every check.

    Used to find the next good chunk after damaged bytes. Returns
    ``(record_length, (start, end, data))`` or None.
    """
    if pos + 9 + _HEAD.size + 12 > end or buf[pos] != _CHUNK_OPCODE:
        return None
    length = _U64.unpack_from(buf, pos + 1)[0]
    if pos + 9 + length > end:
        return None
    name_len = _U32.unpack_from(buf, pos + 9 + _HEAD.size)[0]
    if name_len > 16:
        return None
    body = memoryview(buf)[pos + 9:pos + 9 + length]
    try:
        decoded = decode_chunk_body(body, validate_crc)
        chunk_records(decoded[2])
    except ChunkDamagedError:
        return None
    finally:
        body.release()
    return 9 + length, decoded
