"""``robot-capture record``: run the recorder node in this process (see recorder_node)."""
from __future__ import annotations

import argparse

HELP = "record ROS 2 topics into episode bags (fronts the recorder node)"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "record", help=HELP,
        description="Record ROS 2 topics into rosbag2 MCAP bag directories, one per episode, named "
                    "<YYYYmmdd-HHMMSS>_<task-slug>_<seq> in --output. Messages are stored as received "
                    "(raw CDR); QoS adapts to the publishers; new topics are picked up while recording. "
                    "By default an episode starts at once; with --no-auto-start, drive episodes with the "
                    "node's services (/recorder/start_episode, stop_episode, stop_episode_success, "
                    "stop_episode_failure, discard_episode, split: std_srvs/Trigger). Status on /diagnostics.",
        epilog="Ctrl-C or SIGTERM closes the open episode and writes metadata.yaml. "
               "Example: robot-capture record -a -x '^/rosout$' --task 'pick cube' -o recordings")
    p.add_argument("topics", nargs="*", help="topics to record")
    p.add_argument("-a", "--all", action="store_true", help="record every (non-hidden) topic")
    p.add_argument("-e", "--regex", default="", help="also record topics matching this regex (re.search; default: none)")
    p.add_argument("-x", "--exclude", default="", help="never record topics matching this regex (default: none)")
    p.add_argument("-o", "--output", default="recordings", help="folder receiving the episode bags (default: %(default)s)")
    p.add_argument("--task", default="", help="task label (free text; the folder name uses a safe slug; default: empty)")
    p.add_argument("--operator", default="", help="operator label (default: empty)")
    p.add_argument("--scene", default="", help="scene label (default: empty)")
    p.add_argument("--notes", default="", help="free notes (default: empty)")
    p.add_argument("--compression", choices=("none", "lz4", "zstd"), default="none",
                   help="MCAP chunk compression (default none, as rosbag2: zstd saves ~7%% on raw images for up to a core of CPU at 6 cameras; record JPEG camera topics to save bytes)")
    p.add_argument("--compression-level", type=int, default=None, help="lz4/zstd level (default: library's)")
    p.add_argument("--chunk-size", type=int, default=4 * 1024 * 1024, help="bytes per MCAP chunk (default 4 MiB)")
    p.add_argument("--max-bag-size", type=int, default=0, help="split files at this many bytes (0: never; default 0)")
    p.add_argument("--max-bag-duration", type=float, default=0.0, help="split files every S seconds (0: never; default 0)")
    p.add_argument("--flush-interval", type=float, default=1.0,
                   help="seconds of data a crash (SIGKILL) can lose at most (default 1)")
    p.add_argument("--disk-min-free-mb", type=float, default=1024.0,
                   help="stop the episode when free space drops below this (MB; 0: off; default %(default)s)")
    p.add_argument("--robot", default="", help="robot name: attach its URDF and mapping config (default: none)")
    p.add_argument("--urdf", default="", help="URDF file to attach (overrides --robot's; default: none)")
    p.add_argument("--attach", action="append", default=[], metavar="FILE", help="config file to attach (repeat; default: none)")
    p.add_argument("--no-auto-start", action="store_true", help="wait for ~/start_episode instead")
    p.add_argument("--discovery-interval", type=float, default=1.0, help="topic discovery poll period (s; default %(default)s)")
    p.add_argument("--status-every", type=float, default=10.0, metavar="S",
                   help="print a progress line (messages, MB, drops, disk free) every S s (0: off; default %(default)s)")
    p.add_argument("--node-name", default="recorder", help="node name (services are /<name>/...; default %(default)s)")
    p.add_argument("--dds", default="profile", metavar="TRANSPORT",
                   help="Fast DDS settings of this process, as the floor's dds_transport: profile (the "
                        "shipped XML profile, loss-free for raw cameras, talks to default participants), "
                        "inherit (the environment as it is), or a FASTDDS_BUILTIN_TRANSPORTS set such as "
                        "LARGE_DATA. A FASTDDS_*/FASTRTPS_* variable already set wins (default %(default)s)")
    return p


def overrides(args) -> list:
    """rclpy Parameters equivalent to the CLI flags."""
    from rclpy.parameter import Parameter

    values = {
        "output_dir": args.output, "all": bool(args.all), "regex": args.regex, "exclude": args.exclude,
        "task": args.task, "operator": args.operator, "scene": args.scene, "notes": args.notes,
        "compression": args.compression,
        "compression_level": -100 if args.compression_level is None else int(args.compression_level),
        "chunk_size": int(args.chunk_size), "max_bag_size": int(args.max_bag_size),
        "max_bag_duration_s": float(args.max_bag_duration), "flush_interval_s": float(args.flush_interval),
        "disk_min_free_mb": float(args.disk_min_free_mb), "robot": args.robot, "urdf": args.urdf,
        "auto_start": not args.no_auto_start, "discovery_interval_s": float(args.discovery_interval),
        "status_log_s": float(args.status_every),
    }
    out = [Parameter(k, value=v) for k, v in values.items()]
    if args.topics:
        out.append(Parameter("topics", Parameter.Type.STRING_ARRAY, list(args.topics)))
    if args.attach:
        out.append(Parameter("attach_configs", Parameter.Type.STRING_ARRAY, list(args.attach)))
    return out


def run(args) -> int:
    if not (args.topics or args.all or args.regex):
        print("error: give topics, --all or --regex")
        return 2
    from robot_capture.cli.outputs import OutputPathError, check_output_dir

    try:  # in words before the node starts (it said `[Errno 2] ... '/proc/nope'`)
        check_output_dir(args.output, "--output", create=True)
    except OutputPathError as exc:
        print(f"robot-capture record: {exc}", file=__import__("sys").stderr)
        return 2
    from robot_capture.cli.plain_stderr import strip_ansi_when_piped
    from robot_capture.floor.graph import apply_dds_environment
    from robot_capture.nodes import recorder_node

    strip_ansi_when_piped()  # Fast DDS colours its own error lines on fd 2 (issue 23)

    try:
        apply_dds_environment(args.dds)
    except ValueError as exc:
        print(f"error: --dds: {exc}")
        return 2
    return recorder_node.run(overrides(args), args=["robot-capture", "--ros-args", "-r", f"__node:={args.node_name}"])
