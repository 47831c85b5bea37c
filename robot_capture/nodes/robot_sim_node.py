"""robot_sim node: a humanoid from its URDF following ``/retarget/joint_command``.

Subscribes ``/retarget/joint_command`` (sensor_msgs/JointState, robot joint names) and
publishes ``/joint_states`` (sensor_msgs/JointState: every movable joint, locked ones at
their locked values, positions and velocities) at ``rate_hz``, on a fixed sample grid
(:class:`robot_capture.sim.ticker.Ticker`: stamps are the sample times, late timer calls
catch up so the average rate is exact). Dynamics and limits:
:class:`robot_capture.sim.robot_sim.FirstOrderFollower`. Publishes the robot's URDF once on
``/robot_description`` (std_msgs/String, transient local = latched) for RViz and Foxglove.
"""
from __future__ import annotations

import math

import array

from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from robot_capture.nodes._convert import joint_state_msg, ns_to_stamp
from robot_capture.nodes._qos import qos_from_dict
from robot_capture.nodes._run import StartupError, declare, run
from robot_capture.sim.robot_sim import FirstOrderFollower
from robot_capture.sim.robots import load_robot
from robot_capture.sim.ticker import MAX_STALL_S, Ticker
from robot_capture.view import description


class RobotSimNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("robot_sim", **kwargs)
        p = lambda name, default, text: declare(self, name, default, text)  # noqa: E731
        robot = p("robot", "g1", "robot mapping name (config/robots) or mapping YAML path")
        urdf = p("urdf", "", "URDF path; overrides the robot's URDF (nothing locked)")
        rate = p("rate_hz", 500.0, "/joint_states publish rate, Hz")
        tau = p("time_constant_s", 0.05, "first-order time constant, s")
        if not (0 < rate < math.inf and 0 < tau < math.inf):  # NaN and .inf too
            raise StartupError(f"rate_hz ({rate}) and time_constant_s ({tau}) must be finite and > 0")
        try:
            model, locked = load_robot(robot, urdf)
        except (OSError, KeyError, ValueError) as e:
            raise StartupError(f"robot_sim: cannot load robot {robot!r} / urdf {urdf!r}: {e}") from e
        try:
            urdf_text = description.robot_description(robot, urdf)
        except (OSError, KeyError, ValueError) as e:
            raise StartupError(f"robot_sim: cannot read the URDF of {robot!r} / urdf {urdf!r}: {e}") from e
        self.description_pub = self.create_publisher(String, description.TOPIC, qos_from_dict(description.LATCHED_QOS))
        self.description_pub.publish(String(data=urdf_text))  # latched: late subscribers get it too
        q0 = model.neutral()
        self.sim = FirstOrderFollower(model.joint_names, model.lower, model.upper, model.velocity_limit,
                                      tau=tau, q0=q0, locked=locked)
        self._warned: set[str] = set()
        self.pub = self.create_publisher(JointState, "/joint_states", 10)
        self.create_subscription(JointState, "/retarget/joint_command", self._on_command, 10)
        self._msg = joint_state_msg(self.get_clock().now().to_msg(), self.sim.joint_names, self.sim.q, self.sim.qd)
        self.ticker = Ticker(rate, self.get_clock().now().nanoseconds)
        self._last_ns = None
        self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(
            f"robot_sim: {model.name} {len(model.joint_names)} joints ({len(locked)} locked), "
            f"{rate:g} Hz, tau {tau:g} s"
        )

    def _on_command(self, msg: JointState) -> None:
        ignored = self.sim.set_command(msg.name, msg.position)
        new = [n for n in ignored if n not in self._warned and n not in self.sim.index]
        if new:
            self._warned.update(new)
            self.get_logger().warning(f"joint_command names unknown to the robot (ignored): {new}")

    def _tick(self) -> None:
        # every sample due on the fixed grid (a burst after a stall), stamped at its sample time
        for _k, stamp_ns in self.ticker.due(self.get_clock().now().nanoseconds):
            dt = 0.0 if self._last_ns is None else (stamp_ns - self._last_ns) * 1e-9
            self._last_ns = stamp_ns
            # the whole interval: the first-order step is exact for any dt, and a stall longer than the
            # ticker's catch-up skips grid points, so capping dt (0.1 s before) left the simulated robot
            # behind its own stamps after a starved second (a 1 s step response read 86 % of the step)
            self.sim.step(min(dt, MAX_STALL_S))
            msg = self._msg  # reused: names set once; array.array takes rclpy's fast path
            msg.header.stamp = ns_to_stamp(stamp_ns)
            msg.position = array.array("d", self.sim.q.tobytes())
            msg.velocity = array.array("d", self.sim.qd.tobytes())
            self.pub.publish(msg)


def main(args=None) -> int:
    return run(RobotSimNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
