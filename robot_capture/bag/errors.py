"""Exceptions of the bag storage layer."""
from __future__ import annotations

import errno as _errno

__all__ = ["BagError", "BagWriteError", "BagDiskFullError", "BagClosedError", "IncompleteBagFileError", "NotABagError",
           "DISK_FULL_ERRNOS"]

#: errnos treated as "the disk (or the quota, or the file size limit) is full".
DISK_FULL_ERRNOS = frozenset({_errno.ENOSPC, _errno.EDQUOT, _errno.EFBIG})


class BagError(Exception):
    """Base class of bag storage errors."""


class BagWriteError(BagError):
    """Writing a bag file failed at the OS level (see ``BagDiskFullError`` for a full disk).

    The file was truncated back to its last complete record, so everything written
    before stays readable; the messages of the chunk that failed are lost
    (``lost_messages``). The writer takes no more messages; ``close()`` is safe.

    Attributes:
        path: the file being written. errno: the OS error number. lost_messages: int.
    """

    what = "I/O error"

    def __init__(self, path, errno: int, lost_messages: int = 0):
        self.path = str(path)
        self.errno = errno
        self.lost_messages = lost_messages
        super().__init__(
            f"{self.what} while writing {self.path} ({_errno.errorcode.get(errno, errno)}); "
            f"{lost_messages} buffered message(s) could not be written, earlier data is intact"
        )


class BagDiskFullError(BagWriteError):
    """Writing failed with ENOSPC, EDQUOT or EFBIG (disk, quota or file-size limit full)."""

    what = "disk full"


class BagClosedError(BagError):
    """The writer is closed (or failed) and takes no more messages."""


class IncompleteBagFileError(BagError):
    """An MCAP file has no footer/summary (crash, power cut, truncation).
    ``robot-capture recover BAG`` rebuilds it."""


class NotABagError(BagError, FileNotFoundError):
    """The path is not a rosbag2 bag directory (no metadata.yaml and no .mcap files)."""
