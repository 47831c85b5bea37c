"""The schema of a hand mapping file (``config/hands/<hand>.yaml``): pydantic v2 models.

One file describes one robot hand: its URDF and base link, which human hand keypoints
(OpenXR joint names, :data:`robot_capture.retarget.pose.OPENXR_HAND_JOINTS`) drive which
links, the retargeting mode, weights, scaling, limits and filter. Every model forbids
unknown keys (a "did you mean" hint, :func:`robot_capture.config_schema.validate`) and every
number is finite. Link names are checked against the URDF when the hand is loaded
(:func:`robot_capture.hands.model.load_hand`), not here. ROS-free. Key reference: DESIGN.md "hands".
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, Field, model_validator

from robot_capture.config_schema import STRICT_KEYS, Finite, NonNegative, Positive, suggest
from robot_capture.retarget.mapping_schema import Direct
from robot_capture.retarget.pose import OPENXR_HAND_JOINTS

#: finger names, thumb first (the pinch pairs are thumb-finger pairs)
FINGERS = ("thumb", "index", "middle", "ring", "little")


def _hand_keypoint(v: str) -> str:
    if v not in OPENXR_HAND_JOINTS:
        raise ValueError(f"unknown hand keypoint {v!r}{suggest(v, OPENXR_HAND_JOINTS)}; "
                         f"keypoints are the OpenXR hand joints: {', '.join(OPENXR_HAND_JOINTS)}")
    return v


HandKeypoint = Annotated[str, AfterValidator(_hand_keypoint)]
Vec3 = Annotated[list[Finite], Field(min_length=3, max_length=3)]


class VirtualLink(BaseModel):
    """A point fixed on a link (e.g. a fingertip on a URDF without tip links): added to the
    model as a fixed child link named by the key of ``tips``."""

    model_config = STRICT_KEYS
    parent: str                     #: URDF link it is fixed to
    offset: Vec3                    #: m, in the parent link's frame


class FingerSpec(BaseModel):
    """One robot finger driven by one human finger."""

    model_config = STRICT_KEYS
    link: str                       #: the robot fingertip link (URDF or ``tips``)
    keypoint: HandKeypoint          #: the human keypoint it follows (usually ``<finger>_tip``)
    base_link: str                  #: the finger's first link (knuckle): defines the palm frame
    weight: NonNegative = 1.0       #: relative weight of this finger's objectives
    scaling: Optional[Positive] = None  #: this finger's scaling (default: the hand's ``scaling``)


class PinchSpec(BaseModel):
    """DexPilot's pinch weighting of thumb-finger pairs (Handa et al., "DexPilot", ICRA 2020, sec. IV-B)."""

    model_config = STRICT_KEYS
    close_m: Positive = 0.02        #: human thumb-finger tip distance under which the robot pair's target is closed (0)
    release_m: Positive = 0.04      #: distance above which the pair follows the scaled human vector
    weight: NonNegative = 200.0     #: pair cost when closed (the DexPilot paper's 200)

    @model_validator(mode="after")
    def _ordered(self):
        if not self.release_m > self.close_m:
            raise ValueError(f"release_m ({self.release_m}) must be > close_m ({self.close_m})")
        return self


class HandSolverSpec(BaseModel):
    """Keyword arguments of the IK solver for the hand (:class:`robot_capture.kinematics.IKSolver`)."""

    model_config = STRICT_KEYS
    max_iterations: Annotated[int, Field(ge=1, le=200)] = 12  #: after a jump (solver.py JUMP_M) and on the first frame
    #: while tracking smoothly (warm start one frame away): fewer steps suffice
    warm_iterations: Annotated[int, Field(ge=1, le=200)] = 4
    damping: NonNegative = 1e-6
    #: 0.01, not the arms' 1.0: the high pinch weights make E large and the paper's lambda = E froze the fingers
    #: (a fist from the open hand stopped 8 cm short in 12 iterations; 0.01 reaches it, test_hand_retarget.py)
    error_damping: NonNegative = 0.01
    step_tolerance: Positive = 1e-5
    regularization: NonNegative = 1e-4  #: cost (1/rad^2) pulling toward the previous solution
    restart: bool = True            #: also solve from the open hand each frame, keep it when clearly better


class HandMappingSpec(BaseModel):
    """A hand mapping file (see module docstring)."""

    model_config = STRICT_KEYS
    name: str
    side: Literal["left", "right"]
    urdf: str                        #: relative to the file's folder, then the shared data dir; or absolute
    base_link: str                   #: the hand's base (wrist / palm) link: the model's root
    #: the link whose origin stands for the human wrist (vector origin, palm frame); default base_link
    wrist_link: Optional[str] = None
    mode: Literal["vector", "dexpilot", "position"] = "dexpilot"
    scaling: Positive = 1.0          #: robot / human length ratio of the wrist-to-fingertip vectors
    fingers: dict[str, FingerSpec]
    tips: dict[str, VirtualLink] = {}
    pinch: PinchSpec = PinchSpec()
    wrist_offset: Vec3 = [0.0, 0.0, 0.0]  #: position mode: the human wrist's place in the base frame (m)
    #: joint limits (rad) narrowing the URDF's, {joint: [lower, upper]}
    limits: dict[str, Annotated[list[Finite], Field(min_length=2, max_length=2)]] = {}
    #: first-order low-pass on the command: q += alpha (q_solved - q); 1 = no filter
    filter_alpha: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 1.0
    solver: HandSolverSpec = HandSolverSpec()
    #: a data glove's joint angles (a JointState, like the exo's direct mode): {robot driver joint:
    #: {source, sign, scale, offset, clamp}}, q = clamp(sign * scale * reading + offset); no IK
    glove: Direct = Direct()

    @model_validator(mode="after")
    def _check(self):
        for k in self.fingers:
            if k not in FINGERS:
                raise ValueError(f"fingers: unknown finger {k!r}{suggest(k, FINGERS)}; fingers: {', '.join(FINGERS)}")
        if "thumb" not in self.fingers or len(self.fingers) < 3:
            raise ValueError("fingers: a hand needs the thumb and at least two other fingers (they set the palm frame)")
        for j, (lo, hi) in self.limits.items():
            if not lo < hi:
                raise ValueError(f"limits.{j}: lower {lo} must be < upper {hi}")
        return self
