"""Where the shipped real input lives, and where the installed config is.

The real data (URDFs, BVH clips, hand tracking) is read in place from the
``shared/data`` folder that sits beside the project checkout. It is found, in
order, from ``$ROBOT_CAPTURE_DATA``, from the current directory upwards, and
from this package's location upwards.
"""
from __future__ import annotations

import os
from pathlib import Path

_PKG_DIR = Path(__file__).resolve().parent


def _candidates():
    env = os.environ.get("ROBOT_CAPTURE_DATA")
    if env:
        yield Path(env)
    for start in (Path.cwd().resolve(), _PKG_DIR):
        for d in (start, *start.parents):
            yield d / "shared" / "data"
            yield d.parent / "shared" / "data"


def data_dir() -> Path:
    """Return the ``shared/data`` directory.

    Raises:
        FileNotFoundError: if no candidate exists; the message says how to point
            ``$ROBOT_CAPTURE_DATA`` at it.
    """
    for c in _candidates():
        if (c / "robots").is_dir():
            return c
    raise FileNotFoundError(
        "cannot find the shared real-data folder (shared/data with robots/ and motion/); "
        "set ROBOT_CAPTURE_DATA=/path/to/shared/data"
    )


def config_dir() -> Path:
    """Return the ``config/`` directory: the source checkout's, else the installed share/ copy.

    Raises:
        FileNotFoundError: if neither exists.
    """
    env = os.environ.get("ROBOT_CAPTURE_CONFIG")
    cands = [Path(env)] if env else []
    cands += [_PKG_DIR.parent / "config"]
    import sys

    cands += [Path(sys.prefix) / "share" / "robot_capture" / "config"]
    try:  # a real ROS install
        from ament_index_python.packages import get_package_share_directory

        cands.append(Path(get_package_share_directory("robot_capture")) / "config")
    except Exception:  # noqa: BLE001 - ament index absent or package not indexed
        pass
    for c in cands:
        if (c / "robots").is_dir() or (c / "floor.yaml").is_file():
            return c
    raise FileNotFoundError(f"cannot find robot_capture config/ (looked in {', '.join(map(str, cands))})")
