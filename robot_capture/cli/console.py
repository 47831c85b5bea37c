"""``robot-capture console --keys | --web``: the operator's console (through the recorder's services)."""
from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
The operator's console. Both modes drive the recorder only through its services and its
console_state topic (rclpy), the same as `robot-capture episode ...`.

--keys   single keys in this terminal, no Enter (a USB foot pedal is a keyboard too):
         space start/stop, s success, f failure, d discard, u undo (discard the last
         episode), n next task, F force start, q quit (config/console_keys.yaml).
--web    a page for the floor tablet: tally light (green ready, red recording, amber not
         ready + reason), streams, task/operator, session counters, last QA verdict, big
         buttons and the same shortcuts. Binds 127.0.0.1; any other --host needs --token
         (or ROBOT_CAPTURE_CONSOLE_TOKEN), and a request without it gets 401.
"""

EPILOG = """\
examples:
  robot-capture console --keys
  robot-capture console --keys --key-map my_pedal.yaml --station a
  robot-capture console --web                               # http://127.0.0.1:8080/
  robot-capture console --web --host 0.0.0.0 --token s3cret  # tablet: http://<pc>:8080/?token=s3cret
"""


def add_parser(sub):
    p = sub.add_parser("console", help="operator console: single keys (--keys) or a web page (--web)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--keys", action="store_true", help="single-key console in this terminal")
    mode.add_argument("--web", action="store_true", help="serve the web console")
    p.add_argument("--recorder", default="", help="recorder node (default: /recorder, or /<station>/recorder)")
    p.add_argument("--station", default="", help="station namespace (default: none)")
    p.add_argument("--key-map", default="", help="key map YAML (default: the shipped config/console_keys.yaml)")
    p.add_argument("--host", default="127.0.0.1", help="web: address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="web: port (default: 8080)")
    p.add_argument("--token", default="", help="web: access token, required off loopback "
                   "(default: $ROBOT_CAPTURE_CONSOLE_TOKEN)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a recorder reply (default: 10)")
    return p


def run(args) -> int:
    import os

    from robot_capture.cli.episode import recorder_name
    from robot_capture.console.commands import ConfigError, load_key_map

    if not (args.keys or args.web):
        print("robot-capture console: choose --keys or --web", file=sys.stderr)
        return 2
    try:
        key_map = load_key_map(args.key_map or None)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"robot-capture console: {exc}", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("ROBOT_CAPTURE_CONSOLE_TOKEN", "")
    if args.web:
        from robot_capture.console.web import WebConfigError, check_bind

        try:
            check_bind(args.host, token)
        except WebConfigError as exc:
            print(f"robot-capture console: {exc}", file=sys.stderr)
            return 2
    from robot_capture.console.bridge import RecorderBridge

    try:
        name = recorder_name(args.recorder, args.station)
    except ValueError as exc:
        print(f"robot-capture console: {exc}", file=sys.stderr)
        return 2
    from pathlib import Path

    from robot_capture.paths import config_dir

    shown = Path(args.key_map).resolve() if args.key_map else config_dir() / "console_keys.yaml"
    print(f"config: key map {shown}", file=sys.stderr, flush=True)  # once every argument is fine
    bridge = RecorderBridge(name, timeout_s=args.timeout,
                            node_name="console_web" if args.web else "console_keys")
    try:
        if args.keys:
            from robot_capture.console.keys import run_keys

            return run_keys(bridge, key_map)
        from robot_capture.console.web import serve

        return serve(bridge, key_map, host=args.host, port=args.port, token=token)
    finally:
        bridge.close()
