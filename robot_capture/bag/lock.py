"""An advisory lock that marks a bag directory as being recorded.

``BagWriter`` holds an exclusive ``flock`` on ``<bag>/.recording.lock`` while open.
The kernel drops it when the process dies (SIGKILL, power cut), so a leftover lock
file never blocks anything; ``is_recording`` tells a live recording from a crashed
one, and ``recover`` refuses to touch a bag that is still being written.
"""
from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no protection, never blocks
    fcntl = None

__all__ = ["LOCK_NAME", "RecordingLock", "is_recording"]

LOCK_NAME = ".recording.lock"


class RecordingLock:
    """Hold the recording lock of ``bag_dir`` (created if missing). Raises BlockingIOError
    if another process holds it."""

    def __init__(self, bag_dir):
        self.path = Path(bag_dir) / LOCK_NAME
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._fd)
                raise BlockingIOError(f"{bag_dir} is being recorded by another process") from None
            except OSError:
                pass  # no flock on this filesystem (e.g. some NFS): record without the marker lock
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self, remove: bool = True) -> None:
        if self._fd < 0:
            return
        if remove:
            try:
                self.path.unlink()
            except OSError:
                pass
        os.close(self._fd)
        self._fd = -1


def is_recording(bag_dir) -> bool:
    """True if a live process holds ``bag_dir``'s recording lock."""
    path = Path(bag_dir) / LOCK_NAME
    if fcntl is None or not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False  # no flock support: cannot tell
    finally:
        os.close(fd)
