"""Recorded WebXR hand poses -> OpenXR hand joints (the VR source's hand input).

Input: JSON lines recorded with the WebXR Hand Input API (W3C WebXR Hand Input Module -
Level 1, https://www.w3.org/TR/webxr-hand-input-1/), e.g. the Oculus Quest poses in
``data_dir()/hand_tracking/webxr_quest_hand_poses_{left,right}.jsonl`` (handy.js, MIT).
Each line: ``names`` (list of str), ``handedness`` (``left``/``right``), ``jointPositions``
(25 x [x, y, z], millimetres, relative to the wrist), plus ``headPosition``/``headRotation``
and ``digitTipPositions`` (kept as recorded, not interpreted here).

Frames and conventions:

* WebXR joint order (XRHandJoint): wrist, thumb-metacarpal, thumb-phalanx-proximal,
  thumb-phalanx-distal, thumb-tip, then for index/middle/ring/pinky: -finger-metacarpal,
  -phalanx-proximal, -phalanx-intermediate, -phalanx-distal, -tip (25 joints).
* OpenXR order (XR_EXT_hand_tracking, XrHandJointEXT; :data:`.pose.OPENXR_HAND_JOINTS`):
  palm, wrist, then the same 24 finger joints in the same order (26 joints). So OpenXR joint
  ``j >= 1`` is WebXR joint ``j - 1``; only ``palm`` is new. The OpenXR spec places the palm
  joint at the centre of the middle finger's metacarpal bone: we synthesize it as the
  midpoint of ``middle_metacarpal`` and ``middle_proximal`` (the bone's two ends).
* The file's positions are in the wrist's *joint space*, not the WebXR reference space: the
  index-metacarpal position is identical in all 55 poses of each file while the head
  rotation varies. WebXR joint space (XRJointSpace): -Z along the bone toward the fingertip,
  +Y out of the back of the hand, X completing a right-handed frame, so +X points to the
  thumb side on the left hand and to the little-finger side on the right hand (the data
  agree: thumb joints have x > 0 in the left file, x < 0 in the right file).
* Our wrist keypoint frame (:mod:`.pose`, DESIGN.md "retarget"): -z toward the
  middle-finger base, +x toward the thumb side. Hence left: identity; right: a half turn
  about z, ``(x, y, z) -> (-x, -y, z)`` (:func:`webxr_to_wrist_frame`). No REP-103 axis swap
  applies to these wrist-relative positions; the WebXR *reference* space (y up, -z forward,
  x right; metres) maps to REP-103 by :data:`REP103_FROM_WEBXR_REFERENCE` (x = -z, y = -x,
  z = y), which a live WebXR/OpenXR bridge applies to the wrist pose itself before the
  wrist pose reaches :func:`webxr_to_openxr` (it expects ``vr_world`` = REP-103, z up).
* Joint orientations (the recording has none): each joint's frame has -z along its bone
  toward the fingertip (the bone to the next joint; tips use the bone into them; palm and
  metacarpal use their metacarpal bone) and x the wrist's x (thumb side) made orthogonal
  (Gram-Schmidt), i.e. the wrist keypoint convention carried along each finger: a flat,
  straight hand gives every joint the wrist's rotation. Degenerate bones (< 1 mm) take the
  wrist rotation. OpenXR's own joint axes (-Z distal, +Y dorsal) differ from this by the same
  per-hand constant rotation as above.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_capture.retarget.pose import OPENXR_HAND_JOINTS, frame_from_axes

WEBXR_HAND_JOINTS = ("wrist",) + tuple(
    f"{finger}-{part}"
    for finger, parts in (
        ("thumb", ("metacarpal", "phalanx-proximal", "phalanx-distal", "tip")),
        ("index-finger", ("metacarpal", "phalanx-proximal", "phalanx-intermediate", "phalanx-distal", "tip")),
        ("middle-finger", ("metacarpal", "phalanx-proximal", "phalanx-intermediate", "phalanx-distal", "tip")),
        ("ring-finger", ("metacarpal", "phalanx-proximal", "phalanx-intermediate", "phalanx-distal", "tip")),
        ("pinky-finger", ("metacarpal", "phalanx-proximal", "phalanx-intermediate", "phalanx-distal", "tip")),
    )
    for part in parts
)
assert len(WEBXR_HAND_JOINTS) == 25 and len(OPENXR_HAND_JOINTS) == 26

# REP-103 axes expressed from WebXR reference-space axes (x right, y up, -z forward): x=-z, y=-x, z=y.
REP103_FROM_WEBXR_REFERENCE = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

_FLIP_RIGHT = np.diag([-1.0, -1.0, 1.0])  # WebXR right-hand joint space -> our wrist frame (half turn about z)
_MM = 1e-3


@dataclass(frozen=True)
class WebXrHandPose:
    """One recorded hand pose.

    Attributes:
        names: pose names as recorded (e.g. ``("rest",)``, ``("fist", "✊")``).
        handedness: ``"left"`` or ``"right"``.
        positions: (25,3) float64 joint positions, metres, WebXR order, in the WebXR wrist joint space.
        source: ``"<file>:<line>"`` it came from.
        head_position_mm, head_rotation: as recorded (not interpreted).
    """

    names: tuple
    handedness: str
    positions: np.ndarray
    source: str = ""
    head_position_mm: tuple = field(default=(), repr=False)
    head_rotation: tuple = field(default=(), repr=False)

    @property
    def name(self) -> str:
        return self.names[0] if self.names else ""


def _parse_line(text: str, where: str) -> WebXrHandPose:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(d).__name__}")
    for key in ("names", "handedness", "jointPositions"):
        if key not in d:
            raise ValueError(f"{where}: missing key {key!r}")
    names = d["names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{where}: 'names' must be a list of strings")
    if d["handedness"] not in ("left", "right"):
        raise ValueError(f"{where}: 'handedness' must be 'left' or 'right', got {d['handedness']!r}")
    try:
        p = np.asarray(d["jointPositions"], dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: 'jointPositions' is not a numeric array") from None
    if p.shape != (25, 3):
        raise ValueError(f"{where}: 'jointPositions' must be 25 x 3 (WebXR joints), got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"{where}: 'jointPositions' has non-finite values")
    return WebXrHandPose(tuple(names), d["handedness"], p * _MM, where,
                         tuple(d.get("headPosition") or ()), tuple(d.get("headRotation") or ()))


def load_webxr_hand_poses(path) -> list:
    """Read a WebXR hand pose JSON-lines file (see module docstring).

    Args:
        path: file path. Blank lines are skipped.
    Returns:
        list of :class:`WebXrHandPose` in file order (positions converted mm -> m).
    Raises:
        ValueError: ``"<file>:<line>: ..."`` for a malformed line, or when the file has no pose.
        OSError: the file cannot be read.
    """
    path = Path(path)
    poses = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if line.strip():
                poses.append(_parse_line(line, f"{path}:{i}"))
    if not poses:
        raise ValueError(f"{path}: no hand poses")
    return poses


def webxr_to_wrist_frame(positions, handedness: str) -> np.ndarray:
    """(25,3) WebXR wrist-joint-space positions (m) -> the same points in our wrist keypoint frame.

    Raises ValueError for a bad shape or handedness.
    """
    p = np.asarray(positions, dtype=float)
    if p.shape != (25, 3):
        raise ValueError(f"expected (25,3) WebXR joint positions, got shape {p.shape}")
    if handedness == "left":
        return p.copy()
    if handedness == "right":
        return p @ _FLIP_RIGHT.T
    raise ValueError(f"handedness must be 'left' or 'right', got {handedness!r}")


def _bone_targets() -> np.ndarray:
    """(26,) per OpenXR joint, the joint at the other end of the bone that orients it (-1: none, the wrist)."""
    nxt = np.full(26, -1)
    nxt[0] = OPENXR_HAND_JOINTS.index("middle_proximal")  # palm: along the middle metacarpal
    for j in range(2, 26):
        name = OPENXR_HAND_JOINTS[j]
        nxt[j] = j + 1 if not name.endswith("_tip") else j - 1
    return nxt


_NEXT = _bone_targets()


def webxr_to_openxr(positions, wrist_pose, handedness: str) -> np.ndarray:
    """WebXR's 25 wrist-relative joints -> 26 OpenXR joint poses in the wrist pose's frame.

    Args:
        positions: (25,3) metres, WebXR order, WebXR wrist joint space (``WebXrHandPose.positions``).
        wrist_pose: (4,4) the wrist keypoint pose (our convention: -z toward the fingers, x to the
            thumb side) in the target frame, e.g. ``vr_world`` (REP-103, z up).
        handedness: ``"left"`` or ``"right"``.
    Returns:
        (26,4,4) float64 joint poses in :data:`.pose.OPENXR_HAND_JOINTS` order, in the frame of
        ``wrist_pose``; ``wrist`` equals ``wrist_pose``; palm and orientations as the module docstring says.
    Raises:
        ValueError: bad shapes, non-finite input, or bad handedness.
    """
    W = np.asarray(wrist_pose, dtype=float)
    if W.shape != (4, 4) or not np.isfinite(W).all():
        raise ValueError(f"wrist_pose must be a finite (4,4) transform, got shape {W.shape}")
    p = webxr_to_wrist_frame(positions, handedness)
    if not np.isfinite(p).all():
        raise ValueError("non-finite WebXR joint positions")
    pts = np.empty((26, 3))
    pts[1:] = p
    mm, mp = OPENXR_HAND_JOINTS.index("middle_metacarpal"), OPENXR_HAND_JOINTS.index("middle_proximal")
    pts[0] = 0.5 * (pts[mm] + pts[mp])
    local = np.broadcast_to(np.eye(4), (26, 4, 4)).copy()
    local[:, :3, 3] = pts
    for j in range(26):
        k = _NEXT[j]
        if k < 0:
            continue  # wrist: the wrist rotation itself
        bone = pts[k] - pts[j] if k > j else pts[j] - pts[k]  # distal direction
        if np.linalg.norm(bone) < 1e-3:
            continue
        z = -bone
        x_hint = np.array([1.0, 0.0, 0.0])
        if abs(z @ x_hint) > 0.99 * np.linalg.norm(z):
            x_hint = np.array([0.0, 1.0, 0.0])
        local[j, :3, :3] = frame_from_axes(z, x_hint)
    return W @ local


def webxr_sample_path(side: str) -> Path:
    """Path of the recorded Quest WebXR hand poses for ``side`` under ``data_dir()/hand_tracking``."""
    from robot_capture.paths import data_dir

    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return data_dir() / "hand_tracking" / f"webxr_quest_hand_poses_{side}.jsonl"


def bone_lengths(positions) -> np.ndarray:
    """(19,) lengths of the finger bones (m): thumb 3, then 4 per finger (metacarpal->proximal ... distal->tip)."""
    p = np.asarray(positions, dtype=float)
    out = []
    start = 1
    for n in (4, 5, 5, 5, 5):
        out += [math.dist(p[a], p[a + 1]) for a in range(start, start + n - 1)]
        start += n
    return np.asarray(out)
