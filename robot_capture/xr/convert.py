"""WebXR reference-space poses -> ``vr_world`` (REP-103) tracker poses, through ``retarget/hand_tracking``.

Axes: a WebXR reference space (``local-floor``) has x right, y up, -z forward, metres; ``vr_world``
is REP-103 (x forward, y left, z up): points map by
:data:`~robot_capture.retarget.hand_tracking.REP103_FROM_WEBXR_REFERENCE` ``C`` (x = -z, y = -x, z = y).

Frames (DESIGN.md "retarget", keypoint convention):

* **head**: the WebXR viewer frame (-z forward, y up) becomes the head keypoint frame (x forward,
  z up) by the same axis change, so ``R_head = C R_viewer C^T`` (looking straight ahead = identity).
* **wrists**: the WebXR wrist *joint* frame (-z toward the fingers, +y out of the back of the hand;
  +x thumb side on the left hand, little-finger side on the right) is the wrist keypoint frame on the
  left and a half turn about z from it on the right (``hand_tracking`` module docstring), so
  ``R_wrist = C R_joint F`` with ``F`` = I (left) or diag(-1, -1, 1) (right). A controller's grip
  pose stands in for the wrist when the hand is not tracked (the grip's -z runs along the closed
  fingers, close to the wrist joint's; the retarget calibration absorbs the constant offset).
* **hands**: the 25 WebXR joints, expressed in the wrist joint frame, go through
  :func:`~robot_capture.retarget.hand_tracking.webxr_to_openxr` with the wrist pose above: 26 OpenXR
  joints (palm synthesized) in ``vr_world``, as the recorded-pose path does.
"""
from __future__ import annotations

import numpy as np

from robot_capture.retarget.hand_tracking import REP103_FROM_WEBXR_REFERENCE as C
from robot_capture.retarget.hand_tracking import webxr_to_openxr

__all__ = ["head_to_vr_world", "pose7_to_matrix", "wrist_to_vr_world", "hand_to_vr_world"]

_F = {"left": np.eye(3), "right": np.diag([-1.0, -1.0, 1.0])}


def pose7_to_matrix(p) -> np.ndarray:
    """(..., 7) ``[px, py, pz, qx, qy, qz, qw]`` -> (..., 4, 4) (the quaternion is normalised)."""
    p = np.asarray(p, dtype=float)
    q = p[..., 3:] / np.linalg.norm(p[..., 3:], axis=-1, keepdims=True)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    T = np.zeros(p.shape[:-1] + (4, 4))
    T[..., 0, 0] = 1 - 2 * (y * y + z * z)
    T[..., 0, 1] = 2 * (x * y - w * z)
    T[..., 0, 2] = 2 * (x * z + w * y)
    T[..., 1, 0] = 2 * (x * y + w * z)
    T[..., 1, 1] = 1 - 2 * (x * x + z * z)
    T[..., 1, 2] = 2 * (y * z - w * x)
    T[..., 2, 0] = 2 * (x * z - w * y)
    T[..., 2, 1] = 2 * (y * z + w * x)
    T[..., 2, 2] = 1 - 2 * (x * x + y * y)
    T[..., :3, 3] = p[..., :3]
    T[..., 3, 3] = 1.0
    return T


def head_to_vr_world(pose7) -> np.ndarray:
    """(7,) WebXR viewer pose -> (4,4) head keypoint pose in ``vr_world``."""
    M = pose7_to_matrix(pose7)
    out = np.eye(4)
    out[:3, :3] = C @ M[:3, :3] @ C.T
    out[:3, 3] = C @ M[:3, 3]
    return out


def wrist_to_vr_world(pose7, side: str) -> np.ndarray:
    """(7,) WebXR wrist joint (or grip) pose -> (4,4) wrist keypoint pose in ``vr_world``.

    Raises KeyError for a side other than ``left``/``right``.
    """
    M = pose7_to_matrix(pose7)
    out = np.eye(4)
    out[:3, :3] = C @ M[:3, :3] @ _F[side]
    out[:3, 3] = C @ M[:3, 3]
    return out


def hand_to_vr_world(joints7, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(25,7) WebXR joint poses (reference space) -> (wrist (4,4), hand (26,4,4) OpenXR joints) in ``vr_world``.

    The joints' positions are taken into the wrist joint frame (joint 0) and handed to
    ``webxr_to_openxr`` with the converted wrist pose; their reported orientations are not used
    (``webxr_to_openxr`` orients each joint along its bone, as for the recorded poses).
    """
    J = pose7_to_matrix(joints7)
    Rw, pw = J[0, :3, :3], J[0, :3, 3]
    local = (np.asarray(joints7, dtype=float)[:, :3] - pw) @ Rw  # rows: Rw^T (p - pw)
    wrist = wrist_to_vr_world(joints7[0], side)
    return wrist, webxr_to_openxr(local, wrist, side)
