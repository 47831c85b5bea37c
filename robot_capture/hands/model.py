"""Load a hand mapping (``config/hands/<hand>.yaml``) into a kinematic hand model. ROS-free.

:func:`load_hand` validates the YAML (:mod:`.schema`), reads the URDF, adds the virtual tip
links of ``tips:``, builds the :class:`~robot_capture.kinematics.RobotModel` of the sub-tree
under ``base_link`` (mimic / coupled joints share their driver's column of ``q``), narrows
each driver joint's limits so that every joint it drives stays within its own URDF limits
(and within ``limits:``), and computes the robot's palm frame (:func:`palm_frame`).

Frames: every robot position is in the hand's ``base_link`` frame (m). The palm frame is the
same construction on robot and human: origin the wrist (robot: the base link origin),
``-z`` toward the mean of the finger knuckles (robot: the fingers' ``base_link`` origins at the
neutral configuration; human: the OpenXR ``<finger>_proximal`` joints of the same fingers),
``x`` from the last knuckle toward the index's (the thumb side), ``y = z x x``. Since it uses
points only, it does not depend on the tracker's wrist axes.
"""
from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_capture.config_schema import ConfigError, load_yaml, suggest, validate
from robot_capture.kinematics import RobotModel
from robot_capture.kinematics.urdf import Joint, Link, parse_urdf

from .schema import FINGERS, HandMappingSpec


class HandConfigError(ConfigError):
    """A hand mapping is invalid (one line per problem, naming the file and the key)."""


def palm_frame(wrist, knuckles) -> np.ndarray:
    """(3, 3) rotation whose columns are the palm frame's x, y, z axes (module docstring).

    Args:
        wrist: (3,) wrist point. knuckles: (k, 3), k >= 2, the non-thumb finger knuckles in
            FINGERS order (index first).
    Raises:
        ValueError: a degenerate palm (knuckles on the wrist or on one line through it).
    """
    # plain floats: a per-frame call on 3-vectors, ~10x cheaper than NumPy's small-array calls
    w = [float(c) for c in wrist]
    ks = np.asarray(knuckles, dtype=float).tolist()
    n = len(ks)
    d = [sum(k[a] for k in ks) / n - w[a] for a in range(3)]
    x = [ks[0][a] - ks[-1][a] for a in range(3)]
    nd = math.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    if not nd > 1e-4:
        raise ValueError("degenerate palm: the knuckles are on the wrist")
    z = [-c / nd for c in d]
    xz = x[0] * z[0] + x[1] * z[1] + x[2] * z[2]
    x = [x[a] - xz * z[a] for a in range(3)]
    nx = math.sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2])
    if not nx > 1e-4:
        raise ValueError("degenerate palm: the knuckles are in line with the wrist")
    x = [c / nx for c in x]
    y = [z[1] * x[2] - z[2] * x[1], z[2] * x[0] - z[0] * x[2], z[0] * x[1] - z[1] * x[0]]
    return np.array([[x[0], y[0], z[0]], [x[1], y[1], z[1]], [x[2], y[2], z[2]]])


def hand_dirs() -> list[Path]:
    """Folders searched for ``<hand>.yaml``: ``$ROBOT_CAPTURE_HANDS`` (``os.pathsep``-separated),
    the config folder's ``hands/`` (:func:`robot_capture.paths.config_dir`), then the installed copy."""
    import sys

    from robot_capture.paths import config_dir

    env = os.environ.get("ROBOT_CAPTURE_HANDS")
    out = [Path(p).expanduser() for p in env.split(os.pathsep) if p] if env else []
    try:
        out.append(config_dir() / "hands")
    except FileNotFoundError:
        pass
    out.append(Path(sys.prefix) / "share" / "robot_capture" / "config" / "hands")
    return [d for d in out if d.is_dir()]


def shipped_hands() -> list[str]:
    """Names of every hand mapping found in :func:`hand_dirs` (sorted, first match wins)."""
    return sorted({p.stem for d in hand_dirs() for p in d.glob("*.yaml")})


def resolve_hand(name_or_path) -> Path:
    """``<hand>.yaml`` path of a name (searched in :func:`hand_dirs`) or an existing file path.

    Raises:
        FileNotFoundError: one line, with "did you mean" among the known hands.
    """
    p = Path(str(name_or_path)).expanduser()
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if p.is_file():
            return p
        raise FileNotFoundError(f"hand mapping {str(p)!r} does not exist")
    for d in hand_dirs():
        if (d / f"{p.name}.yaml").is_file():
            return d / f"{p.name}.yaml"
    known = shipped_hands()
    raise FileNotFoundError(f"unknown hand {str(name_or_path)!r}{suggest(str(name_or_path), known)}; "
                            f"known hands: {', '.join(known) or 'none'}")


@dataclass
class Hand:
    """A loaded hand mapping.

    Attributes:
        spec: the validated :class:`~.schema.HandMappingSpec`.
        name, side: from the file. source: the YAML path.
        model: :class:`RobotModel` of the hand (root ``spec.base_link``); ``model.lower/upper``
            are the narrowed limits (mimic-safe, ``limits:``).
        fingers: finger names of the mapping, FINGERS order (thumb first).
        tip_links, keypoints: per finger, the robot tip link and the human keypoint.
        knuckle_links: the non-thumb fingers' base links (palm frame).
        R_palm: (3, 3) the robot palm frame in the base frame (columns x, y, z), at the neutral q.
        joint_names: the active joints (``model.joint_names``), the order of ``q``.
    """

    spec: HandMappingSpec
    source: Path
    model: RobotModel
    fingers: list
    R_palm: np.ndarray

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def side(self) -> str:
        return self.spec.side

    @property
    def joint_names(self) -> list:
        return self.model.joint_names

    @property
    def wrist_link(self) -> str:
        """The link standing for the human wrist (``wrist_link``, default ``base_link``)."""
        return self.spec.wrist_link or self.spec.base_link

    @property
    def wrist_position(self) -> np.ndarray:
        """(3,) the wrist link's origin in the base frame (m; fixed to the base by construction)."""
        return self.model.fk(self.model.neutral(), self.wrist_link)[:3, 3]

    @property
    def tip_links(self) -> list:
        return [self.spec.fingers[f].link for f in self.fingers]

    @property
    def keypoints(self) -> list:
        return [self.spec.fingers[f].keypoint for f in self.fingers]

    @property
    def knuckle_links(self) -> list:
        return [self.spec.fingers[f].base_link for f in self.fingers if f != "thumb"]

    def command(self, q) -> dict:
        """{joint: value} of every movable hand joint at ``q`` (nq,): drivers and mimic joints (rad)."""
        return self.model.joint_positions(q)

    def tip_positions(self, q) -> np.ndarray:
        """(nfingers, 3) fingertip positions (m, base frame) at ``q`` (nq,)."""
        idx = self.__dict__.get("_tip_idx")
        if idx is None:
            idx = self.__dict__["_tip_idx"] = np.array([self.model.frame_index(n) for n in self.tip_links], np.int32)
        return self.model.fk_frames(np.asarray(q, dtype=float)[None], idx)[0, :, :3, 3]


def _add_tips(urdf, spec: HandMappingSpec, where: str):
    for name, vl in spec.tips.items():
        if name in urdf.links:
            raise HandConfigError([f"{where}: tips.{name}: the URDF already has a link {name!r}"])
        if vl.parent not in urdf.links:
            raise HandConfigError([f"{where}: tips.{name}.parent: unknown link {vl.parent!r}"
                                   f"{suggest(vl.parent, urdf.links)}"])
        T = np.eye(4)
        T[:3, 3] = vl.offset
        urdf.links[name] = Link(name)
        urdf.joints[f"{name}__fixed"] = Joint(f"{name}__fixed", "fixed", vl.parent, name, origin=T)


def _narrow_limits(model: RobotModel, urdf, spec: HandMappingSpec, where: str) -> None:
    """Driver limits so that every driven (mimic) joint stays in its URDF limits, then ``limits:``."""
    lo, hi = model.lower.copy(), model.upper.copy()
    for i in range(1, model.nframes):
        qi = model.link_qidx[i]
        jn = model.link_joint[i]
        if qi < 0 or jn in model.joint_names:
            continue
        j, m, o = urdf.joints[jn], model.link_mult[i], model.link_offset[i]
        if m == 0:
            continue
        a, b = (j.lower - o) / m, (j.upper - o) / m
        lo[qi], hi[qi] = max(lo[qi], min(a, b)), min(hi[qi], max(a, b))
    for jn, (a, b) in spec.limits.items():
        if jn not in model.joint_names:
            raise HandConfigError([f"{where}: limits.{jn}: not a driver joint of the hand"
                                   f"{suggest(jn, model.joint_names)}; joints: {', '.join(model.joint_names)}"])
        i = model.joint_names.index(jn)
        lo[i], hi[i] = max(lo[i], a), min(hi[i], b)
    bad = [model.joint_names[i] for i in range(model.nq) if not lo[i] <= hi[i]]
    if bad:
        raise HandConfigError([f"{where}: joint limits of {', '.join(bad)} are empty after the mimic joints' "
                               "and limits: constraints"])
    model.lower[:], model.upper[:] = lo, hi


def load_hand(name_or_path) -> Hand:
    """Load a hand mapping by name (``config/hands/<name>.yaml``) or path.

    Raises:
        FileNotFoundError: unknown hand or missing URDF (one line).
        HandConfigError: invalid YAML keys/values, an unknown link ("did you mean"), a URDF
            whose hand has no movable joints, a degenerate palm.
    """
    path = resolve_hand(name_or_path)
    where = str(path)
    try:
        spec = validate(HandMappingSpec, load_yaml(path), where)
    except ConfigError as e:
        raise HandConfigError(e.problems) from None
    urdf_path = Path(spec.urdf).expanduser()
    if not urdf_path.is_absolute():
        beside = path.parent / urdf_path
        if beside.exists():
            urdf_path = beside
        else:
            from robot_capture.paths import data_dir

            urdf_path = data_dir() / urdf_path
    if not urdf_path.is_file():
        raise FileNotFoundError(f"{where}: urdf: {str(urdf_path)!r} does not exist")
    urdf = copy.deepcopy(parse_urdf(urdf_path))
    _add_tips(urdf, spec, where)
    if spec.base_link not in urdf.links:
        raise HandConfigError([f"{where}: base_link: unknown link {spec.base_link!r}{suggest(spec.base_link, urdf.links)}"])
    model = RobotModel(urdf, base_link=spec.base_link)
    if model.nq == 0:
        raise HandConfigError([f"{where}: the URDF {urdf_path.name} has no movable joints under base_link "
                               f"{spec.base_link!r}: not a hand (is base_link the hand's root?)"])
    problems = []
    if spec.wrist_link is not None and spec.wrist_link not in model.frame_names:
        problems.append(f"{where}: wrist_link: link {spec.wrist_link!r} is not in the hand under "
                        f"{spec.base_link!r}{suggest(spec.wrist_link, model.frame_names)}")
    for f, fs in spec.fingers.items():
        for key in ("link", "base_link"):
            ln = getattr(fs, key)
            if ln not in model.frame_names:
                problems.append(f"{where}: fingers.{f}.{key}: link {ln!r} is not in the hand under "
                                f"{spec.base_link!r}{suggest(ln, model.frame_names)}")
    for jn in spec.glove.joints:
        if jn not in model.joint_names:
            problems.append(f"{where}: glove.joints.{jn}: not a driver joint of the hand{suggest(jn, model.joint_names)}; "
                            f"joints: {', '.join(model.joint_names)}")
    if problems:
        raise HandConfigError(problems)
    _narrow_limits(model, urdf, spec, where)
    fingers = [f for f in FINGERS if f in spec.fingers]
    q0 = np.clip(np.zeros(model.nq), model.lower, model.upper)
    knuckles = [spec.fingers[f].base_link for f in fingers if f != "thumb"]
    pts = model.fk_frames(q0[None], [spec.wrist_link or spec.base_link] + knuckles)[0, :, :3, 3]
    try:
        R = palm_frame(pts[0], pts[1:])
    except ValueError as e:
        raise HandConfigError([f"{where}: fingers.*.base_link: {e}"]) from None
    return Hand(spec, path, model, fingers, R)
