"""Planted defects: copies of a real recorded episode bag with one thing broken.

Each function rewrites messages of a clean bag with BagReader/BagWriter (raw CDR; header
stamps patched in place at bytes 4..12; JointState/DiagnosticArray through rclpy
serialization) and returns the new bag directory. Labels (custom_data) are copied.
"""
from __future__ import annotations

import struct
from pathlib import Path

from robot_capture.bag.reader import BagReader
from robot_capture.bag.writer import BagWriter, WriterOptions

HEAD = "/camera/head/image_raw"
FRONT = "/camera/front/image_raw/compressed"
CMD = "/retarget/joint_command"


def load(bag: Path):
    """(topics {name: (type, qos)}, messages {topic: [[log, pub, data]]}, custom_data)."""
    with BagReader(bag) as r:
        topics = {t: (i.type, i.qos) for t, i in r.topics.items()}
        msgs: dict[str, list] = {t: [] for t in topics}
        for m in r.messages():
            msgs[m.topic].append([m.log_time_ns, m.publish_time_ns, bytes(m.data)])
        custom = dict(r.metadata.custom_data or {})
    return topics, msgs, custom


def save(dst: Path, topics, msgs, custom) -> Path:
    w = BagWriter(dst, WriterOptions(compression="none"), custom_data=custom)
    for t, (typ, qos) in topics.items():
        w.add_topic(t, typ, qos)
    allm = sorted((m[0], t, m[1], m[2]) for t, lst in msgs.items() for m in lst)
    for log, t, pub, data in allm:
        w.write(t, data, log, pub)
    w.close()
    return dst


def stamp(data: bytes) -> int:
    sec, nsec = struct.unpack_from("<iI", data, 4)
    return sec * 1_000_000_000 + nsec


def with_stamp(data: bytes, ns: int) -> bytes:
    return data[:4] + struct.pack("<iI", ns // 1_000_000_000, ns % 1_000_000_000) + data[12:]


def start_ns(custom) -> int:
    return int(custom["episode.start_time_ns"])


def _copy(src, dst, edit):
    topics, msgs, custom = load(src)
    edit(topics, msgs, custom)
    return save(Path(dst), topics, msgs, custom)


def drop_camera(src, dst, at_s=1.5, length_s=0.3, topic=HEAD):
    """No frames of ``topic`` for ``length_s`` from ``at_s`` into the episode."""
    def edit(topics, msgs, custom):
        t0 = start_ns(custom) + int(at_s * 1e9)
        msgs[topic] = [m for m in msgs[topic] if not t0 <= stamp(m[2]) < t0 + int(length_s * 1e9)]
    return _copy(src, dst, edit)


def stop_topic(src, dst, topic="/vr/left_wrist", at_fraction=0.4):
    """``topic`` stops publishing at ``at_fraction`` of the episode."""
    def edit(topics, msgs, custom):
        lst = msgs[topic]
        msgs[topic] = lst[:int(len(lst) * at_fraction)]
    return _copy(src, dst, edit)


def slow_down(src, dst, topic="/vr/head", factor=0.8):
    """``topic`` at ``factor`` of its rate over the same span: messages re-timed evenly (interval
    1/factor periods, so no interval is a drop), received after the topic's median latency."""
    def edit(topics, msgs, custom):
        lst = msgs[topic]
        s0, s1 = stamp(lst[0][2]), stamp(lst[-1][2])
        lat = sorted(m[0] - stamp(m[2]) for m in lst)[len(lst) // 2]
        n = int((len(lst) - 1) * factor) + 1
        out = []
        for k in range(n):
            m = lst[min(int(round(k / factor)), len(lst) - 1)]
            st = s0 + (s1 - s0) * k // (n - 1)
            out.append([st + lat, st + lat, with_stamp(m[2], st)])
        msgs[topic] = out
    return _copy(src, dst, edit)


def shift_stamps(src, dst, topic=FRONT, shift_s=-0.05):
    """Every header stamp of ``topic`` moved by ``shift_s`` (receive times unchanged)."""
    def edit(topics, msgs, custom):
        msgs[topic] = [[m[0], m[1], with_stamp(m[2], stamp(m[2]) + int(shift_s * 1e9))] for m in msgs[topic]]
    return _copy(src, dst, edit)


def idle_start(src, dst, idle_s=3.0):
    """``idle_s`` of still data before the episode: every topic's first message repeated at its
    own period (stamps and receive times moved back), the episode start label moved back."""
    def edit(topics, msgs, custom):
        shift = int(idle_s * 1e9)
        for t, lst in msgs.items():
            if len(lst) < 2:
                continue
            first = lst[0]
            has_stamp = topics[t][0] != "std_msgs/msg/Bool"
            logs = sorted(stamp(m[2]) if has_stamp else m[0] for m in lst)
            period = max(1, sorted(b - a for a, b in zip(logs, logs[1:]))[(len(logs) - 1) // 2])  # median
            lat = first[0] - stamp(first[2]) if has_stamp else 0
            pre = []
            for k in range(shift // period, 0, -1):  # never before the moved start label
                log = first[0] - k * period
                data = with_stamp(first[2], log - lat) if has_stamp else first[2]
                pre.append([log, log, data])
            msgs[t] = pre + lst
        custom["episode.start_time_ns"] = str(start_ns(custom) - shift)
        custom["episode.duration_s"] = f"{float(custom['episode.duration_s']) + idle_s:.3f}"
    return _copy(src, dst, edit)


def nan_command(src, dst, count=5, joint=3):
    """NaN in joint ``joint`` of ``count`` mid-episode command messages."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import JointState

    def edit(topics, msgs, custom):
        lst = msgs[CMD]
        mid = len(lst) // 2
        for m in lst[mid:mid + count]:
            js = deserialize_message(m[2], JointState)
            pos = list(js.position)
            pos[joint] = float("nan")
            js.position = pos
            m[2] = bytes(serialize_message(js))
    return _copy(src, dst, edit)


def unlabel_success(src, dst):
    """The success label missing (``unknown``)."""
    def edit(topics, msgs, custom):
        custom["episode.success"] = "unknown"
    return _copy(src, dst, edit)


def ik_failures(src, dst, fraction=0.10, error_m=0.2):
    """The retarget diagnostics say ``fraction`` of the frames failed IK with a wrist target out of
    reach by ``error_m`` (flag ``ik_failure``, wrist position error window maximum)."""
    from diagnostic_msgs.msg import DiagnosticArray, KeyValue
    from rclpy.serialization import deserialize_message, serialize_message

    def edit(topics, msgs, custom):
        for m in msgs["/diagnostics"]:
            arr = deserialize_message(m[2], DiagnosticArray)
            for st in arr.status:
                if not st.name.startswith("retarget"):
                    continue
                vals = {kv.key: kv.value for kv in st.values}
                n = int(float(vals.get("outputs", "0")))
                vals["flags"] = ",".join(x for x in [vals.get("flags", ""), f"ik_failure:{round(fraction * n)}"] if x)
                vals["right_wrist.position_error_m"] = f"{error_m:.6g}"
                st.values = [KeyValue(key=k, value=v) for k, v in vals.items()]
            m[2] = bytes(serialize_message(arr))
    return _copy(src, dst, edit)


DEFECTS = {
    # name: (function, the check that must catch it, the topic it must name or "")
    "drop_camera_300ms": (drop_camera, "gaps", HEAD),
    "stop_topic": (stop_topic, "presence", "/vr/left_wrist"),
    "slow_down": (slow_down, "rate", "/vr/head"),
    "shift_camera_stamps_50ms": (shift_stamps, "sync", FRONT),
    "idle_3s_at_start": (idle_start, "idle", ""),
    "nan_in_command": (nan_command, "retarget", CMD),
    "missing_success_label": (unlabel_success, "labels", ""),
    "ik_failures_10pct": (ik_failures, "retarget", CMD),
}
