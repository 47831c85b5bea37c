"""What every benchmark checks first: it measures the installed package, never a source tree.

A benchmark is run as ``python benchmarks/<name>.py``: Python puts ``benchmarks/`` (not the
checkout) first on ``sys.path``, so ``import robot_capture`` finds the installed package
(``pip install .`` or ``make venv``), with its built C extensions. Child processes are started
through ``robot_capture/floor/_child.py`` rather than ``python -m``, which would put the current
directory (a checkout without built extensions) first on ``sys.path``.
"""
from __future__ import annotations

import sys
from pathlib import Path

HOW_TO_INSTALL = "install it from the checkout with `pip install .` (or `make venv`, then use .venv/bin/python)"


def require_installed() -> None:
    """Exit 2 with a one-line message unless robot_capture and its C extensions import.

    Raises:
        SystemExit(2): the package is missing, or imported without its built extensions.
    """
    try:
        import robot_capture  # noqa: F401
    except ImportError:
        sys.exit(f"error: robot_capture is not importable: {HOW_TO_INSTALL}")
    try:
        from robot_capture.kinematics import _ik  # noqa: F401
        from robot_capture.retarget import _filters  # noqa: F401
    except ImportError:
        sys.exit(f"error: robot_capture at {Path(robot_capture.__file__).parent} has no built C extensions "
                 f"(a source tree?): {HOW_TO_INSTALL}")


def node_command(module: str) -> list[str]:
    """``[python, .../floor/_child.py, module]``: run ``module.main()`` from the installed package."""
    from robot_capture.floor import _child

    return [sys.executable, str(Path(_child.__file__).resolve()), module]
