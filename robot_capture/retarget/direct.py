"""Direct joint mode: an exoskeleton that shares the robot's joint layout (GELLO / HOMIE style).

Each robot joint listed under ``direct.joints`` in the robot mapping takes one source reading:
``q = clamp(sign * scale * reading + offset, clamp_lo, clamp_hi)`` with no IK; the clamp
defaults to the URDF limits and is always intersected with them. Joints not listed keep the
current command (NaN in the returned vector).
"""
from __future__ import annotations

import numpy as np


class DirectJointMap:
    """Reading -> robot joint map.

    Attributes:
        joint_names: robot joints (model order); source_names: the readings it consumes.
    """

    def __init__(self, model, joints: dict):
        self.joint_names = list(model.joint_names)
        self.nq = model.nq
        self._rows = []  # (q index, source, sign*scale, offset, lo, hi)
        for robot_joint, spec in (joints or {}).items():
            spec = spec or {}
            k = model.joint_index(robot_joint)  # KeyError with suggestions
            lo, hi = float(model.lower[k]), float(model.upper[k])
            if "clamp" in spec:
                c = [float(x) for x in spec["clamp"]]
                if len(c) != 2 or c[0] > c[1]:
                    raise ValueError(f"direct.joints.{robot_joint}.clamp must be [lo, hi], got {spec['clamp']}")
                lo, hi = max(lo, c[0]), min(hi, c[1])
            gain = float(spec.get("sign", 1.0)) * float(spec.get("scale", 1.0))
            self._rows.append((k, str(spec.get("source", robot_joint)), gain, float(spec.get("offset", 0.0)), lo, hi))
        self.source_names = [r[1] for r in self._rows]

    @classmethod
    def from_mapping(cls, mapping, model=None) -> "DirectJointMap":
        model = model or mapping.robot_model()
        return cls(model, (mapping.direct or {}).get("joints") or {})

    def map(self, names, positions):
        """Readings -> ((nq,) target with NaN for joints without a reading, flags set).

        Flags: ``unknown_joints`` (names not consumed), ``missing_joints`` (a mapped source
        absent), ``nan_input`` (a non-finite reading; that joint keeps its command),
        ``malformed`` (length mismatch).
        """
        q = np.full(self.nq, np.nan)
        flags = set()
        if len(names) != len(positions):
            return q, {"malformed"}
        idx = {n: i for i, n in enumerate(names)}
        if set(names) - set(self.source_names):
            flags.add("unknown_joints")
        for k, src, gain, off, lo, hi in self._rows:
            i = idx.get(src)
            if i is None:
                flags.add("missing_joints")
                continue
            try:
                v = float(positions[i])
            except (TypeError, ValueError):
                flags.add("malformed")
                continue
            if not np.isfinite(v):
                flags.add("nan_input")
                continue
            q[k] = min(max(gain * v + off, lo), hi)
        return q, flags
