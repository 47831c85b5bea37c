"""Arm exoskeleton source: joint angles <-> :class:`HumanPose` through a human arm model.

The model (chain, axes, signs, default segment lengths) is described in
``config/human/exo_arm.yaml``: per arm 3 DoF at the shoulder, 1 at the elbow, forearm
pronation and 2 at the wrist. ``pose_from_angles`` is forward kinematics; ``angles_from_pose``
is its analytic inverse (the angles an exoskeleton worn by the human of the pose would read),
used by the mocap replay to drive the exo path from BVH clips.

Body frame: the exoskeleton is worn on the torso, so the torso keypoint sits at a fixed
``torso_offset`` above the pelvis with identity rotation; head and shoulders at fixed
offsets from it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from robot_capture.retarget.pose import HumanPose, HumanPoseBatch, invert_transform

SIDES = ("left", "right")


def _load_yaml(path: str) -> dict:
    """YAML file contents, cached on (path, mtime); returns a deep copy.

    Raises:
        FileNotFoundError: no such file. ValueError: not valid YAML or not UTF-8 text
            (the message names the file and, for YAML, the line).
    """
    import copy

    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime_ns)
    if key not in _YAML_CACHE:
        try:
            from robot_capture.config_schema import check_finite

            _YAML_CACHE[key] = check_finite(yaml.safe_load(p.read_text()), str(p))  # ConfigError: a ValueError
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
            raise ValueError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return copy.deepcopy(_YAML_CACHE[key])


_YAML_CACHE: dict = {}
_LENGTH_KEYS = ("upper_arm", "forearm", "torso_offset", "shoulder_offset", "head_offset")


def _axis_rot(axis_idx: int, sign: float, angle: np.ndarray) -> np.ndarray:
    """(N,3,3) rotation by ``sign*angle`` about coordinate axis ``axis_idx``."""
    a = sign * np.asarray(angle, dtype=float)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    i, j, k = axis_idx, (axis_idx + 1) % 3, (axis_idx + 2) % 3
    R[..., i, i] = 1.0
    R[..., j, j] = c
    R[..., k, k] = c
    R[..., j, k] = -s
    R[..., k, j] = s
    return R


def _signed_axis(v) -> tuple[int, float]:
    a = _numbers(v, 3, "axis")
    idx = int(np.argmax(np.abs(a)))
    if np.count_nonzero(a) != 1 or abs(abs(a[idx]) - 1.0) > 1e-9:
        raise ValueError(f"exo axis {list(a)} must be a signed unit coordinate axis")
    return idx, float(np.sign(a[idx]))


def _numbers(v, n: int | None, what: str) -> np.ndarray:
    """``v`` as a finite float array of ``n`` numbers (None: a single number -> shape ()).

    Raises:
        ValueError: not numbers, wrong count, or non-finite.
    """
    shape = () if n is None else (n,)
    try:
        a = None if isinstance(v, (bool, str, bytes, dict)) else np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        a = None
    if a is None or a.shape != shape:
        kind = "a number" if n is None else f"a list of {n} numbers"
        raise ValueError(f"exo config: {what} must be {kind}, got {v!r}"[:200])
    if not np.isfinite(a).all():
        raise ValueError(f"exo config: {what} must be finite, got {v!r}")
    return a


class ExoArmModel:
    """Human arm model for exoskeleton joint angles.

    Attributes:
        joint_names: 14 names (7 per arm, left first) from the config.
        lengths: segment lengths (m): ``upper_arm``, ``forearm`` (floats) and
            ``torso_offset``, ``shoulder_offset``, ``head_offset`` ((3,) vectors).
    """

    def __init__(self, config: dict, segment_lengths: dict | None = None):
        if not isinstance(config, dict) or not isinstance(config.get("arms"), dict):
            raise ValueError("exo config: needs a mapping with an 'arms' mapping (left, right)")
        self.config = config
        self.joints = {}
        self.joint_names = []
        for side in SIDES:
            js = config["arms"].get(side)
            if not isinstance(js, list) or len(js) != 7:
                n = len(js) if isinstance(js, list) else type(js).__name__
                raise ValueError(f"exo config: {side} arm needs a list of 7 joints, has {n}")
            row = []
            for k, j in enumerate(js):
                if not isinstance(j, dict) or not isinstance(j.get("name"), str) or not j["name"]:
                    raise ValueError(f"exo config: {side} arm joint {k} needs a 'name' string")
                what = f"{side} joint {j['name']!r}"
                row.append((j["name"], *_signed_axis(j.get("axis")),
                            float(_numbers(j.get("sign", 1.0), None, f"{what} sign")),
                            float(_numbers(j.get("offset", 0.0), None, f"{what} offset"))))
            self.joints[side] = row
            self.joint_names += [r[0] for r in row]
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"exo config: duplicate joint names in {self.joint_names}")
        self._index = {n: k for k, n in enumerate(self.joint_names)}
        base = config.get("segment_lengths", {})
        if not isinstance(base, dict) or not isinstance(segment_lengths or {}, dict):
            raise ValueError("exo config: segment_lengths must be a mapping")
        self.lengths = self._merge_lengths(base, segment_lengths or {})
        self._warned: set = set()

    @staticmethod
    def _merge_lengths(base: dict, override: dict) -> dict:
        out = {}
        for k in _LENGTH_KEYS:
            v = override.get(k, base.get(k))
            if v is None:
                raise ValueError(f"exo segment length {k!r} missing")
            if k.endswith("offset"):
                out[k] = _numbers(v, 3, f"segment length {k}")
            else:
                out[k] = float(_numbers(v, None, f"segment length {k}"))
                if not out[k] > 0:
                    raise ValueError(f"exo config: segment length {k} must be > 0 m, got {v!r}")
        for k in override:
            if k not in _LENGTH_KEYS:
                raise KeyError(f"unknown segment length {k!r}; expected {list(_LENGTH_KEYS)}")
        return out

    @classmethod
    def load(cls, path=None, segment_lengths: dict | None = None) -> "ExoArmModel":
        """Load ``config/human/exo_arm.yaml`` (or ``path``), optionally overriding segment lengths."""
        if not path:
            from robot_capture.paths import config_dir

            path = config_dir() / "human" / "exo_arm.yaml"
        return cls(_load_yaml(str(path)), segment_lengths)

    # ----------------------------------------------------------------- names
    def unknown_warning(self, names) -> str | None:
        """Message for joint names the model does not know, once per new name set; else None."""
        unknown = sorted(set(names) - set(self._index))
        if not unknown or frozenset(unknown) <= self._warned:
            return None
        self._warned |= set(unknown)
        return (f"exoskeleton joint names {unknown} are not in the arm model; "
                f"expected: {self.joint_names}")

    def _angles_array(self, names, positions):
        """(..., 14) anatomical angles from readings; returns (angles, flags, valid)."""
        positions = np.asarray(positions, dtype=float)
        flags = set()
        out = np.full(positions.shape[:-1] + (len(self.joint_names),), np.nan)
        seen = np.zeros(len(self.joint_names), bool)
        for c, n in enumerate(names):
            k = self._index.get(n)
            if k is None:
                flags.add("unknown_joints")
                continue
            out[..., k] = positions[..., c]
            seen[k] = True
        valid = bool(seen.all())
        if not valid:
            flags.add("missing_joints")
        k = 0
        for side in SIDES:
            for (_n, _ax, _s, sign, offset) in self.joints[side]:
                out[..., k] = sign * (out[..., k] - offset)
                k += 1
        return out, flags, valid

    # --------------------------------------------------------------------- FK
    def fk_batch(self, angles: np.ndarray) -> dict:
        """Keypoints from anatomical angles.

        Args:
            angles: (N, 14) anatomical angles (rad), ``joint_names`` order.
        Returns:
            name -> (N,4,4) keypoints in the body frame.
        """
        angles = np.atleast_2d(angles)
        n = angles.shape[0]
        L = self.lengths
        kp = {}
        T_torso = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
        T_torso[:, :3, 3] = L["torso_offset"]
        kp["pelvis"] = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
        kp["torso"] = T_torso
        head = T_torso.copy()
        head[:, :3, 3] += L["head_offset"]
        kp["head"] = head
        for s_i, side in enumerate(SIDES):
            js = self.joints[side]
            q = angles[:, 7 * s_i:7 * s_i + 7]
            R = [_axis_rot(ax, sg, q[:, k]) for k, (_n, ax, sg, _s, _o) in enumerate(js)]
            off = L["shoulder_offset"] * (1.0 if side == "left" else np.array([1.0, -1.0, 1.0]))
            p_sh = T_torso[:, :3, 3] + off
            R_up = R[0] @ R[1] @ R[2]
            p_el = p_sh - R_up[:, :, 2] * L["upper_arm"]
            R_el = R_up @ R[3]
            p_wr = p_el - R_el[:, :, 2] * L["forearm"]
            R_fa = R_el @ R[4]
            R_wr = R_fa @ R[5] @ R[6]
            for name, Rk, pk in (("shoulder", np.broadcast_to(np.eye(3), (n, 3, 3)), p_sh),
                                 ("elbow", R_fa, p_el), ("wrist", R_wr, p_wr)):
                T = np.zeros((n, 4, 4))
                T[:, :3, :3] = Rk
                T[:, :3, 3] = pk
                T[:, 3, 3] = 1.0
                kp[f"{side}_{name}"] = T
        return kp

    def pose_from_angles(self, names, positions, stamp: float = 0.0) -> HumanPose:
        """Forward kinematics of one exoskeleton reading.

        Args:
            names: joint names (any order; e.g. ``JointState.name``).
            positions: readings (rad), same length.
            stamp: input time (s).
        Returns:
            HumanPose in the body frame. Unknown names are ignored and flagged
            ``'unknown_joints'``; missing model joints flag ``'missing_joints'`` and make the
            pose invalid (the retargeter then holds).
        """
        try:
            if len(names) != len(positions):
                raise ValueError("length mismatch")
            ang, flags, valid = self._angles_array(list(names), positions)
        except (ValueError, TypeError):
            return HumanPose({}, stamp, valid=False, flags=frozenset({"malformed"}))
        if not valid:
            return HumanPose({}, stamp, valid=False, flags=frozenset(flags))
        return HumanPose(self._fk_single(ang), stamp, flags=frozenset(flags))

    def _fk_single(self, angles: np.ndarray) -> dict:
        """:meth:`fk_batch` for one (14,) sample with 3x3 products (the live per-message path)."""
        L = self.lengths
        eye = np.eye(4)
        torso = eye.copy()
        torso[:3, 3] = L["torso_offset"]
        head = torso.copy()
        head[:3, 3] += L["head_offset"]
        kp = {"pelvis": eye, "torso": torso, "head": head}
        cs = np.cos(angles)
        sn = np.sin(angles)
        for s_i, side in enumerate(SIDES):
            R = []
            for k, (_n, ax, sg, _s, _o) in enumerate(self.joints[side]):
                c, s = cs[7 * s_i + k], sg * sn[7 * s_i + k]
                M = np.eye(3)
                j, l = (ax + 1) % 3, (ax + 2) % 3
                M[j, j] = M[l, l] = c
                M[j, l] = -s
                M[l, j] = s
                R.append(M)
            off = L["shoulder_offset"] * (1.0 if side == "left" else np.array([1.0, -1.0, 1.0]))
            p_sh = torso[:3, 3] + off
            R_up = R[0] @ R[1] @ R[2]
            p_el = p_sh - R_up[:, 2] * L["upper_arm"]
            R_el = R_up @ R[3]
            p_wr = p_el - R_el[:, 2] * L["forearm"]
            R_fa = R_el @ R[4]
            R_wr = R_fa @ R[5] @ R[6]
            for name, Rk, pk in (("shoulder", None, p_sh), ("elbow", R_fa, p_el), ("wrist", R_wr, p_wr)):
                T = np.eye(4)
                if Rk is not None:
                    T[:3, :3] = Rk
                T[:3, 3] = pk
                kp[f"{side}_{name}"] = T
        return kp

    def poses_from_angles(self, names, positions, stamps) -> HumanPoseBatch:
        """Vectorized :meth:`pose_from_angles` for (N, len(names)) readings."""
        ang, _flags, valid = self._angles_array(list(names), positions)
        if not valid:
            raise ValueError(f"missing exoskeleton joints; expected {self.joint_names}")
        return HumanPoseBatch(self.fk_batch(ang), np.asarray(stamps, dtype=float))

    # ---------------------------------------------------------------- inverse
    def angles_batch(self, keypoints: dict) -> np.ndarray:
        """Analytic inverse of :meth:`fk_batch`.

        Args:
            keypoints: name -> (N,4,4) body-frame keypoints with torso, shoulders, elbows, wrists.
        Returns:
            (N, 14) anatomical angles. Exact (FK reproduces the shoulder->elbow->wrist directions and
            the wrist rotation) whenever the elbow is not fully straight; for a straight elbow the
            split between shoulder rotation and pronation follows the wrist's x axis. The shoulder
            Euler decomposition keeps the middle (abduction) angle in [-90, 90] deg.
        """
        T_torso = keypoints["torso"]
        inv_t = invert_transform(T_torso)
        n = T_torso.shape[0]
        out = np.zeros((n, 14))
        for s_i, side in enumerate(SIDES):
            js = self.joints[side]
            loc = {k: inv_t @ keypoints[f"{side}_{k}"] for k in ("shoulder", "elbow", "wrist")}
            u = loc["elbow"][:, :3, 3] - loc["shoulder"][:, :3, 3]
            f = loc["wrist"][:, :3, 3] - loc["elbow"][:, :3, 3]
            u /= np.linalg.norm(u, axis=1, keepdims=True)
            f /= np.linalg.norm(f, axis=1, keepdims=True)
            R_w = loc["wrist"][:, :3, :3]
            # elbow: bend direction b = a4 x (0,0,-1) in the upper-arm frame (unit, since a4 is x or y)
            ax4, sg4 = js[3][1], js[3][2]
            a4 = np.zeros(3)
            a4[ax4] = sg4
            b = np.cross(a4, [0.0, 0.0, -1.0])
            cos_e = np.clip(np.sum(u * f, axis=1), -1.0, 1.0)
            f_perp = f - cos_e[:, None] * u
            sin_e = np.linalg.norm(f_perp, axis=1)
            theta4 = np.arctan2(sin_e, cos_e)
            # fallback for a straight elbow: the wrist's image of b, made perpendicular to u
            fb = R_w @ b
            fb = fb - np.sum(fb * u, axis=1, keepdims=True) * u
            straight = sin_e < 1e-9
            d = np.where(straight[:, None], fb, f_perp)
            d /= np.linalg.norm(d, axis=1, keepdims=True)
            # R_up maps e_z -> -u and b -> d
            ez = np.array([0.0, 0.0, 1.0])
            M_ref = np.stack([b, ez, np.cross(b, ez)], axis=1)
            M_tgt = np.stack([d, -u, np.cross(d, -u)], axis=2)
            R_up = M_tgt @ M_ref.T
            letters = "XYZ"
            seq = "".join(letters[j[1]] for j in js[:3])
            e = Rotation.from_matrix(R_up).as_euler(seq)
            q = np.zeros((n, 7))
            q[:, :3] = e * np.array([j[2] for j in js[:3]])
            q[:, 3] = theta4  # rotation about a4 by theta4 bends (0,0,-1) toward b
            R_el = R_up @ _axis_rot(ax4, sg4, theta4)
            M = np.swapaxes(R_el, 1, 2) @ R_w
            seq2 = "".join(letters[j[1]] for j in js[4:7])
            e2 = Rotation.from_matrix(M).as_euler(seq2)
            q[:, 4:7] = e2 * np.array([j[2] for j in js[4:7]])
            out[:, 7 * s_i:7 * s_i + 7] = q
        return out

    def readings_from_angles(self, angles: np.ndarray) -> np.ndarray:
        """Anatomical angles -> raw readings (inverse of sign/offset): reading = q / sign + offset."""
        sg = np.array([j[3] for s in SIDES for j in self.joints[s]])
        off = np.array([j[4] for s in SIDES for j in self.joints[s]])
        return angles / sg + off

    def angles_from_pose(self, pose: HumanPose):
        """The readings an exoskeleton worn by this human would give.

        Returns:
            (names: list[str] (14), positions: (14,) float64 readings in ``joint_names`` order).
        Raises:
            KeyError: if the pose lacks torso, shoulders, elbows or wrists.
        """
        kp = {k: v[None] for k, v in pose.keypoints.items()}
        return list(self.joint_names), self.readings_from_angles(self.angles_batch(kp)[0])

    def angles_from_poses(self, batch: HumanPoseBatch) -> np.ndarray:
        """Vectorized :meth:`angles_from_pose`: (N, 14) readings."""
        return self.readings_from_angles(self.angles_batch(batch.keypoints))

    # ------------------------------------------------------------ calibration
    @staticmethod
    def segment_lengths_from_pose(pose) -> dict:
        """Per-operator segment lengths measured from a pose or a pose batch (median over frames).

        Upper arm and forearm are the left/right mean; offsets are measured in the torso frame
        (shoulder offset: the left shoulder, y mirrored from the right one and averaged).
        """
        kp = pose.keypoints
        kp = {k: (v if v.ndim == 3 else v[None]) for k, v in kp.items()}
        inv_t = invert_transform(kp["torso"])

        def p(name, rel_torso=True):
            T = inv_t @ kp[name] if rel_torso else kp[name]
            return T[:, :3, 3]

        def dist(a, b):
            return np.linalg.norm(kp[a][:, :3, 3] - kp[b][:, :3, 3], axis=1)

        upper = np.median(np.r_[dist("left_shoulder", "left_elbow"), dist("right_shoulder", "right_elbow")])
        fore = np.median(np.r_[dist("left_elbow", "left_wrist"), dist("right_elbow", "right_wrist")])
        sl, sr = p("left_shoulder"), p("right_shoulder")
        sh = np.median((sl + sr * np.array([1.0, -1.0, 1.0])) / 2.0, axis=0)
        return {
            "upper_arm": float(upper),
            "forearm": float(fore),
            "torso_offset": np.median(kp["torso"][:, :3, 3], axis=0).tolist(),
            "shoulder_offset": sh.tolist(),
            "head_offset": np.median(p("head"), axis=0).tolist(),
        }
