"""The rclpy part of ``robot-capture station check``: sample every declared stream for a few seconds.

One node in its own rclpy context (so ``up`` can run it next to its watch node) subscribes to
every declared topic with its declared type, raw (CDR bytes, never deserialized but the last
robot JointState), on a companion node no executor spins (:mod:`robot_capture.nodes._polled`):
the loop takes what waits every 20 ms with the middleware's receive time, so a starved process
does not see late receive times. Best-effort QoS, which matches reliable and best-effort
publishers alike. The header stamp is read from the CDR bytes of types whose first field is
``std_msgs/Header`` (stamp = int32 sec, uint32 nanosec after the 4-byte encapsulation header).

Timeline: subscribe, wait up to ``warmup_s`` until every required stream has sent one message
(discovery), then count for ``sample_s``. The judging is :mod:`robot_capture.floor.station_check`.
"""
from __future__ import annotations

import struct
import time

from robot_capture.floor.contract import Contract
from robot_capture.floor.station_check import Sample

__all__ = ["sample_streams", "header_stamp_ns"]


def header_stamp_ns(cdr: bytes) -> int | None:
    """The header stamp (ns) at the start of a CDR message whose first field is a std_msgs/Header;
    None when too short."""
    if len(cdr) < 12:
        return None
    order = "<" if cdr[1] & 1 else ">"
    sec, nsec = struct.unpack_from(order + "iI", cdr, 4)
    return sec * 1_000_000_000 + nsec


def sample_streams(contract: Contract, sample_s: float | None = None, warmup_s: float = 10.0,
                   namespace: str = "") -> tuple[dict[str, Sample], float]:
    """Sample every declared stream. Returns ``({topic: Sample}, window_s)``.

    Raises:
        RuntimeError: rclpy is not available (the message says to install ``[ros]``).
    """
    try:
        import rclpy
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rclpy.serialization import deserialize_message
    except ImportError as exc:
        raise RuntimeError(f"station check needs rclpy (pip install '.[ros]' or a ROS install): {exc}") from None
    from robot_capture.nodes._polled import take
    from robot_capture.nodes._qos import import_message

    sample_s = float(sample_s or contract.check.sample_s)
    from rclpy.signals import SignalHandlerOptions

    ctx = rclpy.Context()
    rclpy.init(context=ctx, signal_handler_options=SignalHandlerOptions.NO)  # `up` runs it in a thread
    node = rclpy.create_node("station_check", namespace=namespace or None, context=ctx,
                             start_parameter_services=False)
    try:
        qos = QoSProfile(depth=2000, reliability=ReliabilityPolicy.BEST_EFFORT)
        subs = {}
        for s in contract.streams:
            cls = import_message(s.type) if s.type else None
            if cls is None:
                continue
            stamped = list(cls.get_fields_and_field_types())[:1] == ["header"]
            subs[s.topic] = (node.create_subscription(cls, s.topic, lambda _m: None, qos, raw=True), cls, stamped)
        samples = {t: Sample(t) for t in subs}
        last_raw: dict[str, bytes] = {}

        def drain(count: bool) -> int:
            got = 0
            for topic, (sub, cls, stamped) in subs.items():
                while True:
                    r = take(sub, cls)
                    if r is None:
                        break
                    msg, info = r
                    got += 1
                    if not count:
                        sm = samples[topic]
                        sm.count = max(sm.count, 1)  # seen during warm-up (counted again below)
                        continue
                    sm = samples[topic]
                    sm.count += 1
                    sm.bytes_total += len(msg)
                    last_raw[topic] = msg
                    if stamped:
                        st = header_stamp_ns(msg)
                        recv = int((info or {}).get("received_timestamp") or time.time_ns())
                        if st:
                            sm.offsets_s.append((recv - st) / 1e9)
            return got

        required = [s.topic for s in contract.required() if s.topic in subs]
        deadline = time.monotonic() + warmup_s
        while time.monotonic() < deadline and not all(samples[t].count for t in required):
            drain(count=False)
            time.sleep(0.02)
        for sm in samples.values():
            sm.count = 0
        drain(count=False)  # what queued during the warm-up is not in the window
        for sm in samples.values():
            sm.count = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < sample_s:
            time.sleep(0.02)
            drain(count=True)
        window = time.monotonic() - t0
        types = dict(node.get_topic_names_and_types())
        for topic, sm in samples.items():
            sm.types = list(types.get(topic, []))
            cls = subs[topic][1]
            if topic in last_raw and cls.__name__ == "JointState":
                try:
                    sm.joint_names = list(deserialize_message(last_raw[topic], cls).name)
                except Exception:  # noqa: BLE001 - a malformed message: no names to compare
                    sm.joint_names = None
        # a declared topic whose type could not be imported: only what the graph says
        for s in contract.streams:
            if s.topic not in samples:
                samples[s.topic] = Sample(s.topic, types=list(types.get(s.topic, [])))
        return samples, window
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def check_station(contract: Contract, sample_s: float | None = None, namespace: str = "", warmup_s: float = 10.0):
    """Sample and judge: the :class:`robot_capture.floor.station_check.Report` of the station.

    The robot mapping's joints are checked when the mapping loads (else a warning says why not).
    Raises RuntimeError without rclpy.
    """
    from robot_capture.floor.station_check import judge, robot_joint_names

    samples, window = sample_streams(contract, sample_s, warmup_s=warmup_s, namespace=namespace)
    try:
        joints, why = robot_joint_names(contract.robot), ""
    except (KeyError, OSError, ValueError) as exc:
        joints, why = None, f"robot joints not checked: {str(exc).splitlines()[0]}"
    report = judge(contract, samples, window, robot_joints=joints)
    if why:
        report.warnings.append(why)
    return report
