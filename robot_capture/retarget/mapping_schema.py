"""The schema of a robot mapping file (``config/robots/<robot>.yaml``): pydantic v2 models.

Every model sets ``model_config = STRICT_KEYS``: an unknown key, at any depth, is an error
with a "did you mean" hint (:func:`robot_capture.config_schema.validate`). Every number is
finite (no ``.nan``/``.inf`` anywhere, the config_schema rule) and in its range: costs >= 0,
velocity and acceleration limits > 0, ``stale_after_s`` > 0, ``rate_hz`` a rate. Keypoints
(``tasks[].keypoint``, ``root_keypoint``) are HumanPose names
(:data:`robot_capture.retarget.pose.BODY_KEYPOINTS`, ``<side>_hand_<OpenXR joint>``). The
reference table of every key is in DESIGN.md ("Robot mapping keys"). ROS-free.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from robot_capture.config_schema import (STRICT_KEYS, Finite, NonNegative, Positive, PositiveSeconds, RateHz,
                                         suggest)
from robot_capture.retarget.pose import BODY_KEYPOINTS, OPENXR_HAND_JOINTS

Cost = NonNegative
#: a velocity or acceleration limit: finite, > 0
Limit = Positive
#: every HumanPose keypoint name a source can give
KEYPOINTS = BODY_KEYPOINTS + tuple(f"{side}_hand_{j}" for side in ("left", "right") for j in OPENXR_HAND_JOINTS)


def _keypoint(v: str) -> str:
    if v not in KEYPOINTS:
        raise ValueError(f"unknown keypoint {v!r}{suggest(v, KEYPOINTS)}; keypoints: {', '.join(BODY_KEYPOINTS)}, "
                         "<left|right>_hand_<OpenXR joint>")
    return v


Keypoint = Annotated[str, AfterValidator(_keypoint)]


class TaskSpec(BaseModel):
    """One IK task: robot ``frame`` (a link; with ``point``, a point fixed on it) tracks human
    ``keypoint``, both relative to their roots (``root`` link / ``root_keypoint``)."""

    model_config = STRICT_KEYS
    name: str
    frame: str
    keypoint: Keypoint
    root: Optional[str] = None
    root_keypoint: Keypoint = "pelvis"
    scale: Optional[str] = None
    position_cost: Cost = 1.0
    orientation_cost: Cost = 0.0
    wrist: bool = False
    point: Optional[tuple[Finite, Finite, Finite]] = None

    @property
    def ik_frame(self) -> str:
        """The model frame the IK drives: ``frame``, or the point frame ``<frame>@<name>``."""
        return f"{self.frame}@{self.name}" if self.point is not None else self.frame


class Posture(BaseModel):
    model_config = STRICT_KEYS
    cost: Cost = 1e-3
    q: dict[str, Finite] = {}


class Limb(BaseModel):
    model_config = STRICT_KEYS
    shoulder: str
    elbow: str
    wrist: str


class CalibrationPose(BaseModel):
    model_config = STRICT_KEYS
    robot: dict[str, Finite] = {}
    human: dict[str, Finite] = {}


class FilterSpec(BaseModel):
    """``one_euro`` (min_cutoff_hz, beta, d_cutoff_hz), ``critically_damped`` (frequency_hz) or ``none``."""

    model_config = STRICT_KEYS
    type: Literal["one_euro", "critically_damped", "none"] = "one_euro"
    min_cutoff_hz: Optional[Positive] = None
    beta: Optional[Cost] = None
    d_cutoff_hz: Optional[Positive] = None
    frequency_hz: Optional[Positive] = None

    @model_validator(mode="after")
    def _params_match_type(self):
        allowed = {"one_euro": {"min_cutoff_hz", "beta", "d_cutoff_hz"}, "critically_damped": {"frequency_hz"},
                   "none": set()}[self.type]
        bad = sorted(k for k in ("min_cutoff_hz", "beta", "d_cutoff_hz", "frequency_hz")
                     if getattr(self, k) is not None and k not in allowed)
        if bad:
            raise ValueError(f"{bad} do not apply to filter type {self.type!r} (it takes {sorted(allowed) or 'nothing'})")
        return self

    def params(self) -> dict:
        """The dict :func:`robot_capture.retarget.filters.make_filter` takes."""
        return {"type": self.type, **{k: v for k, v in self.model_dump().items() if k != "type" and v is not None}}


class IKSettings(BaseModel):
    """Keyword arguments of :class:`robot_capture.kinematics.ik.IKSolver`."""

    model_config = STRICT_KEYS
    damping: Cost = 1e-4
    error_damping: Cost = 1.0
    max_iterations: Annotated[int, Field(ge=1)] = 3
    position_tolerance: Cost = 1e-3
    orientation_tolerance: Cost = 1e-2
    step_tolerance: Cost = 1e-10


class DirectJoint(BaseModel):
    model_config = STRICT_KEYS
    source: Optional[str] = None
    sign: Finite = 1.0
    scale: Finite = 1.0
    offset: Finite = 0.0
    clamp: Optional[tuple[Finite, Finite]] = None

    @field_validator("clamp")
    @classmethod
    def _ordered(cls, v):
        if v is not None and v[0] > v[1]:
            raise ValueError(f"clamp must be [lo, hi] with lo <= hi, got {list(v)}")
        return v


class Direct(BaseModel):
    model_config = STRICT_KEYS
    joints: dict[str, Optional[DirectJoint]] = {}


class Coupling(BaseModel):
    """A motor joint driven through gears from model joints: ``q_motor = sum(gain * q_joint) + offset``."""

    model_config = STRICT_KEYS
    joints: dict[str, Finite] = Field(min_length=1)
    offset: Finite = 0.0


class MappingSpec(BaseModel):
    """A whole robot mapping file (see DESIGN.md "Robot mapping keys")."""

    model_config = STRICT_KEYS
    robot: str
    urdf: str
    base_link: Optional[str] = None
    locked_joints: Union[list[str], dict[str, Finite]] = []
    tasks: list[TaskSpec] = Field(min_length=1)
    posture: Posture = Posture()
    limbs: dict[str, Limb] = {}
    calibration_pose: CalibrationPose = CalibrationPose()
    velocity_limits: dict[str, Limit] = {"default": 2.0}
    acceleration_limit: Union[Limit, dict[str, Limit]] = 30.0
    filter: FilterSpec = FilterSpec()
    stale_after_s: PositiveSeconds = 0.1
    ik: IKSettings = IKSettings()
    direct: Direct = Direct()
    coupling: dict[str, Coupling] = {}
    rate_hz: RateHz = 100.0
    #: hand mappings (config/hands/<name>.yaml, DESIGN.md "hands") driven by /vr/<side>_hand; their
    #: joints must be in ``locked_joints`` (the hand retargeter, not the arm IK, commands them)
    hands: dict[Literal["left", "right"], str] = {}

    @model_validator(mode="after")
    def _unique_task_names(self):
        names = [t.name for t in self.tasks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"task names must be unique: {dup} repeated")
        for t in self.tasks:
            if t.scale is not None:
                side = t.scale.partition("_")[0]
                if side not in self.limbs:
                    raise ValueError(f"task {t.name!r}: scale {t.scale!r} names no limb; limbs: {sorted(self.limbs)}")
                if t.scale.partition("_")[2] not in ("", "upper"):
                    raise ValueError(f"task {t.name!r}: scale must be '<limb>' or '<limb>_upper', got {t.scale!r}")
        return self


__all__ = ["KEYPOINTS", "MappingSpec", "TaskSpec", "Posture", "Limb", "CalibrationPose", "FilterSpec", "IKSettings",
           "Direct", "DirectJoint", "Coupling"]
