"""Strip native libraries' ANSI colour codes from this process's stdout/stderr when they are
not a terminal (issue 23: Fast DDS writes coloured error lines straight to file descriptor 2,
past Python's logging, so a piped or logged ``robot-capture record`` carried raw escape codes).

``strip_ansi_when_piped()`` swaps each non-TTY descriptor for a pipe whose reader thread
copies lines to the original descriptor with the codes removed (the same pattern as ``up``'s
supervisor, floor/launcher.py). Flushed at exit; a SIGKILL loses at most what the thread had
not yet copied (lines, never recorded data).
"""
from __future__ import annotations

import atexit
import os
import re
import sys
import threading

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
_installed: list[tuple[int, int, threading.Thread]] = []


def _copy(read_fd: int, out_fd: int) -> None:
    buf = b""
    while True:
        try:
            data = os.read(read_fd, 65536)
        except OSError:
            data = b""
        if not data:
            break
        buf += data
        # a code split across two reads stays whole: hold back an unterminated escape
        cut = buf.rfind(b"\x1b")
        keep = b""
        if cut >= 0 and not ANSI.match(buf, cut):
            buf, keep = buf[:cut], buf[cut:]
        try:
            os.write(out_fd, ANSI.sub(b"", buf))
        except OSError:
            pass
        buf = keep
    if buf:
        try:
            os.write(out_fd, ANSI.sub(b"", buf))
        except OSError:
            pass
    os.close(read_fd)


def strip_ansi_when_piped(fds: tuple[int, ...] = (1, 2)) -> list[int]:
    """Filter each descriptor in ``fds`` that is not a TTY; returns the ones filtered.

    Idempotent (a second call filters nothing more). Python's ``sys.stdout``/``sys.stderr``
    keep writing to the same descriptor numbers, so their output goes through the filter too.
    """
    done = {fd for fd, _, _ in _installed}
    out = []
    for fd in fds:
        if fd in done:
            continue
        try:
            if os.isatty(fd):
                continue
            original = os.dup(fd)
        except OSError:
            continue
        r, w = os.pipe()
        os.dup2(w, fd)
        os.close(w)
        t = threading.Thread(target=_copy, args=(r, original), name=f"ansi-filter-{fd}", daemon=True)
        t.start()
        _installed.append((fd, original, t))
        out.append(fd)
    if out and len(_installed) == len(out):
        atexit.register(_restore)
    return out


def _restore() -> None:
    """Flush Python's streams, put the original descriptors back and let the threads drain."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - closed streams at exit
            pass
    while _installed:
        fd, original, t = _installed.pop()
        os.dup2(original, fd)  # closes the pipe's write end held at fd: the reader sees EOF
        t.join(2.0)
        os.close(original)
