"""Command lines that run the installed package, never the source checkout.

``python -m robot_capture...`` from the repository root puts the working directory first on
``sys.path``, so it imports the checkout, where the C extensions are not built.
"""
from __future__ import annotations

import sys

_RUN = "import runpy, sys; del sys.path[0]; runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)"


def module_command(module: str) -> list[str]:
    """``[python, ...]`` running ``module`` as ``__main__`` from the installed package (what
    ``python -m`` does, without the working directory on ``sys.path``)."""
    return [sys.executable, "-c", _RUN, module]
