"""Robot mapping files: ``<robot>.yaml`` -> :class:`RobotMapping`.

A mapping says which robot frame (or a point on it) tracks which human keypoint (with costs),
which joints are locked (legs), the posture task, the limbs used for per-limb scaling, a
calibration pose both human and robot can take (for rotation offsets), teleoperation
velocity/acceleration limits, the output filter, the stale-input limit, IK settings, gear
couplings of motor joints and the direct joint map. Adding a robot is writing one YAML file,
anywhere: a name is looked up in the user robot folder, then the shipped ones
(:func:`robot_capture.paths.resolve_robot`). The schema is
:mod:`robot_capture.retarget.mapping_schema`; DESIGN.md "Robot mapping keys" documents every key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from robot_capture.config_schema import ConfigError, load_yaml, suggest, validate
from robot_capture.retarget.mapping_schema import MappingSpec, TaskSpec

_MODEL_CACHE: dict = {}

__all__ = ["RobotMapping", "TaskSpec", "ConfigError"]


@dataclass
class RobotMapping:
    """Parsed robot mapping (see module docstring). ``source`` is the YAML path.

    ``tasks`` are :class:`~robot_capture.retarget.mapping_schema.TaskSpec`; ``coupling`` maps a
    motor joint to ``(gains {model joint: gain}, offset)``; ``acceleration_limits`` maps joint
    names (and ``default``) to rad/s^2; ``hands`` maps ``left``/``right`` to a hand mapping name
    (:mod:`robot_capture.hands`, driven live by :mod:`robot_capture.retarget.live_hands`).
    """

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
    acceleration_limits: dict = field(default_factory=dict)
    coupling: dict = field(default_factory=dict)
    hands: dict = field(default_factory=dict)

    @property
    def path(self) -> Path | None:
        """The YAML file it was loaded from (None for a mapping built from a dict)."""
        return self.source

    @classmethod
    def load(cls, name_or_path) -> "RobotMapping":
        """Load a robot by name (user robot folder, then shipped) or from a YAML path.

        Raises:
            KeyError: unknown robot name (message lists the known ones, closest first).
            FileNotFoundError: a path that does not exist.
            ConfigError (a ValueError): malformed file; one line per problem naming the key.
        """
        from robot_capture.paths import resolve_robot

        p = resolve_robot(name_or_path)
        return cls.from_dict(load_yaml(p), source=p)

    @classmethod
    def from_dict(cls, raw: dict, source=None) -> "RobotMapping":
        """Validate ``raw`` (parsed YAML) against :class:`MappingSpec`.

        Raises:
            ConfigError: one line per problem (``file: key.path: what is wrong (did you mean ...)``).
        """
        where = str(source or "<mapping>")
        spec = validate(MappingSpec, raw, where)
        urdf = Path(spec.urdf).expanduser()
        if not urdf.is_absolute():
            from robot_capture.paths import data_dir

            beside = Path(source).parent / urdf if source else None
            urdf = beside if beside is not None and beside.exists() else data_dir() / urdf
        acc = spec.acceleration_limit
        acc = dict(acc) if isinstance(acc, dict) else {"default": float(acc)}
        acc.setdefault("default", 30.0)
        return cls(
            robot=spec.robot, urdf=urdf, base_link=spec.base_link,
            locked_joints=spec.locked_joints, tasks=list(spec.tasks),
            posture_cost=spec.posture.cost, posture_q=dict(spec.posture.q),
            limbs={k: v.model_dump() for k, v in spec.limbs.items()},
            calibration_robot=dict(spec.calibration_pose.robot), calibration_human=dict(spec.calibration_pose.human),
            velocity_limits=dict(spec.velocity_limits), acceleration_limit=float(acc["default"]),
            filter=spec.filter.params(), stale_after_s=spec.stale_after_s,
            ik=spec.ik.model_dump(), direct={"joints": {k: ({} if v is None else v.model_dump(exclude_none=True))
                                                         for k, v in spec.direct.joints.items()}},
            rate_hz=spec.rate_hz, source=Path(source) if source else None, raw=dict(raw),
            acceleration_limits=acc,
            coupling={m: (dict(c.joints), float(c.offset)) for m, c in spec.coupling.items()},
            hands=dict(spec.hands),
        )

    def robot_model(self):
        """The :class:`~robot_capture.kinematics.model.RobotModel`: legs (``locked_joints``) and
        coupled motor joints locked, plus one fixed frame ``<frame>@<task>`` per task with a
        ``point`` (the point, in the link frame). Shared between mappings (read-only).

        Raises:
            FileNotFoundError: the URDF is missing. KeyError: a task frame, locked or coupled
            joint that the URDF does not have (with suggestions). ValueError: malformed URDF.
        """
        from robot_capture.kinematics.model import RobotModel, unknown_name_error
        from robot_capture.kinematics.urdf import Joint, Link, parse_urdf

        if not self.urdf.is_file():
            raise FileNotFoundError(f"{self.source or self.robot}: urdf {self.urdf}: no such file")
        locked = self.locked_joints
        locked = dict(locked) if isinstance(locked, dict) else {n: 0.0 for n in locked}
        points = tuple((t.frame, t.ik_frame, tuple(t.point)) for t in self.tasks if t.point is not None)
        key = (str(self.urdf), self.urdf.stat().st_mtime_ns, self.base_link, tuple(sorted(locked.items())),
               tuple(sorted(self.coupling)), points)
        if key not in _MODEL_CACHE:  # models are read-only after construction; share them
            urdf = parse_urdf(self.urdf)
            for motor in self.coupling:
                if motor in urdf.joints and urdf.joints[motor].type != "fixed" and motor not in locked:
                    locked[motor] = 0.0  # commanded from its coupling, not solved for
            for link, name, xyz in points:
                if link not in urdf.links:
                    raise unknown_name_error("link", link, urdf.links)
                T = np.eye(4)
                T[:3, 3] = xyz
                urdf.links[name] = Link(name)
                urdf.joints[f"{name}_fixed"] = Joint(f"{name}_fixed", "fixed", link, name, origin=T)
            _MODEL_CACHE[key] = RobotModel(urdf, base_link=self.base_link, locked_joints=locked)
        return _MODEL_CACHE[key]

    def coupling_matrix(self, model):
        """``(names, A (m, nq), b (m,))``: motor joint values ``q_motor = A @ q + b``.

        Raises:
            KeyError: a coupling term names a joint the model does not solve for.
        """
        names = list(self.coupling)
        A = np.zeros((len(names), model.nq))
        b = np.zeros(len(names))
        for r, m in enumerate(names):
            gains, off = self.coupling[m]
            for j, g in gains.items():
                if j not in model.joint_names:
                    raise KeyError(f"{self._where}: coupling.{m}.joints: {j!r} is not a joint the IK solves for"
                                   f"{suggest(j, model.joint_names)}")
                A[r, model.joint_index(j)] += g
            b[r] = off
        return names, A, b

    def velocity_limit_array(self, model) -> np.ndarray:
        """(nq,) teleop velocity limits (rad/s), never above the URDF's. KeyError for an unknown joint."""
        return np.minimum(self._per_joint(self.velocity_limits, model, "velocity_limits", 2.0), model.velocity_limit)

    def acceleration_limit_array(self, model) -> np.ndarray:
        """(nq,) teleop acceleration limits (rad/s^2). KeyError for an unknown joint."""
        return self._per_joint(self.acceleration_limits or {"default": self.acceleration_limit}, model,
                               "acceleration_limit", self.acceleration_limit)

    @property
    def _where(self) -> str:
        """The mapping's file (or robot name) that error messages start with."""
        return str(self.source or self.robot)

    def _per_joint(self, values: dict, model, key: str, fallback: float) -> np.ndarray:
        default = float(values.get("default", fallback))
        for n in values:
            if n != "default" and n not in model.joint_names:
                raise KeyError(f"{self._where}: {key}.{n}: not a joint the IK solves for"
                               f"{suggest(n, model.joint_names)}")
        return np.array([float(values.get(n, default)) for n in model.joint_names])

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
