"""ROS message <-> numpy helpers shared by the node shells.

Conventions (DESIGN.md): poses are 4x4 ``float64`` homogeneous matrices
``T_parent_child``; quaternions are ``(x, y, z, w)`` as in geometry_msgs; times in
the core are ``float`` seconds, in messages ``builtin_interfaces/Time``.
Quaternion <-> matrix formulas: the standard unit-quaternion rotation matrix
(e.g. Shoemake, "Animating rotation with quaternion curves", 1985), with the
sign-robust trace method for matrix -> quaternion.
"""
from __future__ import annotations

import math
import struct
from typing import Iterable, Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose, PoseArray
from sensor_msgs.msg import JointState


def stamp_to_sec(stamp) -> float:
    """``builtin_interfaces/Time`` -> float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_to_ns(stamp) -> int:
    """``builtin_interfaces/Time`` -> int nanoseconds."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def ns_to_stamp(ns: int) -> Time:
    """int nanoseconds (>= 0) -> ``builtin_interfaces/Time``."""
    sec, nsec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nsec)


#: A quaternion whose norm is further than this from 1 is bad input, not a rotation
#: (float32 publishers are within ~1e-6; a garbage or unnormalised one is not).
QUAT_NORM_TOL = 0.05


def quat_is_unit(x: float, y: float, z: float, w: float, tol: float = QUAT_NORM_TOL) -> bool:
    """True when the quaternion is finite and its norm is within ``tol`` of 1."""
    n = x * x + y * y + z * z + w * w
    return math.isfinite(n) and abs(math.sqrt(n) - 1.0) <= tol


def quat_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Quaternion ``(x, y, z, w)`` -> 3x3 rotation matrix (normalises). A non-finite or zero
    quaternion gives a NaN matrix: it is bad input, never silently the identity."""
    n = x * x + y * y + z * z + w * w
    if not (n > 1e-300 and math.isfinite(n)):
        return np.full((3, 3), np.nan)
    s = 2.0 / n
    xx, yy, zz = x * x * s, y * y * s, z * z * s
    xy, xz, yz = x * y * s, x * z * s, y * z * s
    wx, wy, wz = w * x * s, w * y * s, w * z * s
    return np.array(
        [
            [1.0 - yy - zz, xy - wz, xz + wy],
            [xy + wz, 1.0 - xx - zz, yz - wx],
            [xz - wy, yz + wx, 1.0 - xx - yy],
        ]
    )


def matrix_to_quat(R) -> tuple[float, float, float, float]:
    """3x3 rotation matrix -> unit quaternion ``(x, y, z, w)`` with ``w >= 0``."""
    m00, m01, m02 = R[0][0], R[0][1], R[0][2]
    m10, m11, m12 = R[1][0], R[1][1], R[1][2]
    m20, m21, m22 = R[2][0], R[2][1], R[2][2]
    tr = m00 + m11 + m22
    if tr > 0.0:
        s = math.sqrt(tr + 1.0) * 2.0
        w, x, y, z = 0.25 * s, (m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s
    elif m00 > m11 and m00 > m22:
        s = math.sqrt(1.0 + m00 - m11 - m22) * 2.0
        w, x, y, z = (m21 - m12) / s, 0.25 * s, (m01 + m10) / s, (m02 + m20) / s
    elif m11 > m22:
        s = math.sqrt(1.0 + m11 - m00 - m22) * 2.0
        w, x, y, z = (m02 - m20) / s, (m01 + m10) / s, 0.25 * s, (m12 + m21) / s
    else:
        s = math.sqrt(1.0 + m22 - m00 - m11) * 2.0
        w, x, y, z = (m10 - m01) / s, (m02 + m20) / s, (m12 + m21) / s, 0.25 * s
    if w < 0.0:
        x, y, z, w = -x, -y, -z, -w
    return float(x), float(y), float(z), float(w)


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """``geometry_msgs/Pose`` -> 4x4 homogeneous matrix. NaN positions pass through; a
    non-finite or non-unit quaternion (``quat_is_unit``) makes the rotation NaN, so a
    consumer that checks finiteness (the retargeter: ``nan_input``) holds and flags it."""
    T = np.eye(4)
    o = pose.orientation
    T[:3, :3] = quat_to_matrix(o.x, o.y, o.z, o.w) if quat_is_unit(o.x, o.y, o.z, o.w) else np.nan
    p = pose.position
    T[:3, 3] = (p.x, p.y, p.z)
    return T


def matrix_to_pose(T) -> Pose:
    """4x4 homogeneous matrix -> ``geometry_msgs/Pose``."""
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = float(T[0][3]), float(T[1][3]), float(T[2][3])
    q = matrix_to_quat(T)
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = q
    return pose


def joint_state_msg(stamp: Time, names: Sequence[str], position, velocity=None, effort=None) -> JointState:
    """Build a ``sensor_msgs/JointState`` (arrays converted to plain float lists)."""
    msg = JointState()
    msg.header.stamp = stamp
    msg.name = list(names)
    msg.position = np.asarray(position, dtype=float).tolist()
    if velocity is not None:
        msg.velocity = np.asarray(velocity, dtype=float).tolist()
    if effort is not None:
        msg.effort = np.asarray(effort, dtype=float).tolist()
    return msg


def joint_state_to_dict(msg: JointState) -> dict[str, float]:
    """``JointState`` -> ``{name: position}``; extra names or positions beyond the shorter list are dropped."""
    return dict(zip(msg.name, msg.position))


def pose_array_msg(stamp: Time, frame_id: str, poses: Iterable) -> PoseArray:
    """Build a ``geometry_msgs/PoseArray`` from 4x4 matrices."""
    msg = PoseArray()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.poses = [matrix_to_pose(T) for T in poses]
    return msg


def pose_array_to_matrices(msg: PoseArray) -> list[np.ndarray]:
    """``PoseArray`` -> list of 4x4 matrices, in message order."""
    return [pose_to_matrix(p) for p in msg.poses]


def diagnostic_status(name: str, level: int, message: str, values: Mapping[str, object],
                      hardware_id: str = "") -> DiagnosticStatus:
    """Build a ``diagnostic_msgs/DiagnosticStatus``; values are stringified (floats with 6 significant digits)."""
    st = DiagnosticStatus()
    if isinstance(level, int) and isinstance(st.level, bytes):
        level = bytes([level])
    st.level = level
    st.name = name
    st.message = message
    st.hardware_id = hardware_id
    st.values = [KeyValue(key=str(k), value=(f"{v:.6g}" if isinstance(v, float) else str(v))) for k, v in values.items()]
    return st


def pose_array_cdr(sec: int, nanosec: int, frame_id: str, T: np.ndarray) -> bytes:
    """Serialized ``geometry_msgs/PoseArray`` (little-endian XCDR1, as rmw_fastrtps writes it) from
    ``(n, 4, 4)`` poses, for ``Publisher.publish(bytes)``: about 2x cheaper than building n ``Pose``
    messages in Python, and no serialization at publish. Layout (OMG CDR): 4-byte encapsulation header, then the message with
    each primitive aligned to its size relative to the end of that header.
    """
    T = np.asarray(T, dtype=float).reshape(-1, 4, 4)
    fid = frame_id.encode("utf-8") + b"\x00"
    head = struct.pack("<4siiI", b"\x00\x01\x00\x00", int(sec), int(nanosec), len(fid)) + fid
    body_len = len(head) - 4
    head += b"\x00" * ((-body_len) % 4) + struct.pack("<I", len(T))
    body_len = len(head) - 4
    if not len(T):
        return head
    parts = [head, b"\x00" * ((-body_len) % 8)]
    for M in T.tolist():  # plain floats: cheaper than numpy for a handful of 4x4s
        parts.append(struct.pack("<7d", M[0][3], M[1][3], M[2][3], *matrix_to_quat(M)))
    return b"".join(parts)
