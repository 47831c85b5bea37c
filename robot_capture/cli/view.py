"""``robot-capture view``: the station's topics live in Foxglove (foxglove-sdk WebSocket server)."""
from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Serve the station's topics to Foxglove over a WebSocket: joint states, the robot's transforms
(/tf, /tf_static, computed from /joint_states and the URDF as robot_state_publisher does), the
robot model (/robot_description), /diagnostics, the recorder's episode state and the cameras
(Image, CompressedImage; CompressedVideo when its message package is installed).

Open it in Foxglove: Open connection -> Foxglove WebSocket -> ws://127.0.0.1:8765 (add the 3D
panel; its URDF layer reads /robot_description). Binds 127.0.0.1; any other --host needs
--token (or ROBOT_CAPTURE_CONSOLE_TOKEN), and a client must then connect to
ws://<pc>:<port>/?token=<token>. Needs foxglove-sdk: pip install 'robot_capture[view]'.
"""

EPILOG = """\
examples:
  robot-capture view                                 # the sim floor's /robot_description
  robot-capture view --robot g1                      # a real station: the model from the mapping
  robot-capture view --host 0.0.0.0 --token s3cret   # a laptop: ws://<pc>:8765/?token=s3cret
"""


def add_parser(sub):
    p = sub.add_parser("view", help="serve the station's topics live to Foxglove (WebSocket)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robot", default="", help="robot mapping name or .urdf path for the model "
                   "(default: the floor's /robot_description)")
    p.add_argument("--urdf", default="", help="URDF path for the model (default: none; overrides --robot's)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765, Foxglove's)")
    p.add_argument("--token", default="", help="access token, required off loopback "
                   "(default: $ROBOT_CAPTURE_CONSOLE_TOKEN)")
    p.add_argument("--recorder", default="", help="recorder node whose episode state is shown "
                   "(default: /recorder, or /<station>/recorder)")
    p.add_argument("--station", default="", help="station namespace (default: none)")
    p.add_argument("--topics", default="", help="comma-separated topics to serve (default: every topic of a "
                   "served type)")
    p.add_argument("--rate", type=float, default=30.0, help="at most this many joint states and /tf per "
                   "second to the viewer, Hz; 0 = all (default: 30)")
    return p


def _fail(msg: str) -> int:
    print(f"robot-capture view: {msg}", file=sys.stderr)
    return 2


def run(args) -> int:
    import math
    import os

    from robot_capture.cli.episode import recorder_name
    from robot_capture.view.server import ViewError

    token = args.token or os.environ.get("ROBOT_CAPTURE_CONSOLE_TOKEN", "")
    if not (0 <= args.rate < math.inf):
        return _fail(f"--rate {args.rate} must be finite and >= 0")
    if not (0 <= args.port <= 65535):
        return _fail(f"--port {args.port} is not a TCP port (0-65535)")
    try:
        recorder = recorder_name(args.recorder, args.station)
    except ValueError as exc:
        return _fail(str(exc))
    urdf_text = ""
    if args.robot or args.urdf:
        from robot_capture.view.description import robot_description
        from robot_capture.view.transforms import RobotTransforms

        try:
            urdf_text = robot_description(args.robot or "g1", args.urdf)
            RobotTransforms(urdf_text)  # a malformed URDF is said here, before anything starts
        except KeyError as exc:
            return _fail(str(exc.args[0]) if exc.args else str(exc))
        except (OSError, ValueError) as exc:
            return _fail(str(exc))
    try:
        from robot_capture.view.server import LiveView

        view = LiveView(host=args.host, port=args.port, token=token, tf_max_hz=args.rate)
    except ViewError as exc:
        return _fail(str(exc))
    try:
        if urdf_text:
            view.robot_description(urdf_text)
        print(f"[view] serving on {view.url}{' (token required: ?token=...)' if view.gate else ''}; "
              "open it in Foxglove: Open connection -> Foxglove WebSocket", file=sys.stderr, flush=True)
        return _spin(view, recorder, args.topics, bool(urdf_text))
    finally:
        view.stop()


def _spin(view, recorder: str, topics: str, own_description: bool) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from robot_capture.ros_env import ensure_ament_prefix
    from robot_capture.view.ros_source import RosSource

    ensure_ament_prefix()
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[view] %(message)s"))
    vlog = logging.getLogger("robot_capture.view")
    vlog.addHandler(handler)
    vlog.setLevel(logging.INFO)  # "serving <topic> (<type>)" as topics appear; errors in plain words
    rclpy.init()
    node = rclpy.create_node("view")
    try:
        RosSource(node, view, recorder=recorder, topics=[t.strip() for t in topics.split(",")],
                  own_description=own_description)
        ex = SingleThreadedExecutor()
        ex.add_node(node)
        ex.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
