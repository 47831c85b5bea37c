"""Child-process entry used by :mod:`robot_capture.floor.launcher`.

``python <path>/_child.py <module> [args...]`` arranges (Linux) to get SIGTERM when
the supervisor dies (``prctl(PR_SET_PDEATHSIG)``), exits at once if the supervisor is
already gone, applies the niceness in ``$ROBOT_CAPTURE_NICE`` (if any), then runs
``<module>.main()`` with ``sys.argv`` = ``[<module>, args...]``.

It is started as a script, not with ``-m``: ``python -m`` would put the current
directory first on ``sys.path``, so that a source checkout in the working directory
(without its built C extension) would shadow the installed package. The script's own
directory, which Python puts first instead, is removed before anything is imported.
"""
from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import importlib  # noqa: E402
import signal  # noqa: E402

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):  # no libc prctl: orphans are then possible
        return
    want = os.environ.get("ROBOT_CAPTURE_SUPERVISOR_PID")
    if want and want.isdigit() and os.getppid() != int(want):
        sys.exit(1)  # the supervisor died before prctl took effect


def _renice() -> None:
    """Apply ``$ROBOT_CAPTURE_NICE`` (set by the supervisor); say so if not permitted."""
    value = os.environ.get("ROBOT_CAPTURE_NICE", "")
    if not value or int(value) == 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, int(value))
    except (PermissionError, OSError) as exc:
        print(f"[floor] cannot set nice {value} ({exc}); running at normal priority", file=sys.stderr)


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: python .../robot_capture/floor/_child.py MODULE [args...]", file=sys.stderr)
        return 2
    module = sys.argv[1]
    _die_with_parent()
    _renice()
    sys.argv = [module, *sys.argv[2:]]
    mod = importlib.import_module(module)
    rc = mod.main()
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
