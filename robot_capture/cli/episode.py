"""``robot-capture episode ACTION``: drive the recorder's episodes from a shell (pure rclpy).

Works in the pip install (no ``ros2`` command needed); every action is one recorder
command (``robot_capture.console.commands``), sent on the recorder's local socket when one
listens (``robot_capture.console.local_socket``, no DDS discovery), else through its service
(rclpy). ``purge`` works on the folder directly.
"""
from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Drive the recorder's episodes: each action calls one recorder service through rclpy, so
it works wherever `robot-capture up` runs. A start is refused while a required stream is
silent or far below its rate; the reply names the streams (--force records anyway and
flags the episode "forced"). After a stop, the last episode can be relabelled or discarded
(moved to <output_dir>/discarded/) until the next start. Nothing is deleted except by
`purge --yes`, and only in <output_dir>/discarded/.
"""

EPILOG = """\
examples:
  robot-capture episode status
  robot-capture episode start --task pick_cup --operator alice
  robot-capture episode success                 # stop, labelled success
  robot-capture episode relabel --success false --notes "dropped the cup"
  robot-capture episode discard-last            # undo the last episode
  robot-capture episode start --station a       # the recorder of station a (/a/recorder)
  robot-capture episode purge --output-dir recordings --yes
"""

ACTIONS = {
    "start": ("start", "start an episode (labels below are set first)"),
    "success": ("success", "stop, labelled success (none open: relabel the last one)"),
    "fail": ("failure", "stop, labelled failure (none open: relabel the last one)"),
    "stop": ("stop", "stop unlabelled (or as parameter episode_success)"),
    "discard": ("discard", "stop and move the bag to <output_dir>/discarded/"),
    "discard-last": ("discard_last", "move the last stopped episode to discarded/"),
    "relabel": ("relabel", "change labels of the last stopped episode"),
    "next-task": ("next_task", "switch to the next task of the recorder's `tasks` list"),
    "status": ("status", "state, streams (rate, age) and session counters"),
}


def _common(p) -> None:
    p.add_argument("--recorder", default="", help="recorder node (default: /recorder, or /<station>/recorder)")
    p.add_argument("--station", default="",
                   help="station namespace (up --station / station:=; default: none, the root namespace)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the recorder (default: 10)")
    p.add_argument("--transport", choices=("auto", "socket", "dds"), default="auto",
                   help="auto: the recorder's local socket, else its services over DDS")


def add_parser(sub):
    p = sub.add_parser("episode", help="start/stop/label/discard episodes through the recorder's services",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    acts = p.add_subparsers(dest="action", metavar="<action>")
    for name, (_cmd, help_) in ACTIONS.items():
        a = acts.add_parser(name, help=help_, description=help_,
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        _common(a)
        if name in ("start", "relabel"):
            for label in ("task", "operator", "scene", "notes"):
                a.add_argument(f"--{label}", default=None, help=f"{label} label (default: unchanged)")
        if name == "start":
            a.add_argument("--force", action="store_true", help="record even while a stream is not fresh")
        if name == "relabel":
            a.add_argument("--success", default=None, help="true | false | unknown (default: unchanged)")
        if name == "status":
            a.add_argument("--json", action="store_true", help="print the raw JSON")
    pg = acts.add_parser("purge", help="delete the bags in <output_dir>/discarded/ (needs --yes)",
                         description="Delete the episode bags that discard and discard-last moved to "
                                     "<output_dir>/discarded/, on the disk directly (no recorder needed). "
                                     "Without --yes it only lists what would be deleted; nothing outside "
                                     "discarded/ is ever touched.",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    pg.add_argument("--output-dir", default="recordings", help="the recorder's output_dir")
    pg.add_argument("--older-than-s", type=float, default=0.0,
                    help="only bags discarded at least this many seconds ago")
    pg.add_argument("--yes", action="store_true", help="really delete (without it: list what would go)")
    return p


def recorder_name(recorder: str, station: str) -> str:
    """The recorder's fully qualified node name from ``--recorder`` or ``--station``.

    Raises:
        ValueError: not a valid ROS name (one line naming the flag), before rclpy sees it.
    """
    from robot_capture.config_schema import ros_name_problem

    flag, name = ("--recorder", "/" + recorder.strip("/")) if recorder else (
        "--station", f"/{station.strip('/')}/recorder" if station.strip("/") else "/recorder")
    problem = ros_name_problem(name)
    if problem:
        raise ValueError(f"{flag} {recorder or station!r}: not a valid ROS name ({name} {problem})")
    return name


def _purge(args) -> int:
    from pathlib import Path

    from robot_capture.episodes import DISCARDED_DIR, find_bags, purge_discarded

    root = Path(args.output_dir)
    if not root.is_dir():
        print(f"robot-capture episode purge: {root}: no such directory", file=sys.stderr)
        return 2
    d = root / DISCARDED_DIR
    bags = find_bags([d], include_discarded=True) if d.is_dir() else []
    if not args.yes:
        for b in bags:
            print(f"would delete {b}")
        print(f"{len(bags)} discarded bag(s) in {d}; run again with --yes to delete them")
        return 0
    gone = purge_discarded(root, older_than_s=args.older_than_s)
    for g in gone:
        print(f"deleted {g}")
    print(f"{len(gone)} discarded bag(s) deleted")
    return 0


def run(args) -> int:
    if not getattr(args, "action", None):
        print("robot-capture episode: give an action: " + ", ".join([*ACTIONS, "purge"]), file=sys.stderr)
        return 2
    if args.action == "purge":
        return _purge(args)
    from robot_capture.floor.client import EpisodeClientError

    try:
        name = recorder_name(args.recorder, args.station)
    except ValueError as exc:
        print(f"robot-capture episode {args.action}: {exc}", file=sys.stderr)
        return 2
    try:
        if args.transport != "dds":
            from robot_capture.console.local_socket import LocalSocketUnavailable
            from robot_capture.floor.client import SocketEpisodeClient

            try:
                return _verb(SocketEpisodeClient(name, timeout_s=args.timeout), args)
            except LocalSocketUnavailable as exc:  # nothing was sent: the services may serve it
                if args.transport == "socket":
                    raise EpisodeClientError(f"no recorder on its local socket ({exc}); is it running on "
                                             "this machine, as this user, on this ROS_DOMAIN_ID?") from None
        from robot_capture.floor.client import EpisodeClient

        with EpisodeClient(name, timeout_s=args.timeout, discovery_timeout_s=args.timeout,
                           node_name="episode_cli") as client:
            return _verb(client, args)
    except EpisodeClientError as exc:
        print(f"robot-capture episode {args.action}: {exc}", file=sys.stderr)
        return 1


def _verb(client, args) -> int:
    """Run the action on ``client`` (EpisodeClient or SocketEpisodeClient) and print its answer."""
    cmd = ACTIONS[args.action][0]
    if cmd == "status":
        s = client.status()
        if args.json:
            import json

            print(json.dumps(s, indent=1))
        else:
            from robot_capture.console.text import status_lines

            print("\n".join(status_lines(s)))
        return 0
    if cmd == "start":
        labels = {k: getattr(args, k) for k in ("task", "operator", "scene", "notes")
                  if getattr(args, k) is not None}
        print(client.start_episode(force=args.force, **labels))
        return 0
    if cmd == "relabel":
        labels = {k: getattr(args, k) for k in ("task", "operator", "scene", "notes", "success")}
        print(client.command("relabel", **labels))
        return 0
    print(client.command(cmd))
    return 0
