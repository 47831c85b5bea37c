"""Robot mapping files: ``config/robots/<robot>.yaml`` -> :class:`RobotMapping`.

A mapping says which robot frame tracks which human keypoint (with costs), which joints are
locked (legs), the posture task, the limbs used for per-limb scaling, a calibration pose both
human and robot can take (for rotation offsets), teleoperation velocity/acceleration limits,
the output filter, the stale-input limit, IK settings and the direct joint map. Adding a robot
is adding a YAML file. Keys are documented in ``config/robots/g1.yaml``.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

_MODEL_CACHE: dict = {}
_TASK_KEYS = {"name", "frame", "keypoint", "root", "root_keypoint", "scale", "position_cost",
              "orientation_cost", "wrist"}
_TOP_KEYS = {"robot", "urdf", "base_link", "locked_joints", "tasks", "posture", "limbs", "calibration_pose",
             "velocity_limits", "acceleration_limit", "filter", "stale_after_s", "ik", "direct", "rate_hz"}


@dataclass
class TaskSpec:
    """One tracking task. ``root`` None = the robot base frame."""

    name: str
    frame: str
    keypoint: str
    root: str | None = None
    root_keypoint: str = "pelvis"
    scale: str | None = None  # "<side>" (whole arm ratio) or "<side>_upper" (upper-arm ratio)
    position_cost: float = 1.0
    orientation_cost: float = 0.0
    wrist: bool = False


@dataclass
class RobotMapping:
    """Parsed robot mapping (see module docstring). ``source`` is the YAML path."""

    robot: str
    urdf: Path
    base_link: str | None
    locked_joints: object
    tasks: list
    posture_cost: float
    posture_q: dict
    limbs: dict
    calibration_robot: dict
    calibration_human: dict
    velocity_limits: dict
    acceleration_limit: float
    filter: dict
    stale_after_s: float
    ik: dict
    direct: dict
    rate_hz: float = 100.0
    source: Path | None = None
    raw: dict = field(default_factory=dict)

    @classmethod
    def load(cls, name_or_path) -> "RobotMapping":
        """Load ``config/robots/<name>.yaml`` or a YAML path.

        Raises:
            KeyError: unknown robot name (message lists the shipped ones, closest first).
            ValueError: malformed file (message names the key).
        """
        p = Path(str(name_or_path))
        if not (p.suffix in (".yaml", ".yml") and p.exists()):
            from robot_capture.paths import config_dir

            d = config_dir() / "robots"
            p = d / f"{name_or_path}.yaml"
            if not p.exists():
                known = sorted(f.stem for f in d.glob("*.yaml"))
                close = difflib.get_close_matches(str(name_or_path), known, n=3, cutoff=0.3)
                raise KeyError(f"unknown robot {name_or_path!r}; known: {close + [k for k in known if k not in close]}")
        from robot_capture.retarget.exo import _load_yaml

        return cls.from_dict(_load_yaml(str(p)), source=p)

    @classmethod
    def from_dict(cls, raw: dict, source=None) -> "RobotMapping":
        where = source or "<mapping>"
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: not a YAML mapping")
        unknown = set(raw) - _TOP_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; expected {sorted(_TOP_KEYS)}")
        for k in ("robot", "urdf", "tasks"):
            if k not in raw:
                raise ValueError(f"{where}: missing key {k!r}")
        urdf = Path(raw["urdf"])
        if not urdf.is_absolute():
            from robot_capture.paths import data_dir

            urdf = data_dir() / urdf
        tasks = []
        for i, t in enumerate(raw["tasks"]):
            bad = set(t) - _TASK_KEYS
            if bad:
                raise ValueError(f"{where}: task {i} has unknown keys {sorted(bad)}; expected {sorted(_TASK_KEYS)}")
            try:
                tasks.append(TaskSpec(**t))
            except TypeError as exc:
                raise ValueError(f"{where}: task {i}: {exc}") from None
        posture = raw.get("posture") or {}
        cal = raw.get("calibration_pose") or {}
        return cls(
            robot=str(raw["robot"]), urdf=urdf, base_link=raw.get("base_link"),
            locked_joints=raw.get("locked_joints") or [], tasks=tasks,
            posture_cost=float(posture.get("cost", 1e-3)), posture_q=dict(posture.get("q") or {}),
            limbs=dict(raw.get("limbs") or {}),
            calibration_robot=dict(cal.get("robot") or {}), calibration_human=dict(cal.get("human") or {}),
            velocity_limits=dict(raw.get("velocity_limits") or {"default": 2.0}),
            acceleration_limit=float(raw.get("acceleration_limit", 30.0)),
            filter=dict(raw.get("filter") or {"type": "one_euro"}),
            stale_after_s=float(raw.get("stale_after_s", 0.1)),
            ik=dict(raw.get("ik") or {}), direct=dict(raw.get("direct") or {}),
            rate_hz=float(raw.get("rate_hz", 100.0)), source=Path(source) if source else None, raw=raw,
        )

    def robot_model(self):
        """The :class:`~robot_capture.kinematics.model.RobotModel` with the legs locked."""
        from robot_capture.kinematics.model import RobotModel

        locked = self.locked_joints
        key = (str(self.urdf), self.urdf.stat().st_mtime_ns if self.urdf.exists() else 0, self.base_link,
               tuple(sorted(locked.items())) if isinstance(locked, dict) else tuple(locked))
        if key not in _MODEL_CACHE:  # models are read-only after construction; share them
            _MODEL_CACHE[key] = RobotModel.from_urdf(self.urdf, base_link=self.base_link, locked_joints=locked)
        return _MODEL_CACHE[key]

    def velocity_limit_array(self, model) -> np.ndarray:
        """(nq,) teleop velocity limits (rad/s), never above the URDF's."""
        default = float(self.velocity_limits.get("default", 2.0))
        for n in self.velocity_limits:
            if n != "default":
                model.joint_index(n)  # KeyError with suggestions
        v = np.array([float(self.velocity_limits.get(n, default)) for n in model.joint_names])
        return np.minimum(v, model.velocity_limit)

    def posture_array(self, model) -> np.ndarray:
        q = model.neutral()
        for n, v in self.posture_q.items():
            q[model.joint_index(n)] = float(v)
        return np.clip(q, model.lower, model.upper)

    def calibration_q(self, model) -> np.ndarray:
        q = np.zeros(model.nq)
        for n, v in self.calibration_robot.items():
            q[model.joint_index(n)] = float(v)
        return q

    def text(self) -> str:
        """The YAML text (for bag attachments)."""
        return self.source.read_text() if self.source else yaml.safe_dump(self.raw)
