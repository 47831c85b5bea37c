"""player_node: publish a bag's stored CDR bytes back onto ROS 2 topics.

A ``foxglove_msgs/msg/CompressedVideo`` camera (recorded with ``codec: h264``) is decoded and
played as ``sensor_msgs/msg/Image`` (rgb8) on its topic, from its first keyframe.

Messages are published as stored (``Publisher.publish(bytes)``: no
deserialization), in ``log_time`` order across split files, on the schedule of
:class:`robot_capture.record.playback.PlaybackClock`. Each topic's publisher uses
the QoS recorded in the bag's ``offered_qos_profiles``.

Parameters (``--ros-args -p name:=value``):
    bag: "" (bag directory, required)   rate: 1.0   loop: false   start_offset_s: 0.0
    topics: [] (only these; empty = all)   remap: [] ("from:=to" strings)
    clock_hz: 0.0 (publish rosgraph_msgs/Clock on /clock at this rate; 0 = off; never past the
        log time of the next message to publish, so a late player's clock waits for its data)
    wait_for_subscribers: 0 (before playing, wait until every publisher, /clock's too, has
        this many subscriptions, up to wait_timeout_s: 10.0, then 0.5 s more: a writer can
        match a reader before the reader matches it, and best-effort samples sent in between
        are dropped)   start_delay_s: 0.0
When the bag has no ``/robot_description`` topic but carries the robot's URDF as an attachment,
it is published once on ``/robot_description`` (std_msgs/String, latched) before playing.
Exits 0 when playback is done (never with ``loop``), on SIGINT/SIGTERM too.
"""
from __future__ import annotations

import sys
import time

import rclpy
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from robot_capture.nodes._qos import import_message, qos_from_dict
from robot_capture.record.playback import PlaybackClock, parse_remaps, publisher_qos

PARAMS = {"bag": "", "rate": 1.0, "loop": False, "start_offset_s": 0.0, "topics": Parameter.Type.STRING_ARRAY,
          "remap": Parameter.Type.STRING_ARRAY, "clock_hz": 0.0, "wait_for_subscribers": 0,
          "wait_timeout_s": 10.0, "start_delay_s": 0.0}


class PlayerNode(Node):
    """Publishers for a bag's topics; :meth:`play` runs the schedule (see module docstring)."""

    def __init__(self, parameter_overrides=None, name: str = "player", **kwargs):
        super().__init__(name, parameter_overrides=parameter_overrides or [], **kwargs)
        for key, default in PARAMS.items():
            self.declare_parameter(key, default)
        from robot_capture.bag import BagReader

        bag = str(self._p("bag") or "")
        if not bag:
            raise ValueError("parameter 'bag' (the bag directory) is required")
        self.reader = BagReader(bag)
        wanted = {"/" + t.lstrip("/") for t in (self._p("topics") or []) if t}
        self.remap = parse_remaps(self._p("remap") or [])
        self.clock = PlaybackClock(self.reader.metadata.starting_time_ns, float(self._p("rate")),
                                   float(self._p("start_offset_s")))
        self.pubs = {}
        self.video = set()  # CompressedVideo topics (robot_capture.video): decoded, played as sensor_msgs/Image
        for topic, info in self.reader.topics.items():
            if wanted and topic not in wanted:
                continue
            if info.type == "foxglove_msgs/msg/CompressedVideo":
                self.video.add(topic)
            cls = import_message("sensor_msgs/msg/Image" if topic in self.video else info.type)
            if cls is None:
                self.get_logger().warning(f"{topic}: type {info.type} not installed; not played")
                continue
            out = self.remap.get(topic, topic)
            self.pubs[topic] = self.create_publisher(cls, out, qos_from_dict(publisher_qos(info.qos)))
        missing = sorted(wanted - set(self.reader.topics))
        if missing:
            import difflib

            hints = [f"{t} (did you mean {c[0]}?)" if (c := difflib.get_close_matches(t, list(self.reader.topics), 1))
                     else t for t in missing]
            if not self.pubs:  # nothing would be played: an error, not a warning and exit 0
                raise ValueError(f"no topic to play: {', '.join(hints)} not in the bag "
                                 f"(it has {', '.join(sorted(self.reader.topics))})")
            self.get_logger().warning(f"topics not in the bag: {', '.join(hints)}")
        self.description_pub = self._publish_description(wanted)
        self.clock_pub = None
        hz = float(self._p("clock_hz"))
        if hz > 0:
            from rosgraph_msgs.msg import Clock

            self._Clock = Clock
            self.clock_pub = self.create_publisher(Clock, "/clock", 10)
            self._clock_period = 1.0 / hz
            self._clock_next = 0.0
        self.published = 0

    def _publish_description(self, wanted):
        """The bag's attached URDF on /robot_description (latched), unless the bag has that topic."""
        from robot_capture.view import description as d

        if d.TOPIC in self.reader.topics or (wanted and d.TOPIC not in wanted):
            return None
        found = d.urdf_from_attachments(self.reader.attachments())
        if found is None:
            return None
        from std_msgs.msg import String

        pub = self.create_publisher(String, self.remap.get(d.TOPIC, d.TOPIC), qos_from_dict(d.LATCHED_QOS))
        pub.publish(String(data=found[1]))
        self.get_logger().info(f"{d.TOPIC}: the bag's attached {found[0]} (latched)")
        return pub

    def _p(self, name):
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException:
            return None

    def _tick_clock(self, limit_ns: int) -> None:
        """Publish /clock (at most ``clock_hz``): the bag time being played, but never past
        ``limit_ns``, the next message's log time. A player that fell behind (a starved
        machine) so never announces a time whose messages it has not published yet."""
        if self.clock_pub is None:
            return
        now = time.monotonic()
        if now >= self._clock_next:
            ns = min(self.clock.bag_now_ns(), limit_ns)
            msg = self._Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(ns, 1_000_000_000)
            self.clock_pub.publish(msg)
            self._clock_next = now + self._clock_period

    def _sleep_until_due(self, log_time_ns: int) -> bool:
        while rclpy.ok(context=self.context):
            self._tick_clock(log_time_ns)
            dt = self.clock.due_in(log_time_ns)
            if dt <= 0:
                return True
            time.sleep(min(dt, 0.02))
        return False

    def wait_for_subscribers(self) -> bool:
        """Wait until every publisher has ``wait_for_subscribers`` matches (or the timeout)."""
        n = int(self._p("wait_for_subscribers"))
        deadline = time.monotonic() + float(self._p("wait_timeout_s"))
        while n > 0 and rclpy.ok(context=self.context) and time.monotonic() < deadline:
            pubs = list(self.pubs.values()) + ([self.clock_pub] if self.clock_pub is not None else [])
            if all(p.get_subscription_count() >= n for p in pubs):
                time.sleep(0.5)  # the subscriber side may not have matched us yet (best effort drops)
                return True
            time.sleep(0.05)
        return n <= 0

    def play(self) -> int:
        """Publish the bag (again and again with ``loop``); returns messages published."""
        if not self.wait_for_subscribers():
            self.get_logger().warning("not every topic has its subscribers; playing anyway")
        delay = float(self._p("start_delay_s"))
        if delay > 0:
            time.sleep(delay)
        topics = list(self.pubs)
        while rclpy.ok(context=self.context):
            self.clock.restart()
            from robot_capture.video.decode import VideoDecoder, image_messages

            decoders = {t: VideoDecoder() for t in self.video}  # from the first keyframe of each pass
            for m in self.reader.messages(topics=topics, start_ns=self.clock.start_ns):
                if not self._sleep_until_due(m.log_time_ns):
                    return self.published
                if m.topic in decoders:
                    try:
                        for img in image_messages(decoders[m.topic], m.data):
                            self.pubs[m.topic].publish(img)
                            self.published += 1
                    except ValueError as exc:
                        self.get_logger().warning(f"{m.topic}: frame not decoded ({exc})", throttle_duration_sec=5.0)
                    continue
                self.pubs[m.topic].publish(m.data)
                self.published += 1
            if not bool(self._p("loop")):
                break
        self.wait_for_delivery()
        return self.published

    def wait_for_delivery(self, timeout_s: float = 5.0) -> bool:
        """Before exiting, wait until reliable subscribers acknowledged everything published
        (``Publisher.wait_for_all_acked``), as ``ros2 bag play`` does: a process that exits
        right after its last publish loses the messages still in flight. Returns True if
        all were acknowledged within ``timeout_s``."""
        from rclpy.duration import Duration

        deadline = time.monotonic() + timeout_s
        ok = True
        for pub in [*self.pubs.values(), *([self.clock_pub] if self.clock_pub is not None else [])]:
            left = max(0.0, deadline - time.monotonic())
            try:
                ok = pub.wait_for_all_acked(Duration(seconds=left)) and ok
            except Exception:  # noqa: BLE001 - best-effort publishers or an rmw without acks
                continue
        if not ok:
            self.get_logger().warning(f"not every message was acknowledged within {timeout_s:.0f} s")
        return ok


def run(parameter_overrides=None, args=None) -> int:
    """Play until done or SIGINT/SIGTERM. Returns the exit code."""
    from robot_capture.bag.errors import BagError
    from robot_capture.ros_env import ensure_ament_prefix

    ensure_ament_prefix()
    rclpy.init(args=args)
    node = None
    try:
        node = PlayerNode(parameter_overrides)
        n = node.play()
        print(f"player: published {n} messages", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        return 0
    except (ValueError, OSError, BagError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


def main(args=None) -> int:
    """Entry point of ``ros2 run robot_capture player_node --ros-args -p bag:=DIR``."""
    return run(args=sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())
