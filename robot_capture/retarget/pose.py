"""Human pose: named keypoint frames in a body frame.

Frames follow REP-103 (x forward, y left, z up, metres). Each keypoint is a
4x4 homogeneous ``float64`` transform ``T_body_keypoint``. The rotation is the
identity when the human stands at attention (arms hanging, palms facing the
thighs, thumbs forward, looking forward); a wrist frame's -z axis points from
the wrist toward the middle-finger base and its x axis toward the thumb side.

Keypoint names: ``pelvis``, ``torso``, ``head``, ``{left,right}_{shoulder,elbow,wrist}``
and, where a source has them, ``{left,right}_hand_<openxr joint>`` with the 26
OpenXR hand joint names below (XR_EXT_hand_tracking order).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BODY_KEYPOINTS = (
    "pelvis", "torso", "head",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist",
)

# XR_EXT_hand_tracking joint order (OpenXR 1.0 spec, XrHandJointEXT).
OPENXR_HAND_JOINTS = (
    "palm", "wrist",
    "thumb_metacarpal", "thumb_proximal", "thumb_distal", "thumb_tip",
    "index_metacarpal", "index_proximal", "index_intermediate", "index_distal", "index_tip",
    "middle_metacarpal", "middle_proximal", "middle_intermediate", "middle_distal", "middle_tip",
    "ring_metacarpal", "ring_proximal", "ring_intermediate", "ring_distal", "ring_tip",
    "little_metacarpal", "little_proximal", "little_intermediate", "little_distal", "little_tip",
)


def hand_keypoint(side: str, joint: str) -> str:
    """Keypoint name of an OpenXR hand joint, e.g. ``hand_keypoint('left', 'index_tip')``."""
    return f"{side}_hand_{joint}"


@dataclass
class HumanPose:
    """One human pose sample.

    Attributes:
        keypoints: name -> (4,4) ``T_body_keypoint`` (float64, metres).
        stamp: time of the input it came from (s).
        frame: name of the body frame (``human_base``).
        valid: False when the source knows the sample is unusable (the retargeter holds).
        flags: source-side degradations, e.g. ``'unknown_joints'``, ``'missing_joints'``.
    """

    keypoints: dict
    stamp: float = 0.0
    frame: str = "human_base"
    valid: bool = True
    flags: frozenset = field(default_factory=frozenset)

    def has(self, name: str) -> bool:
        return name in self.keypoints

    def position(self, name: str) -> np.ndarray:
        """(3,) position of keypoint ``name`` in the body frame (m). KeyError if absent."""
        return self.keypoints[name][:3, 3]

    def rotation(self, name: str) -> np.ndarray:
        """(3,3) rotation of keypoint ``name`` in the body frame."""
        return self.keypoints[name][:3, :3]

    def is_finite(self) -> bool:
        """True when every keypoint transform is finite (no NaN/inf)."""
        return all(np.isfinite(T).all() for T in self.keypoints.values())


@dataclass
class HumanPoseBatch:
    """Many poses of one clip, stored as arrays (for vectorized offline work).

    Attributes:
        keypoints: name -> (N,4,4) ``T_body_keypoint``.
        stamps: (N,) seconds.
    """

    keypoints: dict
    stamps: np.ndarray
    frame: str = "human_base"

    def __len__(self) -> int:
        return len(self.stamps)

    def pose(self, i: int) -> HumanPose:
        """Frame ``i`` as a :class:`HumanPose` (copies)."""
        return HumanPose({k: v[i].copy() for k, v in self.keypoints.items()}, float(self.stamps[i]), self.frame)


def make_transform(R=None, p=None) -> np.ndarray:
    """(4,4) from a (3,3) rotation and (3,) translation (either may be None)."""
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = R
    if p is not None:
        T[:3, 3] = p
    return T


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid (...,4,4) transform."""
    R = T[..., :3, :3]
    p = T[..., :3, 3]
    Ti = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    Ti[..., :3, :3] = Rt
    Ti[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, p)
    Ti[..., 3, 3] = 1.0
    return Ti


def frame_from_axes(z_dir: np.ndarray, x_hint: np.ndarray) -> np.ndarray:
    """Rotation(s) whose z axis is ``z_dir`` and x axis is ``x_hint`` made orthogonal to it.

    Args:
        z_dir: (...,3), need not be unit length.
        x_hint: (...,3), must not be parallel to ``z_dir``.
    Returns:
        (...,3,3) rotation matrices (columns x, y, z); Gram-Schmidt.
    """
    z = z_dir / np.linalg.norm(z_dir, axis=-1, keepdims=True)
    x = x_hint - np.sum(x_hint * z, axis=-1, keepdims=True) * z
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=-1)
