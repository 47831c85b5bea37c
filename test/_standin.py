"""Stand-in outside drivers for the non-sim floor tests (test_station_floor.py), one process each.

    python _standin.py robot RATE_HZ [STAMP_OFFSET_S]   # /joint_states: the robot mapping's joints,
                                                        # following /retarget/joint_command
    python _standin.py exo RATE_HZ [STAMP_OFFSET_S]     # /exo/joint_states: the exo arm model's
                                                        # joints, a slow arm swing

Header stamps are the nominal sample times on this PC's clock plus STAMP_OFFSET_S (a PC whose
clock is off), as a driver with its own sample clock stamps them. A thread with absolute deadlines
keeps the average rate (DESIGN.md "Floor bring-up": a plain rclpy timer
falls behind on a loaded machine). Prints "STANDIN <kind> up" once publishing. Stops on SIGINT/SIGTERM.
"""
import math
import signal
import sys
import threading
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState


def main() -> int:
    kind, rate = sys.argv[1], float(sys.argv[2])
    offset_ns = int(float(sys.argv[3]) * 1e9) if len(sys.argv) > 3 else 0
    rclpy.init()
    node = rclpy.create_node(f"standin_{kind}")
    if kind == "robot":
        from robot_capture.sim.robots import load_robot

        model, _ = load_robot("g1", "")
        names = list(model.joint_names)
        topic = "/joint_states"
    else:
        from robot_capture.retarget.exo import ExoArmModel

        names = list(ExoArmModel.load().joint_names)
        topic = "/exo/joint_states"
    q = [0.0] * len(names)
    index = {n: k for k, n in enumerate(names)}
    lock = threading.Lock()
    pub = node.create_publisher(JointState, topic, 10)

    def on_command(msg):
        with lock:
            for n, p in zip(msg.name, msg.position):
                if n in index and math.isfinite(p):
                    q[index[n]] = p

    if kind == "robot":
        node.create_subscription(JointState, "/retarget/joint_command", on_command, 10)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def publish():
        period = 1.0 / rate
        nxt = time.monotonic()
        t0 = time.monotonic()
        wall0 = time.time_ns() - int(t0 * 1e9)   # wall = wall0 + monotonic
        while not stop.is_set():
            t = nxt - t0
            msg = JointState()
            # stamped at the nominal sample time, as a driver with its own sample clock does
            now = wall0 + int(nxt * 1e9) + offset_ns
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
            msg.name = names
            if kind == "exo":  # both arms: shoulder flexion and elbow flexion swing slowly
                pos = [0.0] * len(names)
                for n, k in index.items():
                    if n.endswith("shoulder_flexion"):
                        pos[k] = 0.4 + 0.2 * math.sin(0.8 * t)
                    elif n.endswith("elbow_flexion"):
                        pos[k] = 0.6 + 0.3 * math.sin(1.1 * t)
                msg.position = pos
            else:
                with lock:
                    msg.position = list(q)
            pub.publish(msg)
            nxt += period
            delay = nxt - time.monotonic()
            if delay < -1.0:  # a stall of over a second: resync (a shorter one is caught up, as the
                nxt = time.monotonic()  # simulators' Ticker does, each sample with its own stamp)
            elif delay > 0:
                stop.wait(delay)

    th = threading.Thread(target=publish, daemon=True)
    th.start()
    print(f"STANDIN {kind} up", flush=True)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    while not stop.is_set():
        ex.spin_once(timeout_sec=0.1)
    th.join(2)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
