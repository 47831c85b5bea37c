"""Child-process entry used by :mod:`robot_capture.floor.launcher`.

``python -m robot_capture.floor._child <module> [args...]`` arranges (Linux) to get
SIGTERM when the supervisor dies (``prctl(PR_SET_PDEATHSIG)``), exits at once if the
supervisor is already gone, then runs ``<module>.main()`` with ``sys.argv`` =
``[<module>, args...]``.
"""
from __future__ import annotations

import importlib
import os
import signal
import sys

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


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: python -m robot_capture.floor._child MODULE [args...]", file=sys.stderr)
        return 2
    module = sys.argv[1]
    _die_with_parent()
    sys.argv = [module, *sys.argv[2:]]
    mod = importlib.import_module(module)
    rc = mod.main()
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
