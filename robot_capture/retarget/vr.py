"""VR source: headset head/wrist/hand poses in ``vr_world`` <-> :class:`HumanPose` in the body frame.

``vr_world`` is the headset's tracking frame, REP-103 axes (z up); tracker frames follow the
keypoint convention of :mod:`.pose` (the VR bridge converts OpenXR's y-up/-z-forward poses).

Body frame estimate (VR has no pelvis tracker): z up, yaw = the head's heading, origin =
head position minus ``head_in_body`` (the head's position in the body frame when standing
upright; from the operator's segment lengths). The torso and shoulders sit at the arm model's
fixed offsets; each elbow is placed on the circle of positions the arm lengths allow, at the
point nearest a "down and slightly out/back" hint (a standard elbow swivel heuristic), so
elbow tasks have a target.
"""
from __future__ import annotations

import numpy as np

from robot_capture.retarget.exo import ExoArmModel
from robot_capture.retarget.pose import OPENXR_HAND_JOINTS, HumanPose, HumanPoseBatch, invert_transform

VR_TRACKERS = ("head", "left_wrist", "right_wrist")


def vr_poses_from_human(pose, world_from_body) -> dict:
    """Head and wrist tracker poses a headset would report for ``pose``.

    Args:
        pose: HumanPose (or HumanPoseBatch) in the body frame.
        world_from_body: (4,4) or (N,4,4) body frame in ``vr_world``.
    Returns:
        {"head", "left_wrist", "right_wrist"} -> (4,4) (or (N,4,4)) in ``vr_world``.
    """
    W = np.asarray(world_from_body, dtype=float)
    return {k: W @ pose.keypoints[k] for k in VR_TRACKERS}


def _heading(R: np.ndarray) -> np.ndarray:
    """(...,3,3) yaw-only rotation from a head rotation (x forward; falls back to -z when looking up/down)."""
    f = R[..., :, 0].copy()
    f[..., 2] = 0.0
    n = np.linalg.norm(f, axis=-1, keepdims=True)
    alt = -R[..., :, 2].copy() * np.sign(R[..., 2:3, 0])  # head pitched ~90 deg: use its z axis
    alt[..., 2] = 0.0
    f = np.where(n > 0.2, f, alt)
    f /= np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-12)
    z = np.broadcast_to([0.0, 0.0, 1.0], f.shape)
    y = np.cross(z, f)
    return np.stack([f, y, z], axis=-1)


def place_elbow(shoulder, wrist, upper, forearm, hint) -> np.ndarray:
    """(...,3) elbow on the circle allowed by the two lengths, nearest ``shoulder + hint`` direction."""
    d = wrist - shoulder
    dist = np.linalg.norm(d, axis=-1, keepdims=True)
    dist_c = np.clip(dist, abs(upper - forearm) + 1e-6, upper + forearm - 1e-6)
    n = d / np.maximum(dist, 1e-9)
    a = (upper ** 2 - forearm ** 2 + dist_c ** 2) / (2 * dist_c)  # along n from the shoulder
    r = np.sqrt(np.maximum(upper ** 2 - a ** 2, 0.0))
    h = np.broadcast_to(hint, d.shape)
    h_perp = h - np.sum(h * n, axis=-1, keepdims=True) * n
    h_perp /= np.maximum(np.linalg.norm(h_perp, axis=-1, keepdims=True), 1e-9)
    return shoulder + a * n + r * h_perp


class VrSource:
    """Assemble HumanPoses from VR trackers (see module docstring).

    Args:
        segment_lengths: operator lengths (arm-model keys, see ``config/human/exo_arm.yaml``).
        elbow_hint: (3,) direction, body frame, for the left elbow (y mirrored for the right).
    """

    def __init__(self, segment_lengths: dict | None = None, elbow_hint=(-0.2, 0.4, -1.0)):
        L = ExoArmModel._merge_lengths(ExoArmModel.load().lengths, segment_lengths or {})
        self.lengths = L
        self.head_in_body = L["torso_offset"] + L["head_offset"]
        self.elbow_hint = np.asarray(elbow_hint, dtype=float)

    def world_from_body(self, head: np.ndarray) -> np.ndarray:
        """(...,4,4) estimated body frame in ``vr_world`` from head pose(s)."""
        R = _heading(head[..., :3, :3])
        T = np.zeros(head.shape)
        T[..., :3, :3] = R
        T[..., :3, 3] = head[..., :3, 3] - np.einsum("...ij,j->...i", R, self.head_in_body)
        T[..., 3, 3] = 1.0
        return T

    def human_poses(self, head, left_wrist, right_wrist, stamps, left_hand=None, right_hand=None) -> HumanPoseBatch:
        """Vectorized: (N,4,4) tracker poses -> HumanPoseBatch. Hands: (N,26,4,4) or None."""
        head = np.asarray(head, dtype=float)
        inv = invert_transform(self.world_from_body(head))
        L = self.lengths
        n = head.shape[0]
        kp = {"pelvis": np.broadcast_to(np.eye(4), (n, 4, 4)).copy()}
        torso = kp["pelvis"].copy()
        torso[:, :3, 3] = L["torso_offset"]
        kp["torso"] = torso
        kp["head"] = inv @ head
        for side, wrist, hand in (("left", left_wrist, left_hand), ("right", right_wrist, right_hand)):
            mirror = np.array([1.0, 1.0 if side == "left" else -1.0, 1.0])
            sh = torso.copy()
            sh[:, :3, 3] += L["shoulder_offset"] * mirror
            kp[f"{side}_shoulder"] = sh
            w = inv @ np.asarray(wrist, dtype=float)
            kp[f"{side}_wrist"] = w
            el = w.copy()
            el[:, :3, 3] = place_elbow(sh[:, :3, 3], w[:, :3, 3], L["upper_arm"], L["forearm"], self.elbow_hint * mirror)
            kp[f"{side}_elbow"] = el
            if hand is not None:
                hand = inv[:, None] @ np.asarray(hand, dtype=float)
                for j, name in enumerate(OPENXR_HAND_JOINTS):
                    kp[f"{side}_hand_{name}"] = hand[:, j]
        return HumanPoseBatch(kp, np.asarray(stamps, dtype=float))

    def human_pose(self, head, left_wrist, right_wrist, left_hand=None, right_hand=None, stamp: float = 0.0) -> HumanPose:
        """One HumanPose from (4,4) tracker poses in ``vr_world``; hands: 26 (4,4) OpenXR joints or None.

        Non-finite or wrongly shaped input gives an invalid pose flagged ``nan_input``/``malformed``.
        """
        try:
            arrs = [np.asarray(x, dtype=float).reshape(1, 4, 4) for x in (head, left_wrist, right_wrist)]
            hands = [None if h is None or len(h) != len(OPENXR_HAND_JOINTS)
                     else np.asarray(h, dtype=float).reshape(1, -1, 4, 4) for h in (left_hand, right_hand)]
        except (ValueError, TypeError):
            return HumanPose({}, stamp, valid=False, flags=frozenset({"malformed"}))
        if not all(np.isfinite(a).all() for a in arrs):
            return HumanPose({}, stamp, valid=False, flags=frozenset({"nan_input"}))
        b = self.human_poses(*arrs, [stamp], left_hand=hands[0], right_hand=hands[1])
        return b.pose(0)
