"""Per-operator calibration: segment lengths and per-task rotation offsets.

* Lengths (m): ``upper_arm``, ``forearm`` and the torso/shoulder/head offsets of the human arm
  model (see ``config/human/exo_arm.yaml``), either given as parameters or measured from a short
  T- or A-pose window (median over frames, robust to a few bad frames).
* Rotation offsets: for task ``k``, ``R_offset[k] = R_human[k]^T @ R_robot[k]`` where both are
  taken in the mapping's calibration pose (human keypoint relative to its root keypoint, robot
  frame relative to its root frame), so that ``target = R_human_now @ R_offset`` equals the
  robot frame whenever the human is in the calibration pose. Offsets measured from a capture
  replace the defaults computed from the mapping's ``calibration_pose`` (human arm-model angles).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from robot_capture.retarget.exo import ExoArmModel
from robot_capture.retarget.pose import HumanPose, HumanPoseBatch, invert_transform


@dataclass
class Calibration:
    """Operator calibration.

    Attributes:
        lengths: segment lengths (see module docstring); missing keys use the arm model defaults.
        rotation_offsets: task name -> (3,3); tasks not listed use the mapping's default.
        operator: free text.
    """

    lengths: dict = field(default_factory=dict)
    rotation_offsets: dict = field(default_factory=dict)
    operator: str = ""

    @classmethod
    def from_lengths(cls, lengths: dict, operator: str = "") -> "Calibration":
        ExoArmModel._merge_lengths(ExoArmModel.load().lengths, lengths)  # validate names/values
        return cls(dict(lengths), {}, operator)

    @classmethod
    def from_poses(cls, poses, mapping=None, operator: str = "") -> "Calibration":
        """Measure from a calibration window.

        Args:
            poses: HumanPoseBatch or a sequence of HumanPose (the operator holding the pose).
            mapping: if given, also measure rotation offsets, assuming the operator holds the
                mapping's ``calibration_pose``.
        Raises:
            ValueError: empty window or non-finite keypoints.
        """
        batch = _as_batch(poses)
        if len(batch) == 0:
            raise ValueError("calibration window is empty")
        if not all(np.isfinite(v).all() for v in batch.keypoints.values()):
            raise ValueError("calibration window has non-finite keypoints")
        lengths = ExoArmModel.segment_lengths_from_pose(batch)
        offsets = {}
        if mapping is not None:
            from robot_capture.retarget.retargeter import robot_calibration_rotations

            R_robot = robot_calibration_rotations(mapping)
            for t in mapping.tasks:
                if t.orientation_cost <= 0 or t.keypoint not in batch.keypoints:
                    continue
                rel = invert_transform(batch.keypoints[t.root_keypoint]) @ batch.keypoints[t.keypoint]
                R_h = _mean_rotation(rel[:, :3, :3])
                offsets[t.name] = R_h.T @ R_robot[t.name]
        return cls(lengths, offsets, operator)

    def to_yaml(self) -> str:
        return yaml.safe_dump({
            "operator": self.operator,
            "lengths": {k: (np.asarray(v).tolist() if not np.isscalar(v) else float(v)) for k, v in self.lengths.items()},
            "rotation_offsets": {k: np.asarray(v).tolist() for k, v in self.rotation_offsets.items()},
        }, sort_keys=False)

    @classmethod
    def load(cls, path) -> "Calibration":
        """Read a calibration YAML (``lengths``, optional ``rotation_offsets``, ``operator``).

        Raises:
            ConfigError (a ValueError): a NaN or infinite number (file and key named).
        """
        from robot_capture.config_schema import check_finite

        d = check_finite(yaml.safe_load(Path(path).read_text()) or {}, str(path))  # ConfigError (a ValueError)
        return cls(dict(d.get("lengths") or {}),
                   {k: np.asarray(v, dtype=float).reshape(3, 3) for k, v in (d.get("rotation_offsets") or {}).items()},
                   str(d.get("operator", "")))


def _as_batch(poses) -> HumanPoseBatch:
    if isinstance(poses, HumanPoseBatch):
        return poses
    poses = [p for p in poses if isinstance(p, HumanPose)]
    if not poses:
        return HumanPoseBatch({}, np.zeros(0))
    names = set.intersection(*(set(p.keypoints) for p in poses))
    return HumanPoseBatch({k: np.stack([p.keypoints[k] for p in poses]) for k in names},
                          np.array([p.stamp for p in poses]))


def _mean_rotation(R: np.ndarray) -> np.ndarray:
    """Chordal L2 mean of (N,3,3) rotations (SVD projection of the arithmetic mean)."""
    U, _, Vt = np.linalg.svd(R.mean(axis=0))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt
