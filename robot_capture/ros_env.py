"""Environment set-up for the ROS 2 wheels from PyPI.

Nothing sets ``AMENT_PREFIX_PATH`` when ROS 2 comes from pip wheels, and the
ament index (message definitions, type hashes) needs it. ``ensure_ament_prefix``
adds ``sys.prefix`` when the venv holds an ament index. On a real ROS install the
variable is already set by ``setup.bash`` and this is a no-op.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


def ensure_ament_prefix() -> None:
    """Add ``sys.prefix`` to ``AMENT_PREFIX_PATH`` if it holds an ament resource index."""
    prefix = sys.prefix
    if not (Path(prefix) / "share" / "ament_index").is_dir():
        return
    cur = os.environ.get("AMENT_PREFIX_PATH", "")
    parts = [p for p in cur.split(os.pathsep) if p]
    if prefix not in parts:
        os.environ["AMENT_PREFIX_PATH"] = os.pathsep.join([*parts, prefix])
