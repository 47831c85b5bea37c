"""BVH motion capture clips -> :class:`HumanPose` keypoints.

BVH (Biovision Hierarchy) layout: a ``HIERARCHY`` section of nested
``ROOT``/``JOINT``/``End Site`` blocks with ``OFFSET x y z`` (parent frame, file
units) and ``CHANNELS n <names>``, then ``MOTION`` with ``Frames:``, ``Frame Time:``
and one row of channel values per frame. Rotation channels are degrees and are
composed in the listed order as intrinsic rotations (``Zrotation Yrotation
Xrotation`` -> ``R = Rz @ Ry @ Rx``), via :func:`scipy.spatial.transform.Rotation.from_euler`
with an upper-case (intrinsic) sequence. Position channels add to the OFFSET.
Angles past +-360 deg need no unwrapping: rotation matrices are periodic.

The skeleton-to-keypoint mapping (which joint is the wrist, how keypoint axes are
built, units) is read from ``config/human/bvh_<convention>.yaml``; the convention is
detected from the joint names. Forward kinematics is vectorized over frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from robot_capture.retarget.exo import _load_yaml
from robot_capture.retarget.pose import HumanPose, HumanPoseBatch, frame_from_axes, invert_transform

_AXIS = {"x": 0, "y": 1, "z": 2}


@dataclass
class BvhJoint:
    name: str
    parent: int  # -1 for the root
    offset: np.ndarray  # (3,) file units, parent frame
    channels: list = field(default_factory=list)  # channel names
    channel_start: int = 0
    is_end: bool = False


def _err(path, lineno, msg):
    return ValueError(f"{path}:{lineno}: {msg}")


def parse_bvh(text: str, path="<bvh>"):
    """Parse BVH text.

    Returns:
        (joints: list[BvhJoint], frame_time: float, motion: (N, C) float64 array).
    Raises:
        ValueError: naming ``path:line`` for any malformed element (unknown keyword,
            bad OFFSET/CHANNELS, unbalanced braces, wrong row width, non-numeric or
            non-finite value, fewer/more rows than ``Frames:``).
    """
    lines = text.splitlines()
    joints: list[BvhJoint] = []
    stack: list[int] = []
    pending = None  # joint index awaiting '{'
    n_ch = 0
    i = 0
    seen_hierarchy = False
    while i < len(lines):
        ln = i + 1
        tok = lines[i].split()
        i += 1
        if not tok:
            continue
        kw = tok[0]
        if kw == "HIERARCHY":
            seen_hierarchy = True
            continue
        if not seen_hierarchy:
            raise _err(path, ln, f"expected HIERARCHY, got {lines[i - 1].strip()[:40]!r}")
        if kw in ("ROOT", "JOINT"):
            if len(tok) < 2:
                raise _err(path, ln, f"{kw} without a name")
            if kw == "ROOT" and stack:
                raise _err(path, ln, "ROOT inside another joint")
            if kw == "JOINT" and not stack:
                raise _err(path, ln, "JOINT outside a ROOT block")
            if kw == "ROOT" and joints:
                raise _err(path, ln, "more than one ROOT is not supported")
            joints.append(BvhJoint(" ".join(tok[1:]), stack[-1] if stack else -1, np.zeros(3)))
            pending = len(joints) - 1
        elif kw == "End":
            if not stack:
                raise _err(path, ln, "End Site outside a joint")
            parent = stack[-1]
            joints.append(BvhJoint(joints[parent].name + "_End", parent, np.zeros(3), is_end=True))
            pending = len(joints) - 1
        elif kw == "{":
            if pending is None:
                raise _err(path, ln, "'{' without a ROOT/JOINT/End Site")
            stack.append(pending)
            pending = None
        elif kw == "}":
            if not stack:
                raise _err(path, ln, "unbalanced '}'")
            stack.pop()
        elif kw == "OFFSET":
            if not stack:
                raise _err(path, ln, "OFFSET outside a joint")
            try:
                off = np.array([float(v) for v in tok[1:]])
            except ValueError:
                raise _err(path, ln, f"OFFSET values are not numbers: {' '.join(tok[1:])!r}") from None
            if off.shape != (3,) or not np.isfinite(off).all():
                raise _err(path, ln, f"OFFSET needs 3 finite numbers, got {len(tok) - 1}")
            joints[stack[-1]].offset = off
        elif kw == "CHANNELS":
            if not stack or joints[stack[-1]].is_end:
                raise _err(path, ln, "CHANNELS outside a joint")
            try:
                n = int(tok[1])
            except (IndexError, ValueError):
                raise _err(path, ln, "CHANNELS needs a count") from None
            names = tok[2:]
            if len(names) != n:
                raise _err(path, ln, f"CHANNELS declares {n} channels but names {len(names)}")
            for c in names:
                if c[1:] not in ("position", "rotation") or c[0] not in "XYZ":
                    raise _err(path, ln, f"unknown channel {c!r}")
            j = joints[stack[-1]]
            j.channels, j.channel_start = names, n_ch
            n_ch += n
        elif kw == "MOTION":
            if stack:
                raise _err(path, ln, f"MOTION before {len(stack)} joint block(s) were closed")
            break
        else:
            raise _err(path, ln, f"unexpected {kw!r} in HIERARCHY")
    else:
        raise _err(path, len(lines), "no MOTION section")
    if not joints:
        raise _err(path, i, "no ROOT joint")
    # MOTION header
    def header(prefix):
        nonlocal i
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i >= len(lines):
            raise _err(path, i, f"missing {prefix!r}")
        s = lines[i].strip()
        if not s.startswith(prefix):
            raise _err(path, i + 1, f"expected {prefix!r}, got {s[:40]!r}")
        i += 1
        return i, s[len(prefix):].strip()

    ln, v = header("Frames:")
    try:
        n_frames = int(v)
    except ValueError:
        raise _err(path, ln, f"Frames: {v!r} is not an integer") from None
    if n_frames < 1:
        raise _err(path, ln, f"Frames: {n_frames}: a clip needs at least one motion frame")
    ln, v = header("Frame Time:")
    try:
        frame_time = float(v)
    except ValueError:
        raise _err(path, ln, f"Frame Time: {v!r} is not a number") from None
    if not (frame_time > 0 and np.isfinite(frame_time)):
        raise _err(path, ln, f"Frame Time must be > 0, got {frame_time}")
    first = i
    rows = [s for s in lines[first:first + n_frames + 1]]
    while rows and not rows[-1].strip():
        rows.pop()
    extra = [k for k, s in enumerate(lines[first + n_frames:], first + n_frames + 1) if s.strip()]
    if extra:
        raise _err(path, extra[0], f"more motion rows than Frames: {n_frames}")
    try:  # fast path: numpy's C text parser; any problem -> the line scan below names the line
        flat = np.loadtxt(rows[:n_frames], dtype=float, ndmin=2, comments=None) if n_frames else np.zeros((0, n_ch))
        ok = flat.shape == (n_frames, n_ch) and np.isfinite(flat).all()
    except ValueError:
        ok = False
    if not ok:  # find the offending line for the message
        for k, s in enumerate(rows[:n_frames]):
            parts = s.split()
            if len(parts) != n_ch:
                raise _err(path, first + k + 1, f"expected {n_ch} values, got {len(parts)}")
            try:
                vals = [float(p) for p in parts]
            except ValueError as exc:
                raise _err(path, first + k + 1, f"not a number ({exc})") from None
            if not np.isfinite(vals).all():
                raise _err(path, first + k + 1, "non-finite value")
        raise _err(path, first + len(rows) + 1, f"Frames: {n_frames} declared but {len(rows)} rows found")
    return joints, frame_time, flat.reshape(n_frames, n_ch)


def _convention_files(config_dir=None):
    from robot_capture.paths import config_dir as _cfg

    d = Path(config_dir) if config_dir else _cfg() / "human"
    return sorted(d.glob("bvh_*.yaml"))


def detect_mapping(joint_names, config_dir=None) -> dict:
    """Return the bvh_*.yaml mapping whose ``detect`` joints all exist.

    Raises:
        ValueError: if none matches (message lists the conventions tried).
    """
    names = set(joint_names)
    tried = []
    for f in _convention_files(config_dir):
        m = _load_yaml(str(f))
        tried.append(f"{m.get('convention', f.stem)} (needs {', '.join(m['detect'])})")
        if all(n in names for n in m["detect"]):
            return m
    raise ValueError("BVH skeleton matches no known naming convention; tried: " + "; ".join(tried))


def _axes_matrix(bvh_axes: dict) -> np.ndarray:
    """(3,3) P with p_rep = P @ p_bvh, from {'forward': '+z', 'left': '+x', 'up': '+y'}."""
    P = np.zeros((3, 3))
    for row, key in enumerate(("forward", "left", "up")):
        s = bvh_axes[key]
        P[row, _AXIS[s[1]]] = -1.0 if s[0] == "-" else 1.0
    if abs(np.linalg.det(P) - 1.0) > 1e-9:
        raise ValueError(f"bvh_axes {bvh_axes} is not a right-handed axis permutation")
    return P


class BvhClip:
    """A parsed BVH clip plus the keypoint mapping for its skeleton.

    Attributes:
        path, joints (list[BvhJoint], End Sites included as ``<joint>_End``),
        joint_names (real joints, file order), channels ((N, C) raw values),
        frame_time (s), n_frames, fps, convention, length_scale (metres per file unit),
        mapping (the config dict).
    """

    def __init__(self, joints, frame_time, motion, mapping, path="<bvh>"):
        self.path = str(path)
        self.joints = joints
        self.frame_time = float(frame_time)
        self.channels = motion
        self.n_frames = motion.shape[0]
        self.mapping = mapping
        self.convention = mapping.get("convention", "?")
        self._index = {j.name: k for k, j in enumerate(joints)}
        self.joint_names = [j.name for j in joints if not j.is_end]
        self._P = _axes_matrix(mapping.get("bvh_axes", {"forward": "+z", "left": "+x", "up": "+y"}))
        checks = [(kp, self._refs(spec)) for kp, spec in mapping["keypoints"].items()]
        checks += [(f"hands.{side}", [h["wrist"], *h["thumb_side"], *h["joints"].values()])
                   for side, h in (mapping.get("hands") or {}).items()]
        for kp, refs in checks:
            for ref in refs:
                if ref not in self._index:
                    raise ValueError(f"{path}: mapping {self.convention!r} keypoint {kp!r} names "
                                     f"unknown BVH joint {ref!r}")
        self.length_scale = self._length_scale()
        self._batch = None
        self._world_pelvis = None

    @property
    def frames(self) -> np.ndarray:
        """(N, C) raw channel values per frame (file units, degrees), file channel order."""
        return self.channels

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @staticmethod
    def _refs(spec):
        out = [spec["position"]]
        for pair in (spec.get("axes") or {}).values():
            out += list(pair)
        if "rotation_from" in spec:
            out.append(spec["rotation_from"])
        return out

    def _length_scale(self) -> float:
        unit = self.mapping.get("length_unit", "auto")
        if unit != "auto":
            return float(unit)
        a, b = self.mapping["height_points"]
        pos, _ = self._fk([a, b], frames=np.arange(min(self.n_frames, 1)), scale=1.0)
        height = abs(float((pos[a][0] - pos[b][0])[2]))
        if not height > 0:
            raise ValueError(f"{self.path}: cannot infer units, zero skeleton height")
        target = float(self.mapping.get("nominal_height_m", 1.7))
        units = self.mapping["auto_units"]
        return float(min(units.values(), key=lambda s: abs(np.log(height * s / target))))

    def _fk(self, names, frames=None, scale=None, rot_names=None):
        """World (REP-103 axes, metres) positions and rotations of the named joints.

        Returns: (pos: name -> (n,3), rot: name -> (n,3,3)) for the chains needed.
        """
        scale = self.length_scale if scale is None else scale
        motion = self.channels if frames is None else self.channels[frames]
        n = motion.shape[0]
        need = set()  # joints whose position is needed
        need_rot = set(self._index[nm] for nm in (rot_names or ()))  # joints whose rotation is needed
        for nm in names:
            k = self._index[nm]
            while k >= 0 and k not in need:
                need.add(k)
                k = self.joints[k].parent
        for k in list(need):
            if self.joints[k].parent >= 0:
                need_rot.add(self.joints[k].parent)
        # local rotations of all needed joints, one scipy call per Euler sequence
        groups: dict = {}
        for k in sorted(need_rot):
            j = self.joints[k]
            rc = [(c[0], j.channel_start + m) for m, c in enumerate(j.channels) if c.endswith("rotation")]
            if rc:
                groups.setdefault("".join(c for c, _ in rc), []).append((k, [col for _, col in rc]))
        R_local = {}
        for seq, items in groups.items():
            cols = np.array([c for _, c in items])  # (J, 3)
            ang = motion[:, cols].transpose(1, 0, 2).reshape(-1, len(seq))  # (J*n, 3)
            mats = Rotation.from_euler(seq, ang, degrees=True).as_matrix().reshape(len(items), n, 3, 3)
            for (k, _), M in zip(items, mats):
                R_local[k] = M
        P = self._P
        R = {}
        p = {}
        eye = np.broadcast_to(np.eye(3), (n, 3, 3))
        for k in sorted(need | need_rot):  # parents precede children in file order
            j = self.joints[k]
            pos_ch = [(c, j.channel_start + m) for m, c in enumerate(j.channels) if c.endswith("position")]
            if pos_ch:
                off = np.broadcast_to(j.offset, (n, 3)).copy()
                for c, col in pos_ch:
                    off[:, _AXIS[c[0].lower()]] += motion[:, col]
                off *= scale
            else:
                off = j.offset * scale
            Rl = R_local.get(k)
            if j.parent < 0:
                p[k] = np.broadcast_to(off, (n, 3))
                R[k] = Rl if Rl is not None else eye
            else:
                Rp = R[j.parent]
                p[k] = p[j.parent] + (Rp @ off[..., None])[..., 0] if off.ndim == 2 else p[j.parent] + Rp @ off
                if k in need_rot:
                    R[k] = Rp @ Rl if Rl is not None else Rp
        pos = {nm: p[self._index[nm]] @ P.T for nm in names}
        rot = {nm: P @ R[self._index[nm]] @ P.T for nm in (rot_names or ())}
        return pos, rot

    def _compute(self):
        km = self.mapping["keypoints"]
        hands = self.mapping.get("hands") or {}
        refs = {r for spec in km.values() for r in self._refs(spec)}
        for h in hands.values():
            refs |= {h["wrist"], *h["thumb_side"], *h["joints"].values()}
        refs = sorted(refs)
        rot_refs = sorted({spec["rotation_from"] for spec in km.values() if "rotation_from" in spec})
        pos, rot = self._fk(refs, rot_names=rot_refs)
        n = self.n_frames
        world = {}
        pending = []
        for kp, spec in km.items():
            T = np.zeros((n, 4, 4))
            T[:, 3, 3] = 1.0
            T[:, :3, 3] = pos[spec["position"]]
            if "axes" in spec:
                (a1, (f1, t1)), (a2, (f2, t2)) = list(spec["axes"].items())[:2]
                d1 = pos[t1] - pos[f1]
                d2 = pos[t2] - pos[f2]
                Rk = frame_from_axes(d1, d2)  # columns: x=d2-ish, y, z=d1
                Rk = _permute_axes(Rk, a1, a2)
                if spec.get("heading_only"):
                    Rk = _heading_only(Rk)
                T[:, :3, :3] = Rk
            elif "rotation_from" in spec:
                T[:, :3, :3] = rot[spec["rotation_from"]]
            elif "rotation_of" in spec:
                pending.append((kp, spec["rotation_of"]))
            else:
                T[:, :3, :3] = np.eye(3)
            world[kp] = T
        for kp, src in pending:
            world[kp][:, :3, :3] = world[src][:, :3, :3]
        for side, h in hands.items():
            world.update(self._hand_keypoints(side, h, pos, world[f"{side}_wrist"] if f"{side}_wrist" in world else None))
        self._world_pelvis = world["pelvis"].copy()
        inv = invert_transform(self._world_pelvis)
        body = {kp: inv @ T for kp, T in world.items()}
        for kp, T in body.items():  # zero-length bones or coincident axis joints: no frame is defined
            bad = ~np.isfinite(T).all(axis=(1, 2))
            if bad.any():
                raise ValueError(f"{self.path}: degenerate skeleton: keypoint {kp!r} is undefined in "
                                 f"{int(bad.sum())} of {n} frames (first: {int(np.argmax(bad))}); "
                                 "its bones have zero length or its axis joints coincide")
        stamps = np.arange(n) * self.frame_time
        self._batch = HumanPoseBatch(body, stamps)

    @staticmethod
    def _hand_keypoints(side, h, pos, wrist_T) -> dict:
        """OpenXR hand keypoints present in the rig (see config ``hands``): world (N,4,4)."""
        from robot_capture.retarget.pose import OPENXR_HAND_JOINTS

        joints = h["joints"]
        n = pos[h["wrist"]].shape[0]
        thumb_side = pos[h["thumb_side"][1]] - pos[h["thumb_side"][0]]
        out = {}
        if wrist_T is not None:
            out[f"{side}_hand_wrist"] = wrist_T.copy()
            finger_dir = -wrist_T[:, :3, 2]
        else:
            finger_dir = None
        for finger in ("thumb", "index", "middle", "ring", "little"):
            chain = [(j, joints[j]) for j in OPENXR_HAND_JOINTS if j.startswith(finger + "_") and j in joints]
            for k, (name, bone) in enumerate(chain):
                if k + 1 < len(chain):
                    z = pos[bone] - pos[chain[k + 1][1]]  # -z toward the next joint (the tip)
                else:
                    z = pos[chain[k - 1][1]] - pos[bone] if k > 0 else pos[h["wrist"]] - pos[bone]
                hint = finger_dir if (finger == "thumb" and finger_dir is not None) else thumb_side
                T = np.zeros((n, 4, 4))
                T[:, :3, :3] = frame_from_axes(z, hint)
                T[:, :3, 3] = pos[bone]
                T[:, 3, 3] = 1.0
                out[f"{side}_hand_{name}"] = T
        return out

    def human_poses(self) -> HumanPoseBatch:
        """All frames as a :class:`HumanPoseBatch` in the pelvis body frame (cached).

        Raises:
            ValueError: a keypoint frame is undefined (degenerate skeleton: zero-length bones).
        """
        if self._batch is None:
            self._compute()
        return self._batch

    def human_pose(self, i: int) -> HumanPose:
        """Frame ``i`` as a :class:`HumanPose` (stamp ``i * frame_time``)."""
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range 0..{self.n_frames - 1}")
        return self.human_poses().pose(i)

    def world_from_body(self, i: int | None = None) -> np.ndarray:
        """Pelvis (body frame) pose in the clip's world, REP-103 axes, metres: (4,4) or (N,4,4)."""
        self.human_poses()
        return self._world_pelvis if i is None else self._world_pelvis[i].copy()


def _heading_only(R: np.ndarray) -> np.ndarray:
    """Keep only the yaw of (...,3,3) rotations: x = horizontal part of the x (or -y x z) axis, z up."""
    fwd = np.cross(R[..., 1], np.array([0.0, 0.0, 1.0]))  # left x up = forward, robust to pitch
    fwd[..., 2] = 0.0
    return frame_from_axes(np.broadcast_to([0.0, 0.0, 1.0], fwd.shape), fwd)


def _permute_axes(R: np.ndarray, primary: str, secondary: str) -> np.ndarray:
    """Reorder a frame built with z=primary, x=secondary into the named axes (right-handed)."""
    if (primary, secondary) == ("z", "x"):
        return R
    d1, d2 = R[..., 2], R[..., 0]
    out = np.empty_like(R)
    out[..., _AXIS[primary]] = d1
    out[..., _AXIS[secondary]] = d2
    third = ({"x", "y", "z"} - {primary, secondary}).pop()
    # right-handed: e_third = e_a x e_b for cyclic (a, b, third)
    order = "xyz"
    a, b = order[(_AXIS[third] + 1) % 3], order[(_AXIS[third] + 2) % 3]
    out[..., _AXIS[third]] = np.cross(out[..., _AXIS[a]], out[..., _AXIS[b]])
    return out


def load_bvh(path, mapping: dict | str | None = None) -> BvhClip:
    """Read a BVH file and attach its keypoint mapping.

    Args:
        path: the .bvh file.
        mapping: a mapping dict, a path to a bvh_*.yaml, or None to detect from joint names.
    Raises:
        ValueError: malformed file (message ``path:line: ...``) or unknown skeleton.
        FileNotFoundError: missing file.
    """
    path = Path(path)
    text = path.read_text(errors="replace")
    joints, frame_time, motion = parse_bvh(text, path)
    if mapping is None:
        mapping = detect_mapping([j.name for j in joints])
    elif not isinstance(mapping, dict):
        mapping = yaml.safe_load(Path(mapping).read_text())
    return BvhClip(joints, frame_time, motion, mapping, path)
