#!/usr/bin/env python3
"""Retarget node command rate under an input flood, through real DDS (issue 14 item 7).

The retarget node (G1, exo source, ``--rate`` Hz commands) runs as its own process. This
script publishes exo readings for ``--seconds`` at a normal rate (``--normal-hz``, the
baseline) and then as fast as it can (the flood, ~10 kHz here), and counts the commands
received in each phase. Prints both command rates, their ratio to the nominal rate, the
flood's input rate, the largest per-command joint step as a fraction of the node's bound
(v_max x 1.5 command periods), and whether ``input_flood`` reached /diagnostics.

    python benchmarks/retarget_flood.py                 # 10 s per phase, 100 Hz commands

Target: the command rate during the flood within 10 % of the nominal rate. Exit 1 if missed.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _installed import node_command, require_installed

require_installed()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    ap.add_argument("--rate", type=float, default=100.0, help="node rate_hz")
    ap.add_argument("--normal-hz", type=float, default=200.0, help="input rate of the baseline phase")
    a = ap.parse_args(argv)
    from robot_capture.ros_env import ensure_ament_prefix

    ensure_ament_prefix()
    import numpy as np
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import JointState

    from robot_capture.retarget.exo import ExoArmModel
    from robot_capture.retarget.retargeter import Retargeter

    env = dict(os.environ, ROS_DOMAIN_ID=str(100 + os.getpid() % 100))
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    node_proc = subprocess.Popen([*node_command("robot_capture.nodes.retarget_node"), "--ros-args",
                                  "-p", "robot:=g1", "-p", "source:=exo", "-p", f"rate_hz:={a.rate}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env,
                                 cwd=tempfile.gettempdir())
    rclpy.init()
    node = rclpy.create_node("flood_bench")
    cmds, flags = [], []
    node.create_subscription(JointState, "/retarget/joint_command",
                             lambda m: cmds.append((time.monotonic(), np.array(m.position))), 1000)
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: flags.extend(
        kv.value for st in m.status for kv in st.values if kv.key == "flags"), 100)
    pub = node.create_publisher(JointState, "/exo/joint_states", 1000)
    names = ExoArmModel.load().joint_names
    base = np.zeros(len(names))
    try:
        t_end = time.monotonic() + 60
        while pub.get_subscription_count() == 0 and time.monotonic() < t_end:
            rclpy.spin_once(node, timeout_sec=0.1)

        def send(k):
            m = JointState(name=list(names), position=[float(v) for v in base + 0.3 * np.sin(0.01 * k)])
            m.header.stamp = node.get_clock().now().to_msg()
            pub.publish(m)

        for k in range(100):  # warm-up
            send(k)
            rclpy.spin_once(node, timeout_sec=0.01)

        def phase(flood: bool):
            n0, sent = len(cmds), 0
            t0 = time.monotonic()
            next_t = t0
            while time.monotonic() - t0 < a.seconds:
                send(sent)
                sent += 1
                if flood:
                    if sent % 50 == 0:
                        rclpy.spin_once(node, timeout_sec=0.0)
                else:
                    next_t += 1.0 / a.normal_hz
                    while time.monotonic() < next_t:
                        rclpy.spin_once(node, timeout_sec=max(0.0, next_t - time.monotonic()))
            t1 = time.monotonic()
            while time.monotonic() - t1 < 0.5:
                rclpy.spin_once(node, timeout_sec=0.05)
            got = [c for c in cmds[n0:] if t0 <= c[0] <= t1]
            return len(got) / (t1 - t0), sent / (t1 - t0)

        flags.clear()
        base_rate, base_in = phase(False)
        base_flagged = any("input_flood" in f for f in flags)
        flags.clear()
        flood_rate, flood_in = phase(True)
        flood_flagged = any("input_flood" in f for f in flags)
    finally:
        node_proc.terminate()
        node_proc.wait(15)
    r = Retargeter("g1")
    q = np.array([c[1] for c in cmds])
    worst = float((np.abs(np.diff(q, axis=0)) / (r.vmax * 1.5 / a.rate)).max()) if len(q) > 1 else 0.0
    print(f"retarget node, G1 exo, {a.rate:g} Hz commands; load average {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} CPUs")
    print(f"  baseline: input {base_in:7.0f} Hz -> commands {base_rate:6.1f} Hz ({base_rate / a.rate:.2f} x nominal);"
          f" input_flood flagged: {base_flagged}")
    print(f"  flood:    input {flood_in:7.0f} Hz -> commands {flood_rate:6.1f} Hz ({flood_rate / a.rate:.2f} x nominal,"
          f" {flood_rate / base_rate if base_rate else 0:.2f} x baseline); input_flood flagged: {flood_flagged}")
    print(f"  largest joint step: {worst:.2f} of the bound (v_max x 1.5 command periods)")
    ok = abs(flood_rate / a.rate - 1.0) <= 0.1 and flood_flagged and worst <= 1.0 + 1e-6
    print(f"target (flood command rate within 10 % of nominal, flagged, steps within the bound): "
          f"{'MET' if ok else 'NOT MET'}")
    node.destroy_node()
    rclpy.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
