"""Offline retargeting of a BVH clip, through the same sources the live node uses.

Sources (``source=``):

* ``bvh``: the clip's keypoints directly; the operator calibration (segment lengths) is
  measured from the clip itself.
* ``exo``: the clip -> exoskeleton readings (:func:`exo_replay_messages`, what
  ``mocap_replay`` publishes on ``/exo/joint_states``) -> ``ExoArmModel`` FK (what
  ``retarget_node`` does) -> Retargeter with the node's default calibration.
* ``vr``: the clip -> VR tracker poses (:func:`vr_replay_messages`) -> ``VrSource``.

So a live recording of a clip and its offline retarget agree within filter tolerance
(the live node steps at its own rate on the latest input).

Everything per clip is vectorized (BVH FK, sources, IK targets); the per-frame loop only
calls the C IK solver, the filter and the limiter.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_capture.retarget.bvh import BvhClip, load_bvh
from robot_capture.retarget.calibration import Calibration
from robot_capture.retarget.exo import ExoArmModel
from robot_capture.retarget.pose import HumanPoseBatch
from robot_capture.retarget.retargeter import Retargeter
from robot_capture.retarget.vr import VR_TRACKERS, VrSource, vr_poses_from_human

SOURCES = ("bvh", "exo", "vr")


def exo_replay_messages(clip: BvhClip, model: ExoArmModel | None = None):
    """Per-frame exoskeleton readings for a clip: ``(names (14), positions (N, 14) rad)``."""
    model = model or ExoArmModel.load()
    return list(model.joint_names), model.angles_from_poses(clip.human_poses())


def vr_replay_messages(clip: BvhClip) -> dict:
    """Per-frame VR tracker poses for a clip: ``{head, left_wrist, right_wrist} -> (N,4,4)`` in ``vr_world``
    (the clip's world, z up, metres)."""
    return vr_poses_from_human(clip.human_poses(), clip.world_from_body())


def source_poses(clip: BvhClip, source: str, exo_model: ExoArmModel | None = None,
                 vr_source: VrSource | None = None) -> HumanPoseBatch:
    """The HumanPoses the retargeter sees for ``clip`` through ``source`` (see module docstring)."""
    if source == "bvh":
        return clip.human_poses()
    stamps = np.arange(clip.n_frames) * clip.frame_time
    if source == "exo":
        model = exo_model or ExoArmModel.load()
        names, readings = exo_replay_messages(clip, model)
        return model.poses_from_angles(names, readings, stamps)
    if source == "vr":
        msgs = vr_replay_messages(clip)
        return (vr_source or VrSource()).human_poses(msgs["head"], msgs["left_wrist"], msgs["right_wrist"], stamps)
    raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")


@dataclass
class RetargetResult:
    """Per-frame record of an offline retarget (arrays over N frames).

    t (N,) s; joint_names; q, qd (N,nq) command; q_ik (N,nq) raw IK solution;
    keypoint_names, keypoints (N,K,4,4) human, body frame; task_names, target_frames,
    targets (N,T,4,4) robot base frame; position_errors / orientation_errors (N,T) IK residuals
    (m / rad, NaN for untracked components); wrist_frames, wrist_errors (N,W) m: distance of
    the commanded wrist frame (FK of q) to its target; flags (N,) comma-joined str.
    """

    robot: str
    source: str
    clip: str
    t: np.ndarray
    joint_names: list
    q: np.ndarray
    qd: np.ndarray
    q_ik: np.ndarray
    keypoint_names: list
    keypoints: np.ndarray
    task_names: list
    target_frames: list
    targets: np.ndarray
    position_errors: np.ndarray
    orientation_errors: np.ndarray
    wrist_frames: list
    wrist_errors: np.ndarray
    wrist_ik_errors: np.ndarray
    flags: np.ndarray
    lower: np.ndarray = field(default_factory=lambda: np.zeros(0))
    upper: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self):
        return len(self.t)

    def summary(self) -> dict:
        """p50/p95 wrist errors (IK and command, m), joint-limit violation (rad), frames held."""
        out = {"frames": len(self), "robot": self.robot, "source": self.source}
        for k, f in enumerate(self.wrist_frames):
            out[f"{f}.ik_p95_m"] = float(np.nanpercentile(self.wrist_ik_errors[:, k], 95))
            out[f"{f}.command_p95_m"] = float(np.nanpercentile(self.wrist_errors[:, k], 95))
        if len(self.lower):
            out["max_limit_violation_rad"] = float(np.max(np.maximum(self.q - self.upper, self.lower - self.q)))
        out["held_frames"] = int(sum("held" in f for f in self.flags))
        return out

    def save(self, path) -> Path:
        """Write ``.npz`` (all arrays) or ``.csv`` (one row per frame: t, q, keypoint and target
        positions, errors, flags). Raises ValueError for another suffix."""
        path = Path(path)
        if path.suffix == ".npz":
            np.savez_compressed(
                path, t=self.t, joint_names=np.array(self.joint_names), q=self.q, qd=self.qd, q_ik=self.q_ik,
                keypoint_names=np.array(self.keypoint_names), keypoints=self.keypoints,
                task_names=np.array(self.task_names), target_frames=np.array(self.target_frames),
                targets=self.targets, position_errors=self.position_errors,
                orientation_errors=self.orientation_errors, wrist_frames=np.array(self.wrist_frames),
                wrist_errors=self.wrist_errors, wrist_ik_errors=self.wrist_ik_errors, flags=self.flags,
                meta=json.dumps({"robot": self.robot, "source": self.source, "clip": self.clip}))
        elif path.suffix == ".csv":
            header = ["t"] + [f"q.{n}" for n in self.joint_names] + [f"qd.{n}" for n in self.joint_names]
            header += [f"human.{k}.{a}" for k in self.keypoint_names for a in "xyz"]
            header += [f"target.{f}.{a}" for f in self.target_frames for a in "xyz"]
            header += [f"position_error.{n}" for n in self.task_names]
            header += [f"orientation_error.{n}" for n in self.task_names]
            header += [f"wrist_error.{f}" for f in self.wrist_frames] + ["flags"]
            n = len(self)
            num = np.hstack([self.t[:, None], self.q, self.qd, self.keypoints[:, :, :3, 3].reshape(n, -1),
                             self.targets[:, :, :3, 3].reshape(n, -1), self.position_errors,
                             self.orientation_errors, self.wrist_errors])
            with open(path, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                for i in range(n):
                    w.writerow([f"{v:.9g}" for v in num[i]] + [self.flags[i]])
        else:
            raise ValueError(f"output {path} must end in .npz or .csv")
        return path


def retarget_poses(batch: HumanPoseBatch, retargeter: Retargeter, progress=None, source="bvh", clip="") -> RetargetResult:
    """Run ``retargeter`` over every pose of ``batch`` (time = the pose stamps).

    Args:
        progress: optional callable ``(done, total)``, called about 20 times.
    """
    r = retargeter
    n = len(batch)
    if n == 0:
        raise ValueError(f"{clip or 'input'}: no frames to retarget")
    kp_names = [k for k in batch.keypoints]
    req = r.required_keypoints()
    missing = sorted(req - set(kp_names))
    nt = len(r.tasks)
    if missing:
        rel = np.tile(np.eye(4), (n, nt, 1, 1))
        hold = np.full(n, "missing_keypoints", dtype=object)
    else:
        rel = r.targets_batch(batch.keypoints)
        bad = ~np.isfinite(rel).all(axis=(1, 2, 3))
        hold = np.where(bad, "nan_input", None) if bad.any() else None
    stamps = np.asarray(batch.stamps, dtype=float)
    chunk = max(1, -(-n // 20))
    parts = []
    for a in range(0, n, chunk):  # chunks only for progress reports
        parts.append(r.run_targets(rel[a:a + chunk], stamps[a:a + chunk], None if hold is None else hold[a:a + chunk]))
        if progress is not None:
            progress(min(n, a + chunk), n)
    res = {k: (np.concatenate([p[k] for p in parts]) if k != "flags" else sum((p[k] for p in parts), []))
           for k in parts[0]} if parts else None
    q, qd, q_ik = res["q"], res["qd"], res["q_ik"]
    pe, oe = res["position_errors"], res["orientation_errors"]
    flags = np.array([",".join(sorted(f)) for f in res["flags"]], dtype=object)
    # base-frame targets and commanded wrist errors (FK of the command)
    model = r.model
    nf = model.nframes
    P_ik = np.empty((n, nf, 4, 4))
    P_cmd = np.empty((n, nf, 4, 4))
    kin = getattr(model, "_kin", None)  # the C kinematics writes straight into the slices
    for i in range(n):
        if kin is not None:
            kin.fk(q_ik[i], P_ik[i])
            kin.fk(q[i], P_cmd[i])
        else:
            P_ik[i] = model.fk_all(q_ik[i])
            P_cmd[i] = model.fk_all(q[i])
    roots = np.array(r._root_index)
    targets = rel.copy()
    has_root = roots >= 0
    if has_root.any():
        targets[:, has_root] = P_ik[:, roots[has_root]] @ rel[:, has_root]
    wrist_tasks = [k for k, t in enumerate(r.tasks) if t.wrist]
    we = np.zeros((n, len(wrist_tasks)))
    for j, k in enumerate(wrist_tasks):
        fi = model.frame_index(r.tasks[k].frame)
        tgt = rel[:, k] if roots[k] < 0 else P_cmd[:, roots[k]] @ rel[:, k]
        we[:, j] = np.linalg.norm(P_cmd[:, fi, :3, 3] - tgt[:, :3, 3], axis=1)
    kp = np.stack([batch.keypoints[k] for k in kp_names], axis=1) if kp_names else np.zeros((n, 0, 4, 4))
    return RetargetResult(
        robot=r.mapping.robot, source=source, clip=str(clip), t=np.asarray(stamps, float), joint_names=r.joint_names,
        q=q, qd=qd, q_ik=q_ik, keypoint_names=kp_names, keypoints=kp, task_names=[t.name for t in r.tasks],
        target_frames=list(r.target_frames), targets=targets, position_errors=pe, orientation_errors=oe,
        wrist_frames=[r.tasks[k].frame for k in wrist_tasks], wrist_errors=we,
        wrist_ik_errors=pe[:, wrist_tasks] if wrist_tasks else np.zeros((n, 0)),
        flags=flags.astype(str), lower=model.lower.copy(), upper=model.upper.copy())


def retarget_clip(path, robot: str = "g1", source: str = "bvh", calibration: Calibration | None = None,
                  progress=None, retargeter: Retargeter | None = None) -> RetargetResult:
    """Retarget a BVH clip onto ``robot`` through ``source`` (``bvh``|``exo``|``vr``).

    Args:
        path: BVH file. robot: mapping name or YAML path. calibration: operator calibration
            (default: measured from the clip for ``bvh``; the live node's default for ``exo``/``vr``).
        progress: optional ``(done, total)`` callable. retargeter: reuse one (reset first).
    Raises:
        ValueError: malformed BVH (``file:line``) or unknown source. KeyError: unknown robot.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    clip = path if isinstance(path, BvhClip) else load_bvh(path)
    lengths = calibration.lengths if calibration is not None else None
    # the operator's segment lengths drive the exo FK / VR body model too, as in the live node
    batch = source_poses(clip, source, exo_model=ExoArmModel.load(segment_lengths=lengths) if source == "exo" else None,
                         vr_source=VrSource(segment_lengths=lengths) if source == "vr" else None)
    if retargeter is None:
        if calibration is None and source == "bvh":
            calibration = Calibration.from_poses(batch)
        retargeter = Retargeter(robot, calibration)
    else:
        retargeter.reset()
    return retarget_poses(batch, retargeter, progress=progress, source=source, clip=clip.path)


__all__ = ["SOURCES", "RetargetResult", "exo_replay_messages", "vr_replay_messages", "source_poses",
           "retarget_poses", "retarget_clip", "VR_TRACKERS"]
