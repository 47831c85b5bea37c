"""retarget node: operator input (exoskeleton or VR) -> humanoid joint commands.

Subscribes (by source): ``/exo/joint_states`` (sensor_msgs/JointState) for ``exo`` and
``direct``; ``/vr/head``, ``/vr/left_wrist``, ``/vr/right_wrist`` (geometry_msgs/PoseStamped)
and ``/vr/left_hand``, ``/vr/right_hand`` (geometry_msgs/PoseArray, OpenXR joints) for ``vr``;
always ``/retarget/enable`` (std_msgs/Bool deadman).

Publishes, at ``rate_hz`` (0: once per input, the lowest latency):
``/retarget/joint_command`` (sensor_msgs/JointState: robot joint names, positions, velocities; with the
mapping's ``hands:`` every hand joint too, retargeted from ``/vr/<side>_hand`` whatever the source),
``/retarget/targets`` (geometry_msgs/PoseArray in the robot base frame, task order),
and ``/diagnostics`` (diagnostic_msgs/DiagnosticArray, ``diagnostics_rate_hz``). Every
command and target message carries the header stamp of the input it came from.
All logic lives in :class:`robot_capture.retarget.live.LiveRetarget`.

Input floods: with a fixed rate the input subscriptions are polled
(:mod:`robot_capture.nodes._polled`): KEEP_LAST 1 subscriptions of the companion node
``_retarget_input``, which no executor spins, so the middleware (C++) keeps only the newest
message and Python is never woken per message.
The command timer takes the newest of each topic (raw CDR), deserializes it and steps, so
a 10 kHz burst costs Python nothing and the command rate holds. The messages the
middleware replaced unread are counted from the gaps in each publisher's sequence
numbers (``input_flood`` in /diagnostics above ``flood_hz``, the rate judged over
:data:`robot_capture.retarget.input_checks.FLOOD_WINDOW_S`). The receive time is the
middleware's, so a stale input's warning tells a clock problem (old at receive) from a loaded
machine (fresh at receive, old at use: :func:`robot_capture.retarget.input_checks.stale_reason`).
With ``rate_hz`` 0 every message is taken at once by a callback and stepped,
through a token bucket (1 kHz, bursts of 20): a flood gives at most 1 kHz of commands,
bunched deliveries still get one command each.
"""
from __future__ import annotations

import math
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool

from robot_capture.nodes._convert import (diagnostic_status, joint_state_msg, pose_array_cdr,
                                          pose_array_to_matrices, pose_to_matrix, stamp_to_sec)
from robot_capture.nodes._duplicate import DuplicateWatch
from robot_capture.nodes._polled import input_node, take
from robot_capture.nodes._run import StartupError, declare, run


class RetargetNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("retarget", **kwargs)
        p = lambda name, default, text: declare(self, name, default, text)  # noqa: E731
        robot = p("robot", "g1", "robot mapping: name in config/robots or a mapping YAML path")
        self.source = p("source", "exo", "human input: exo | vr | direct (exo with the robot's joint layout)")
        self.rate = p("rate_hz", 100.0, "command rate, Hz; 0 = one command per input message")
        require_enable = p("require_enable", False, "hold until /retarget/enable is true")
        calibration = p("calibration", "", "operator calibration YAML ('' = mapping defaults)")
        exo_config = p("exo_config", "", "exoskeleton arm model YAML ('' = config/human/exo_arm.yaml)")
        diag_rate = p("diagnostics_rate_hz", 1.0, "/diagnostics rate, Hz; 0 = one per command")
        stale = p("stale_after_s", -1.0, "staleness bound, s (-1 = the mapping's stale_after_s); an input older "
                  "than max(bound, stale_periods x its own period), or silent that long, holds the robot")
        stale_periods = p("stale_periods", 3.0, "the staleness bound is at least this many input periods")
        max_future = p("max_future_s", 0.05, "input stamps further ahead of their receive time are rejected, s")
        flood_hz = p("flood_hz", 2000.0, "input rate above which input_flood is flagged, Hz")
        if self.rate < 0 or diag_rate < 0:
            raise StartupError(f"rate_hz ({self.rate}) and diagnostics_rate_hz ({diag_rate}) must be >= 0")
        try:
            from robot_capture.retarget.calibration import Calibration
            from robot_capture.retarget.live import LiveRetarget
            from robot_capture.retarget.mapping import RobotMapping

            mapping = RobotMapping.load(robot)
            calib = Calibration.load(calibration) if calibration else None
            self.live = LiveRetarget(mapping, self.source, calibration=calib, rate_hz=self.rate,
                                     require_enable=require_enable, exo_config=exo_config,
                                     stale_after_s=None if stale < 0 else stale, stale_periods=stale_periods,
                                     max_future_s=max_future, flood_hz=flood_hz)
        except (OSError, KeyError, ValueError) as e:
            raise StartupError(f"retarget: cannot set up robot {robot!r} source {self.source!r}: {e}") from e
        self.base_frame = self.live.model.base_link
        self.diag_name = f"retarget: {mapping.robot}"
        self.diag_per_command = diag_rate == 0
        self.cmd_pub = self.create_publisher(JointState, "/retarget/joint_command", 10)
        self.targets_pub = self.create_publisher(PoseArray, "/retarget/targets", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # fixed rate: KEEP_LAST 1, polled, so under a flood the DDS reader (C++) replaces unread samples
        # and Python never sees them; one command per input (rate 0): callbacks and a deep queue
        qos = 1 if self.rate > 0 else 50
        self._latest: dict = {}  # key -> (raw CDR, receive time s): the newest message per input topic
        self._dropped = 0  # messages replaced unread since the last step
        self._last_step_s = -math.inf
        self._tokens = 20.0  # rate_hz 0: steps allowed now (refilled at 1 kHz, bursts of 20 pass)
        self._bucket_t = self._now_s()
        # hands first (a hand is used with the next pose): VR, or the mapping's hands with any source
        hand_sides = ("left", "right") if self.source == "vr" else tuple(self.live.hands.sides if self.live.hands else ())
        inputs = [(f"hand:{side}", PoseArray, f"/vr/{side}_hand") for side in hand_sides]
        if self.source in ("exo", "direct"):
            inputs += [("exo", JointState, "/exo/joint_states")]
        else:
            inputs += [(name, PoseStamped, f"/vr/{name}") for name in ("head", "left_wrist", "right_wrist")]
        self._polled: list = []  # (key, msg type, subscription): taken by the command timer
        self._last_seq: dict = {}  # (key, publisher gid) -> last publication sequence number taken
        self._input_node = input_node(self) if self.rate > 0 else None  # polled: never spun
        for key, cls, topic in inputs:
            owner = self._input_node or self
            sub = owner.create_subscription(cls, topic, lambda d, k=key: self._on_raw(k, d), qos, raw=True)
            if self._input_node is not None:
                self._polled.append((key, cls, sub))
        self.create_subscription(Bool, "/retarget/enable", self._on_enable, 10)
        self._duplicate = DuplicateWatch(self, act="not commanding the robot until it is gone (the robot holds)")
        if self.rate > 0:
            self.create_timer(1.0 / self.rate, self._tick)
        if diag_rate > 0:
            self.create_timer(1.0 / diag_rate, lambda: self._publish_diagnostics())
        self.get_logger().info(
            f"retarget: {mapping.robot} ({len(self.live.joint_names)} joints) from {self.source}, "
            f"{'every input' if self.rate == 0 else f'{self.rate:g} Hz'}, require_enable={require_enable}"
        )

    # ------------------------------------------------------------------ inputs
    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_raw(self, key: str, data: bytes) -> None:
        """Keep the newest message of ``key`` (no deserialization here: a flood stays cheap)."""
        if key in self._latest:
            self._dropped += 1
        self._latest[key] = (data, self._now_s())
        if self.rate == 0:  # one command per input: take it now; steps are a 1 kHz token bucket
            self._take_inputs()
            now = self._now_s()
            self._tokens = min(20.0, self._tokens + (now - self._bucket_t) * 1000.0)
            self._bucket_t = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                self._tick()

    def _poll_inputs(self) -> None:
        """Take the newest waiting message of each polled input (the middleware kept only it)."""
        now_s, wall_ns = self._now_s(), time.time_ns()
        for key, cls, sub in self._polled:
            try:
                while (taken := take(sub, cls)) is not None:
                    data, info = taken
                    if key in self._latest:
                        self._dropped += 1
                    self._dropped += self._sequence_gap(key, info)
                    rx = info.get("received_timestamp") or 0  # middleware receive time, ns (system clock)
                    age = (wall_ns - rx) * 1e-9 if rx else 0.0
                    self._latest[key] = (data, now_s - min(max(age, 0.0), 10.0))
            except Exception as e:  # noqa: BLE001 - a failing take must not stop the commands
                self.get_logger().error(f"{key}: take failed: {e}", throttle_duration_sec=5.0)

    def _sequence_gap(self, key: str, info: dict) -> int:
        """Messages of this publisher the middleware replaced unread since the last one taken."""
        seq, gid = info.get("publication_sequence_number"), info.get("publisher_gid")
        if not seq:
            return 0
        # rclpy 7 (Jazzy) gives no publisher gid: per topic then. Two publishers on one input
        # interleave their numbers; the first step backwards turns the count off for that topic
        pk = (key, None if gid is None else bytes(gid["data"]) if isinstance(gid, dict) else bytes(gid))
        last, self._last_seq[pk] = self._last_seq.get(pk), seq
        if last is None:
            return 0
        if seq <= last and pk[1] is None:
            self._last_seq[pk] = float("inf")  # several publishers, no gid: not countable
            return 0
        return max(0, seq - last - 1)

    def _take_inputs(self) -> None:
        """Deserialize the newest message of each input topic and hand it to the session."""
        if self._polled:
            self._poll_inputs()
        items, self._latest = self._latest, {}
        if self._dropped:
            self.live.note_coalesced(self._dropped)
            self._dropped = 0
        for key, (data, recv) in items.items():
            try:
                if key == "exo":
                    self._on_exo(deserialize_message(data, JointState), recv)
                elif key.startswith("hand:"):
                    self._on_hand(key[5:], deserialize_message(data, PoseArray), recv)
                else:
                    self._on_vr(key, deserialize_message(data, PoseStamped), recv)
            except Exception as e:  # noqa: BLE001 - bad input must never kill the node
                self.get_logger().error(f"{key} input rejected: {e}", throttle_duration_sec=5.0)

    def _on_exo(self, msg: JointState, recv: float) -> None:
        warning = self.live.on_exo(msg.name, msg.position, stamp_to_sec(msg.header.stamp), token=msg.header.stamp,
                                   recv=recv)
        if warning:
            self.get_logger().warning(warning)

    def _on_vr(self, name: str, msg: PoseStamped, recv: float) -> None:
        self.live.on_vr(name, pose_to_matrix(msg.pose), stamp_to_sec(msg.header.stamp), token=msg.header.stamp,
                        recv=recv)

    def _on_hand(self, side: str, msg: PoseArray, recv: float) -> None:
        self.live.on_vr_hand(side, pose_array_to_matrices(msg), stamp_to_sec(msg.header.stamp), recv=recv)

    def _on_enable(self, msg: Bool) -> None:
        if bool(msg.data) != self.live.enabled:
            self.get_logger().info(f"deadman: {'enabled' if msg.data else 'disabled (holding)'}")
        self.live.set_enable(msg.data)

    # ----------------------------------------------------------------- outputs
    def _tick(self) -> None:
        self._take_inputs()
        now = self.get_clock().now()
        self._last_step_s = now.nanoseconds * 1e-9
        if self.rate == 0 and not self.live.has_new_input:
            return  # one command per input: nothing new arrived
        try:
            res = self.live.step(now.nanoseconds * 1e-9)
        except Exception as e:  # noqa: BLE001 - hold (publish nothing new) rather than die
            self.get_logger().error(f"retarget step failed: {e}", throttle_duration_sec=5.0)
            return
        if res is None:
            return
        out, stamp = res
        if self._duplicate.blocked:  # a second station's retarget node: neither commands the robot
            return
        self.cmd_pub.publish(joint_state_msg(stamp, *self.live.joint_command(out)))  # + coupled motor, hand joints
        if "stale" in out.flags:  # why: old at receive (clock/stamps) or only at use (a loaded machine)
            self.get_logger().warning(self.live.stale_reason(now.nanoseconds * 1e-9), throttle_duration_sec=5.0)
        try:
            # targets: empty while holding; not built when nobody subscribes
            targets = out.targets if self.targets_pub.get_subscription_count() else None
            if targets:
                T = [targets[f] for f in out.target_frames if f in targets]
                self.targets_pub.publish(pose_array_cdr(stamp.sec, stamp.nanosec, self.base_frame, T))
            for w in out.warnings or ():
                self.get_logger().warning(w)
            if self.diag_per_command:
                self._publish_diagnostics(stamp)
        except Exception as e:  # noqa: BLE001 - the command went out; never die on the extras
            self.get_logger().error(f"targets/diagnostics not published: {e}", throttle_duration_sec=5.0)

    def destroy_node(self) -> None:
        helper, self._input_node = getattr(self, "_input_node", None), None
        if helper is not None:
            helper.destroy_node()
        super().destroy_node()

    def _publish_diagnostics(self, stamp=None) -> None:
        level, message, values = self.live.diagnostics()
        if self._duplicate.blocked:
            level, message = 2, f"another node named {self._duplicate.fqn} on this domain: not commanding"
            values = {**values, "duplicate_node": "true"}
        msg = DiagnosticArray()
        msg.header.stamp = stamp if stamp is not None else self.get_clock().now().to_msg()
        msg.status = [diagnostic_status(self.diag_name, level, message, values, hardware_id=self.get_name())]
        self.diag_pub.publish(msg)


def main(args=None) -> int:
    return run(RetargetNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
