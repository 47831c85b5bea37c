"""``robot-capture config init DIR``: copy the shipped configs to a folder for editing.

After a (non-editable) install, ``up``, ``qa`` and the nodes read the installed copy of
``config/`` (``share/robot_capture/config``), not the checkout's: editing the checkout changes
nothing. This copies that installed tree (floor.yaml, qa.yaml, console maps, export mapping,
robot mappings, human models, the DDS profile) to ``DIR``; point every verb at it with
``ROBOT_CAPTURE_CONFIG=DIR`` or give the file (``robot-capture up DIR/floor.yaml``).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

DESCRIPTION = __doc__.split("\n", 2)[2]


def add_parser(sub):
    p = sub.add_parser("config", help="copy the shipped configs to a folder for editing (config init DIR)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    ss = p.add_subparsers(dest="config_verb", metavar="<init>")
    i = ss.add_parser("init", help="copy the shipped config/ tree to DIR", description=DESCRIPTION,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    i.add_argument("dir", help="folder to copy the configs into (created)")
    i.add_argument("--force", action="store_true", help="overwrite files that already exist there")
    return p


def run(args) -> int:
    if getattr(args, "config_verb", None) != "init":
        print("robot-capture config: give a verb: init DIR (robot-capture config init --help)", file=sys.stderr)
        return 2
    from robot_capture.paths import config_dir

    try:
        src = config_dir()
    except FileNotFoundError as exc:
        print(f"robot-capture config init: {exc}", file=sys.stderr)
        return 2
    dst = Path(args.dir).expanduser()
    files = sorted(p for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    if dst.resolve() == src.resolve():
        print(f"robot-capture config init: {dst} is the shipped config folder itself", file=sys.stderr)
        return 2
    exists = [f.relative_to(src) for f in files if (dst / f.relative_to(src)).exists()]
    if exists and not args.force:
        shown = ", ".join(str(e) for e in exists[:5]) + (" ..." if len(exists) > 5 else "")
        print(f"robot-capture config init: {len(exists)} files already exist in {dst} ({shown}); "
              "not overwriting (--force overwrites)", file=sys.stderr)
        return 1
    try:
        for f in files:
            target = dst / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
    except OSError as exc:
        print(f"robot-capture config init: cannot write to {dst}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"copied {len(files)} config files from {src} to {dst}")
    print(f"edit them, then: robot-capture up {dst / 'floor.yaml'}   (or export ROBOT_CAPTURE_CONFIG={dst}, "
          "which every verb and node reads)")
    return 0
