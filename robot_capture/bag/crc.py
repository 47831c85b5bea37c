"""CRC-32 of MCAP records (ISO-HDLC polynomial, the one ``zlib.crc32`` computes).

MCAP's chunk ``uncompressed_crc``, attachment and summary CRCs are zlib's CRC-32
(https://mcap.dev/spec#chunk-op0x06). The recorder CRCs every byte it writes, about
170 MB/s at 6 cameras, and QA, export and recover CRC every byte they read, so the
implementation matters: Debian's zlib 1.2.13 runs at about 2 GB/s here, zlib-ng's
(the ``zlib-ng`` package, PCLMULQDQ folding) at about 7 GB/s. Both give the same
values; zlib is the fallback when zlib-ng is not installed (e.g. a colcon build on a
distribution without the wheel).
"""
from __future__ import annotations

try:  # pragma: no cover - which one is installed is the environment's choice
    from zlib_ng.zlib_ng import crc32 as _crc32

    BACKEND = "zlib-ng"
except ImportError:  # pragma: no cover
    from zlib import crc32 as _crc32

    BACKEND = "zlib"


def crc32(data, value: int = 0) -> int:
    """CRC-32 of ``data`` (bytes-like), continuing from ``value`` (0 to start).

    ``crc32(b, crc32(a)) == crc32(a + b)``, as with :func:`zlib.crc32`.
    """
    return _crc32(data, value)


def crc32_parts(parts, value: int = 0) -> int:
    """CRC-32 of the concatenation of ``parts`` without joining them."""
    for p in parts:
        value = _crc32(p, value)
    return value
