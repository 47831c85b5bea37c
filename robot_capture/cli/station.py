"""``robot-capture station check [CONFIG]``: the pre-shift check of every declared stream."""
from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Sample every stream of the station contract (floor.yaml `streams:` plus the cameras) for a
few seconds and print one table: present, type, rate against expected, header-stamp offset
from this PC's clock (a PC whose clock is off), then the robot's joint names against the
robot mapping and the free disk in hours at the declared data rate. Exits 1 when the station
cannot record a valid episode (a required stream missing, slow, of the wrong type, a clock
offset over check.stamp_offset_fail_s, joints missing, the disk nearly full), 2 on a bad
config. `robot-capture up` runs the same check once the floor is up.
Run it with the station's drivers running (and `up`, for the floor's own streams)."""

EPILOG = """\
examples:
  robot-capture station check                       # the shipped config/floor.yaml
  robot-capture station check my_station.yaml --cameras none --seconds 5
"""


def add_parser(sub):
    from robot_capture.floor.graph import LAUNCH_ARGUMENTS

    p = sub.add_parser("station", help="the pre-shift check: every declared stream, clocks, joints, disk",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ss = p.add_subparsers(dest="station_verb", metavar="<check>")
    c = ss.add_parser("check", help="sample every declared stream and judge it", description=DESCRIPTION,
                      epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("config", nargs="?", default="", help="station config YAML (default: the shipped config/floor.yaml)")
    c.add_argument("--sim", action="store_true", help="judge the contract of the simulated floor (`up --sim`)")
    c.add_argument("--seconds", type=float, default=0.0, metavar="S",
                   help="sample this long (default: check.sample_s of the config)")
    for name in ("robot", "output_dir", "cameras", "dds_transport", "station"):
        text = LAUNCH_ARGUMENTS[name][1]
        c.add_argument(f"--{name.replace('_', '-')}", dest=name, default="",
                       help=text if "default" in text else f"{text} (default: the config's)")
    return p


def run(args) -> int:
    if getattr(args, "station_verb", None) != "check":
        print("robot-capture station: give a verb: check (robot-capture station check --help)", file=sys.stderr)
        return 2
    from robot_capture.floor import graph

    overrides = {k: getattr(args, k) for k in ("robot", "output_dir", "cameras", "dds_transport", "station")}
    try:
        cfg = graph.load_config(args.config or None)
        contract = graph.station_contract(cfg, overrides, sim=args.sim)
        env = graph.dds_environment(overrides["dds_transport"] or cfg.get("dds_transport"))
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"robot-capture station check: {exc}", file=sys.stderr)
        return 2
    if args.seconds < 0:
        print("robot-capture station check: --seconds must be >= 0", file=sys.stderr)
        return 2
    print(f"config: {cfg['_path']}" + (f" (streams from {cfg['_streams_from']})" if cfg.get("_streams_from") else ""))
    import os

    for k in graph.DDS_ENV_VARS:  # the same DDS settings as the floor's nodes, or no data flows
        os.environ.pop(k, None)
    os.environ.update(env)
    station = str(overrides["station"] or cfg.get("station") or "").strip("/")
    from robot_capture.floor.station_sample import check_station

    try:
        report = check_station(contract, args.seconds or None, namespace=f"/{station}" if station else "")
    except RuntimeError as exc:
        print(f"robot-capture station check: {exc}", file=sys.stderr)
        return 2
    print(report.text())
    return 0 if report.ok else 1
