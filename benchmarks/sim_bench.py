#!/usr/bin/env python3
"""CPU cost and achieved rates of the floor simulators (each node in its own process).

Runs ``robot_sim_node`` (G1, 500 Hz /joint_states) and ``camera_node`` (synthetic head view
of G1 from the live /joint_states, 640x480 rgb8 at 30 Hz; then the JPEG option), subscribes
to their outputs from this process, and prints for each: messages/s received and the node
process's CPU time per wall second (``/proc/<pid>/stat`` utime+stime), in % of one core.
Target (issue 5): the camera at 640x480, 30 Hz well under 20 % of a core.

    python benchmarks/sim_bench.py               # 10 s per configuration
    python benchmarks/sim_bench.py --duration 3
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time

from _installed import node_command, require_installed  # noqa: E402

require_installed()


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(module: str, params: dict) -> subprocess.Popen:
    args = [*node_command(module), "--ros-args"]
    for k, v in params.items():
        args += ["-p", f"{k}:={str(v).lower() if isinstance(v, bool) else v}"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per configuration")
    args = p.parse_args(argv)
    from robot_capture.ros_env import ensure_ament_prefix

    ensure_ament_prefix()
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    import rclpy
    from rclpy.experimental import EventsExecutor
    from sensor_msgs.msg import CompressedImage, Image, JointState

    rclpy.init()
    node = rclpy.create_node("sim_bench")
    ex = EventsExecutor()
    ex.add_node(node)
    counts = {"/joint_states": 0, "/camera/bench/image_raw": 0, "/camera/bench/image_raw/compressed": 0}

    def counter(topic):
        def cb(_msg):
            counts[topic] += 1
        return cb

    # raw=True: count without deserializing, so this process stays light
    node.create_subscription(JointState, "/joint_states", counter("/joint_states"), 100, raw=True)
    node.create_subscription(Image, "/camera/bench/image_raw", counter("/camera/bench/image_raw"), 10, raw=True)
    node.create_subscription(CompressedImage, "/camera/bench/image_raw/compressed",
                             counter("/camera/bench/image_raw/compressed"), 10, raw=True)
    sim = start("robot_capture.nodes.robot_sim_node", {"robot": "g1", "rate_hz": 500.0})
    rows = []
    try:
        for label, cam_params, topic in (
            ("camera 640x480 rgb8 30 Hz (synthetic)", {"compressed": False}, "/camera/bench/image_raw"),
            ("camera 640x480 JPEG 30 Hz (synthetic)", {"compressed": True}, "/camera/bench/image_raw/compressed"),
        ):
            cam = start("robot_capture.nodes.camera_node", {"name": "bench", "source": "synthetic", "robot": "g1",
                                                            "width": 640, "height": 480, "rate_hz": 30.0, **cam_params})
            try:
                t_end = time.monotonic() + 30.0
                while time.monotonic() < t_end and (counts[topic] < 5 or counts["/joint_states"] < 50):
                    ex.spin_once(timeout_sec=0.05)
                t_end = time.monotonic() + 0.5  # settle while spinning (no backlog counted later)
                while time.monotonic() < t_end:
                    ex.spin_once(timeout_sec=0.05)
                c0 = dict(counts)
                cpu0 = {n: cpu_s(pr.pid) for n, pr in (("sim", sim), ("cam", cam))}
                t0 = time.monotonic()
                while time.monotonic() - t0 < args.duration:
                    ex.spin_once(timeout_sec=0.05)
                wall = time.monotonic() - t0
                cpu1 = {n: cpu_s(pr.pid) for n, pr in (("sim", sim), ("cam", cam))}
                rows.append((label, (counts[topic] - c0[topic]) / wall, 100 * (cpu1["cam"] - cpu0["cam"]) / wall))
                rows.append(("robot_sim /joint_states 500 Hz", (counts["/joint_states"] - c0["/joint_states"]) / wall,
                              100 * (cpu1["sim"] - cpu0["sim"]) / wall))
                print(f"  {rows[-2][0]}: {rows[-2][1]:.1f} msg/s, {rows[-2][2]:.1f} % CPU; "
                      f"{rows[-1][0]}: {rows[-1][1]:.1f} msg/s, {rows[-1][2]:.1f} % CPU", flush=True)
            finally:
                stop(cam)
    finally:
        stop(sim)
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    print()
    print("| node | messages/s | CPU (% of one core) |")
    print("|---|---:|---:|")
    for label, rate, cpu in rows:
        print(f"| {label} | {rate:.1f} | {cpu:.1f} |")
    with open("/proc/loadavg") as f:
        print(f"(load average during the run: {f.read().split()[0]} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
