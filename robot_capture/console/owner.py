"""One session, one owner: the output-folder lock and the duplicate-node check.

ROS-free. A recorder holds an exclusive ``flock`` on ``<output_dir>/.recorder.lock`` for
its whole life (as :mod:`robot_capture.bag.lock` does per bag); the kernel drops it when
the process dies, so a stale file never blocks. A second recorder on the same folder
cannot take it and refuses to run. Two recorders with the same fully qualified node
name (which would both serve ``/recorder/start_episode``) are found in the ROS graph
by :func:`duplicates` (the node supplies ``get_node_names_and_namespaces()``).
"""
from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no protection
    fcntl = None

__all__ = ["LOCK_NAME", "OutputLock", "OutputBusyError", "duplicates", "fqn"]

LOCK_NAME = ".recorder.lock"


class OutputBusyError(OSError):
    """Another live process holds ``<output_dir>/.recorder.lock``."""


class OutputLock:
    """Hold ``<output_dir>/.recorder.lock`` (created). ``owner`` (e.g. the node's name) and the
    pid are written into it, and named in the error of the next one who tries.

    Raises:
        OutputBusyError: another process holds it.
    """

    def __init__(self, output_dir, owner: str = ""):
        self.path = Path(output_dir) / LOCK_NAME
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    holder = os.pread(self._fd, 256, 0).decode("utf-8", "replace").strip() or "?"
                finally:
                    os.close(self._fd)
                raise OutputBusyError(f"another recorder ({holder}) is writing to {output_dir}; "
                                      "one output folder has one recorder") from None
            except OSError:
                pass  # no flock on this filesystem: run without the guard
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"pid {os.getpid()} {owner}\n".encode(), 0)
        except OSError:  # a full disk: the lock is held, only the note naming us is missing
            pass

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def fqn(name: str, namespace: str) -> str:
    ns = "/" + namespace.strip("/")
    return (ns.rstrip("/") + "/" + name) if ns != "/" else "/" + name


def duplicates(names_and_namespaces, name: str, namespace: str) -> int:
    """How many *other* nodes in the graph have this node's fully qualified name."""
    me = fqn(name, namespace)
    return max(0, sum(1 for n, ns in names_and_namespaces if fqn(n, ns) == me) - 1)
