"""``robot-capture play BAG``: run the player node in this process (see player_node)."""
from __future__ import annotations

import argparse
import sys

HELP = "publish a bag's stored CDR bytes back onto ROS 2 topics"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "play", help=HELP,
        description="Publish the messages of a rosbag2 MCAP bag directory as stored (CDR bytes, no "
                    "deserialization), in receive-time order across split files, with each topic's "
                    "recorded QoS.",
        epilog="Example: robot-capture play recordings/20250101-120000_pick_0000 --rate 2 "
               "--topics /joint_states --remap /joint_states:=/replay/joint_states --clock 100")
    p.add_argument("bag", help="bag directory")
    p.add_argument("-r", "--rate", type=float, default=1.0, help="speed factor (default 1.0)")
    p.add_argument("-l", "--loop", action="store_true", help="play again and again until Ctrl-C")
    p.add_argument("--start-offset", type=float, default=0.0, metavar="S", help="skip the first S seconds (default 0)")
    p.add_argument("--topics", nargs="+", default=[], help="only these topics (default: all); none matching is an error")
    p.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="publish FROM under name TO (default: none)")
    p.add_argument("--clock", type=float, default=0.0, metavar="HZ",
                   help="publish /clock (rosgraph_msgs/Clock) with the bag time at HZ (default off)")
    p.add_argument("--wait-for-subscribers", type=int, default=1, metavar="N",
                   help="before playing, wait (up to --wait-timeout) until each topic has N subscribers, "
                        "so the first messages are not published to nobody; 0 = start at once (default 1)")
    p.add_argument("--wait-timeout", type=float, default=10.0, metavar="S",
                   help="give up waiting for subscribers after S seconds and play anyway (default 10)")
    p.add_argument("--delay", type=float, default=0.0, metavar="S",
                   help="sleep S seconds before playing (default 0)")
    p.add_argument("--dds", default="profile", metavar="TRANSPORT",
                   help="Fast DDS settings of this process, as the floor's dds_transport: profile (the "
                        "shipped XML profile, loss-free for raw cameras, talks to default participants), "
                        "inherit (the environment as it is), or a FASTDDS_BUILTIN_TRANSPORTS set such as "
                        "LARGE_DATA. A FASTDDS_*/FASTRTPS_* variable already set wins (default %(default)s)")
    return p


def run(args) -> int:
    from robot_capture.bag.completeness import COMPLETE, check_bag
    from robot_capture.bag.errors import NotABagError

    try:  # before any DDS: an incomplete bag is never played as if whole (issue 23)
        whole = check_bag(args.bag)
    except NotABagError as exc:
        print(f"robot-capture play: {exc}", file=sys.stderr)
        return 2
    if whole.status != COMPLETE:
        print(f"robot-capture play: {whole.line()}", file=sys.stderr)
        return 1

    from rclpy.parameter import Parameter

    from robot_capture.floor.graph import apply_dds_environment
    from robot_capture.nodes import player_node

    try:
        apply_dds_environment(args.dds)
    except ValueError as exc:
        print(f"error: --dds: {exc}")
        return 2

    params = [Parameter("bag", value=str(args.bag)), Parameter("rate", value=float(args.rate)),
              Parameter("loop", value=bool(args.loop)), Parameter("start_offset_s", value=float(args.start_offset)),
              Parameter("clock_hz", value=float(args.clock)),
              Parameter("wait_for_subscribers", value=int(args.wait_for_subscribers)),
              Parameter("wait_timeout_s", value=float(args.wait_timeout)),
              Parameter("start_delay_s", value=float(args.delay))]
    if args.topics:
        params.append(Parameter("topics", Parameter.Type.STRING_ARRAY, list(args.topics)))
    if args.remap:
        params.append(Parameter("remap", Parameter.Type.STRING_ARRAY, list(args.remap)))
    return player_node.run(params, args=["robot-capture"])
