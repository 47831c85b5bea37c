"""Re-retarget a recorded bag's human topics onto another robot: record once, retarget to many.

Reads ``/exo/joint_states`` (sensor_msgs/JointState, arm-model joint names) or the VR trackers
``/vr/head``, ``/vr/left_wrist``, ``/vr/right_wrist`` (geometry_msgs/PoseStamped, ``vr_world``)
from a bag (:class:`robot_capture.bag.reader.BagReader`), runs them through the same source and
:class:`~robot_capture.retarget.retargeter.Retargeter` the live node uses (one command per human
input, time = the input's header stamp), and writes a new bag
(:class:`robot_capture.bag.writer.BagWriter`) with every original message copied byte for byte
except the source robot's topics (:data:`SOURCE_ROBOT_TOPICS`: the old ``/retarget/*``
outputs, ``/joint_states``, ``/tf``, ``/tf_static``, ``/robot_description``, the cameras, which
show the source robot, and ``/diagnostics``), plus new ``/retarget/joint_command`` (JointState,
the new robot's joints and coupled motor joints, stamp = input stamp) and ``/retarget/targets``
(PoseArray, robot base frame), logged at the input's log time. The new robot's mapping YAML and
URDF are attached. Episode labels are kept (``metadata.yaml`` custom_data ``episode.*``, and the
MCAP ``episode`` record), with ``episode.robot`` set to the new robot and the source robot in
``retarget.source_robot``. Offline limits by default: the URDF's (``limits="urdf"``, no filter),
see :class:`~robot_capture.retarget.retargeter.Retargeter`. Messages are encoded with rclpy's
serializer (imported lazily).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

EXO_TOPIC = "/exo/joint_states"
VR_TOPICS = {"/vr/head": "head", "/vr/left_wrist": "left_wrist", "/vr/right_wrist": "right_wrist"}
OUT_COMMAND, OUT_TARGETS = "/retarget/joint_command", "/retarget/targets"
#: topics of the source robot (or its outputs) that a re-retargeted bag must not carry; a topic
#: equal to one of these or under one ending in "/" is dropped
SOURCE_ROBOT_TOPICS = ("/retarget/", "/joint_states", "/tf", "/tf_static", "/robot_description", "/camera/",
                       "/diagnostics")


def is_source_robot_topic(topic: str) -> bool:
    """True for a topic :data:`SOURCE_ROBOT_TOPICS` drops (e.g. ``/camera/head/image_raw``)."""
    return any(topic.startswith(t) if t.endswith("/") else topic == t for t in SOURCE_ROBOT_TOPICS)


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _stamp_s(header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def _pose_matrix(p) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    q = p.orientation
    n = q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w
    T[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix() if n > 0 else np.eye(3)
    T[:3, 3] = [p.position.x, p.position.y, p.position.z]
    return T


def _read_exo(reader, exo):
    """-> (HumanPoseBatch, log times ns, header stamps ns, unknown joint names)."""
    from robot_capture.retarget.pose import HumanPoseBatch

    logs, stamps, stamps_ns, unknown = [], [], [], set()
    poses = []
    for m in reader.messages(topics=[EXO_TOPIC], decode=True):
        js = m.message
        st = _stamp_s(js.header)
        p = exo.pose_from_angles(list(js.name), list(js.position), stamp=st)
        poses.append(p)
        logs.append(m.log_time_ns)
        stamps.append(st)
        stamps_ns.append(_stamp_ns(js.header))
        unknown |= set(js.name) - set(exo.joint_names)
    if not poses:
        raise ValueError(f"bag has no {EXO_TOPIC} messages")
    keys = set.intersection(*(set(p.keypoints) for p in poses if p.valid)) if any(p.valid for p in poses) else set()
    nan = np.full((4, 4), np.nan)
    kp = {k: np.stack([p.keypoints.get(k, nan) if p.valid else nan for p in poses]) for k in keys}
    return (HumanPoseBatch(kp, np.array(stamps)), np.array(logs, dtype=np.int64), np.array(stamps_ns, dtype=np.int64),
            unknown)


def _read_vr(reader, vr):
    latest, frames = {}, []
    last = -np.inf
    for m in reader.messages(topics=list(VR_TOPICS), decode=True):
        name = VR_TOPICS[m.topic]
        latest[name] = (_pose_matrix(m.message.pose), _stamp_ns(m.message.header), m.log_time_ns)
        if len(latest) == 3 and all(s > last for (_T, s, _l) in latest.values()):
            last = max(s for (_T, s, _l) in latest.values())
            oldest = min(s for (_T, s, _l) in latest.values())  # staleness is judged on the oldest tracker
            frames.append(({k: v[0] for k, v in latest.items()}, oldest, m.log_time_ns))
    if not frames:
        raise ValueError(f"bag has no complete VR samples on {sorted(VR_TOPICS)}")
    T = {k: np.stack([f[0][k] for f in frames]) for k in ("head", "left_wrist", "right_wrist")}
    stamps_ns = np.array([f[1] for f in frames], dtype=np.int64)
    batch = vr.human_poses(T["head"], T["left_wrist"], T["right_wrist"], stamps_ns * 1e-9)
    return batch, np.array([f[2] for f in frames], dtype=np.int64), stamps_ns, set()


def retarget_bag(bag_in, bag_out, robot: str = "g1", source: str = "auto", calibration=None,
                 progress=None, exo_config: str | None = None, limits: str = "urdf", filter: str = "none") -> dict:
    """Write ``bag_out``: ``bag_in`` with its human topics retargeted onto ``robot``.

    Args:
        source: ``exo``, ``vr`` or ``auto`` (exo if the bag has it, else vr).
        calibration: operator Calibration (default: the live node's default).
        progress: ``(done, total)`` callable.
        limits: ``urdf`` (default) or ``teleop``; filter: ``none`` (default) or ``mapping``
            (see :func:`robot_capture.retarget.offline.retarget_clip`).
    Returns:
        dict: source, inputs, commands, held, out (path), dropped (source robot topics), source_robot.
    Raises:
        ValueError: no usable human topics (message lists the bag's topics).
        FileExistsError: ``bag_out`` exists and is not empty. KeyError: unknown robot.
    """
    from rclpy.serialization import serialize_message
    from geometry_msgs.msg import Pose, PoseArray
    from sensor_msgs.msg import JointState

    from robot_capture.bag.reader import BagReader
    from robot_capture.bag.writer import BagWriter
    from robot_capture.retarget.exo import ExoArmModel
    from robot_capture.retarget.mapping import RobotMapping
    from robot_capture.retarget.offline import retarget_poses
    from robot_capture.retarget.retargeter import Retargeter
    from robot_capture.retarget.vr import VrSource
    from scipy.spatial.transform import Rotation

    reader = BagReader(bag_in)
    topics = reader.topics
    if source == "auto":
        source = "exo" if EXO_TOPIC in topics else ("vr" if all(t in topics for t in VR_TOPICS) else "")
    if source not in ("exo", "vr") or (source == "exo" and EXO_TOPIC not in topics) or (
            source == "vr" and not all(t in topics for t in VR_TOPICS)):
        raise ValueError(f"{bag_in}: no human topics for source {source or 'auto'!r}; "
                         f"need {EXO_TOPIC} or {sorted(VR_TOPICS)}; bag has {sorted(topics)}")
    mapping = RobotMapping.load(robot)
    if filter not in ("none", "mapping"):
        raise ValueError(f"filter must be 'none' or 'mapping', not {filter!r}")
    retargeter = Retargeter(mapping, calibration, limits=limits,
                            filter={"type": "none"} if filter == "none" else None)
    if source == "exo":
        batch, logs, stamps_ns, unknown = _read_exo(reader, ExoArmModel.load(exo_config))
    else:
        batch, logs, stamps_ns, unknown = _read_vr(reader, VrSource())
    res = retarget_poses(batch, retargeter, progress=progress, source=source, clip=str(bag_in))

    base = retargeter.model.base_link
    new = []  # (log_ns, topic, bytes)
    for i in range(len(res)):
        sec, nsec = divmod(int(stamps_ns[i]), 1_000_000_000)  # the input's own stamp, exactly
        js = JointState()
        js.header.stamp.sec, js.header.stamp.nanosec = sec, nsec
        js.header.frame_id = base
        names, q, qd = res.joint_command(i)
        js.name = list(names)
        js.position = [float(x) for x in q]
        js.velocity = [float(x) for x in qd]
        pa = PoseArray()
        pa.header = js.header
        quats = Rotation.from_matrix(res.targets[i, :, :3, :3]).as_quat()
        for T, qx in zip(res.targets[i], quats):
            p = Pose()
            p.position.x, p.position.y, p.position.z = (float(v) for v in T[:3, 3])
            p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in qx)
            pa.poses.append(p)
        new.append((int(logs[i]), OUT_COMMAND, serialize_message(js)))
        new.append((int(logs[i]), OUT_TARGETS, serialize_message(pa)))

    custom = dict((reader.metadata.custom_data or {}) if hasattr(reader.metadata, "custom_data") else {})
    records = reader.metadata_records() if hasattr(reader, "metadata_records") else {}
    episode = dict(records.get("episode") or {})
    if not any(k.startswith("episode.") for k in custom):  # crashed/recovered bag: labels from the record
        custom.update({f"episode.{k}": v for k, v in episode.items()})
    source_robot = custom.get("retarget.robot") or custom.get("episode.robot") or episode.get("robot", "")
    custom.update({"retarget.robot": mapping.robot, "retarget.source": source,
                   "retarget.from_bag": str(Path(bag_in).resolve()), "retarget.source_robot": source_robot,
                   "retarget.limits": limits, "episode.robot": mapping.robot})
    dropped = sorted(t for t in topics if is_source_robot_topic(t))
    writer = BagWriter(bag_out, custom_data=custom)
    try:
        if episode:
            writer.add_metadata("episode", {**episode, "robot": mapping.robot})
        for name, info in topics.items():
            if not is_source_robot_topic(name):
                writer.add_topic(name, info.type, info.qos or None)
        writer.add_topic(OUT_COMMAND, "sensor_msgs/msg/JointState")
        writer.add_topic(OUT_TARGETS, "geometry_msgs/msg/PoseArray")
        if mapping.source:
            writer.attach("retarget_mapping.yaml", mapping.text().encode(), media_type="application/yaml")
        writer.attach("robot.urdf", Path(mapping.urdf).read_bytes(), media_type="text/xml")
        k = 0
        for m in reader.messages():
            while k < len(new) and new[k][0] <= m.log_time_ns:
                writer.write(new[k][1], new[k][2], new[k][0])
                k += 1
            if not is_source_robot_topic(m.topic):
                writer.write(m.topic, m.data, m.log_time_ns, m.publish_time_ns)
        for log_ns, topic, data in new[k:]:
            writer.write(topic, data, log_ns)
    finally:
        writer.close()
        if hasattr(reader, "close"):
            reader.close()
    return {"source": source, "inputs": len(res), "commands": len(res), "out": str(bag_out),
            "held": int(sum("held" in f for f in res.flags)), "unknown_joints": sorted(unknown),
            "summary": res.summary(), "dropped": dropped, "source_robot": source_robot}
