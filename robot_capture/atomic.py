"""Atomic file replacement: a reader, or a crash, sees the old file or the new one, never half.

The pattern (POSIX ``rename(2)`` is atomic within a file system): write a uniquely named
temp file in the target's own directory, ``fsync`` it, ``os.replace`` it over the target,
then ``fsync`` the directory (best effort) so the rename itself survives a power cut.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_bytes_atomic", "write_text_atomic"]


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, fsync: bool = True, mode: int = 0o644) -> Path:
    """Replace ``path`` with ``data`` atomically; returns the path.

    ``fsync`` False skips both fsyncs (files that are cheap to rebuild, e.g. a params file).

    Raises:
        OSError: on I/O failure (e.g. ENOSPC, a missing directory); the temp file is removed
            and an existing ``path`` is left untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if fsync:
        try:
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass  # directory fsync is best effort (not supported everywhere)
    return path


def write_text_atomic(path: str | os.PathLike, text: str, *, fsync: bool = True) -> Path:
    """:func:`write_bytes_atomic` of ``text`` in UTF-8."""
    return write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)
