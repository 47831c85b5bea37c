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


def robot_dirs() -> list[Path]:
    """Folders searched for ``<robot>.yaml``, first match wins: the user robot folder
    (``$ROBOT_CAPTURE_ROBOTS``, else ``~/.config/robot_capture/robots``; ``os.pathsep``
    separates several), then the shipped ``config/robots``. Folders that do not exist are skipped."""
    env = os.environ.get("ROBOT_CAPTURE_ROBOTS")
    user = [Path(p).expanduser() for p in env.split(os.pathsep) if p] if env else \
        [Path.home() / ".config" / "robot_capture" / "robots"]
    out = [d for d in user if d.is_dir()]
    try:
        out.append(config_dir() / "robots")
    except FileNotFoundError:
        pass
    return out


def known_robots() -> list[str]:
    """Robot names found in :func:`robot_dirs` (sorted, each once)."""
    return sorted({f.stem for d in robot_dirs() for f in d.glob("*.yaml")})


def is_robot_path(name_or_path) -> bool:
    """True if ``name_or_path`` names a mapping file (ends in .yaml/.yml or has a path separator)
    rather than a robot name."""
    s = str(name_or_path)
    return Path(s).suffix in (".yaml", ".yml") or os.sep in s or bool(os.altsep and os.altsep in s)


def resolve_robot(name_or_path) -> Path:
    """The mapping YAML for a robot name or path.

    ``name_or_path`` is a path when it ends in ``.yaml``/``.yml`` or contains a path separator
    (relative paths are taken from the current directory); else a name looked up in
    :func:`robot_dirs` in order.

    Raises:
        FileNotFoundError: a path that does not exist.
        KeyError: an unknown name; the message lists the known robots, closest first, and the
            folders searched.
    """
    import difflib

    s = str(name_or_path)
    p = Path(s).expanduser()
    if is_robot_path(s):
        if not p.is_file():
            raise FileNotFoundError(f"robot mapping {s}: no such file")
        return p.resolve()
    for d in robot_dirs():
        cand = d / f"{s}.yaml"
        if cand.is_file():
            return cand
    known = known_robots()
    close = difflib.get_close_matches(s, known, n=3, cutoff=0.3)
    dirs = ", ".join(str(d) for d in robot_dirs()) or "(none found)"
    raise KeyError(f"unknown robot {s!r}; known: {', '.join(close + [k for k in known if k not in close])} "
                   f"(searched {dirs}; or give a path to a .yaml file)")
