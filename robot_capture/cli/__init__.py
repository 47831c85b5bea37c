"""``robot-capture <verb>``: one CLI for recording, inspection, retargeting and bring-up.

Each verb lives in its own module ``robot_capture.cli.<verb>`` exposing
``add_parser(subparsers)`` (registers the verb with its ``--help``) and
``run(args) -> int`` (exit code). Modules are imported lazily so that
``robot-capture info`` never pays for rclpy and ``--help`` is instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# verb -> one-line summary (shown by `robot-capture --help`)
VERBS = {
    "demo": "bring up the simulated floor on a real clip, record 3 episodes, print QA",
    "up": "bring up the floor graph from a config without `launch` installed",
    "record": "record ROS 2 topics into episode bags (fronts the recorder node)",
    "play": "publish a bag's stored CDR bytes back onto ROS 2 topics",
    "info": "summarize a bag (topics, rates, gaps, labels, verdict), or a table of the episodes in folders",
    "qa": "judge episodes (pass/warn/fail with reasons) and store the verdict in each bag",
    "report": "one self-contained HTML report of a folder of episodes (the day, and each episode)",
    "recover": "rebuild readable MCAP files and metadata.yaml after a crash",
    "retarget": "retarget a BVH clip or a bag's human topics onto a robot offline",
    "robot": "check a robot mapping: chains, joints, limits, task frames, a PNG at q=0 and the calibration pose",
    "batch": "run qa, export or retarget over every bag of some folders (process pool or Ray cluster)",
    "export": "export episode bags to a LeRobot v3.0 dataset (parquet + AV1 video)",
    "episode": "start/stop/label/discard episodes through the recorder's services",
    "console": "operator console: single keys (--keys) or a web page for the floor tablet (--web)",
}


def build_parser(load_verbs=None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robot-capture",
        description="ROS 2 recording stack for humanoid teleoperation data.",
        epilog="Run `robot-capture <verb> --help` for a verb's options.",
    )
    from robot_capture import __version__

    parser.add_argument("--version", action="version", version=f"robot-capture {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="<verb>")
    for verb, summary in VERBS.items():
        if load_verbs is not None and verb not in load_verbs:
            sub.add_parser(verb, help=summary)
            continue
        try:
            mod = importlib.import_module(f"robot_capture.cli.{verb}")
        except ModuleNotFoundError as exc:
            if exc.name != f"robot_capture.cli.{verb}":
                raise
            continue  # verb not built in this checkout
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(load_verbs=None if verb is None or verb not in VERBS else {verb})
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2 if args.verb is None else 1
    from robot_capture.ros_env import ensure_ament_prefix

    ensure_ament_prefix()
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
