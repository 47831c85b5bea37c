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
    the commanded wrist frame (FK of q) to its target, wrist_ik_errors (N,W) m: the same for
    the IK solution (the wrist tasks; a mapping that marks no task ``wrist: true``, e.g. H1,
    reports every position-tracked task instead); flags (N,) comma-joined str; lag_s (N,) the
    retargeter's lag estimate (s); limits: ``teleop`` or ``urdf``.
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
    lag_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    limits: str = "urdf"
    velocity_limit: np.ndarray = field(default_factory=lambda: np.zeros(0))

    mapping_path: str = ""
    coupled_names: list = field(default_factory=list)
    coupled_q: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    coupled_qd: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def __len__(self):
        return len(self.t)

    def joint_command(self, i: int):
        """``(names, q, qd)`` of frame ``i`` as sent to the robot: model joints then coupled motor joints."""
        if not self.coupled_names:
            return self.joint_names, self.q[i], self.qd[i]
        return (self.joint_names + self.coupled_names, np.concatenate([self.q[i], self.coupled_q[i]]),
                np.concatenate([self.qd[i], self.coupled_qd[i]]))

    def summary(self) -> dict:
        """p50/p95 wrist errors (IK and command, m), joint-limit violation (rad), frames held."""
        out = {"frames": len(self), "robot": self.robot, "source": self.source, "limits": self.limits}
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
                lag_s=self.lag_s,
                meta=json.dumps({"robot": self.robot, "source": self.source, "clip": self.clip, "limits": self.limits}))
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
    # base-frame targets and commanded wrist errors: FK of only the frames needed (roots, wrists)
    model = r.model
    roots = np.array(r._root_index)
    targets = rel.copy()
    root_ids = sorted({int(x) for x in roots if x >= 0})
    if root_ids:
        P_root = r.model.fk_frames(q_ik, root_ids)
        for k in np.nonzero(roots >= 0)[0]:
            targets[:, k] = P_root[:, root_ids.index(int(roots[k]))] @ rel[:, k]
    wrist_tasks = tracked_tasks(r)
    we = np.zeros((n, len(wrist_tasks)))
    if wrist_tasks:
        ids = sorted({model.frame_index(r.tasks[k].ik_frame) for k in wrist_tasks}
                     | {int(roots[k]) for k in wrist_tasks if roots[k] >= 0})
        P_cmd = model.fk_frames(q, ids)
        for j, k in enumerate(wrist_tasks):
            fi = ids.index(model.frame_index(r.tasks[k].ik_frame))
            tgt = rel[:, k] if roots[k] < 0 else P_cmd[:, ids.index(int(roots[k]))] @ rel[:, k]
            we[:, j] = np.linalg.norm(P_cmd[:, fi, :3, 3] - tgt[:, :3, 3], axis=1)
    kp = np.stack([batch.keypoints[k] for k in kp_names], axis=1) if kp_names else np.zeros((n, 0, 4, 4))
    return RetargetResult(
        robot=r.mapping.robot, source=source, clip=str(clip), t=np.asarray(stamps, float), joint_names=r.joint_names,
        q=q, qd=qd, q_ik=q_ik, keypoint_names=kp_names, keypoints=kp, task_names=[t.name for t in r.tasks],
        target_frames=list(r.target_frames), targets=targets, position_errors=pe, orientation_errors=oe,
        wrist_frames=[r.tasks[k].ik_frame for k in wrist_tasks], wrist_errors=we,
        wrist_ik_errors=pe[:, wrist_tasks] if wrist_tasks else np.zeros((n, 0)),
        flags=flags.astype(str), lower=model.lower.copy(), upper=model.upper.copy(), lag_s=res["lag_s"],
        limits=r.limits, velocity_limit=r.vmax.copy(), mapping_path=str(r.mapping.source or ""),
        coupled_names=list(r.coupled_names),
        coupled_q=q @ r.coupling_A.T + r.coupling_b, coupled_qd=qd @ r.coupling_A.T)


def tracked_tasks(retargeter) -> list[int]:
    """Indices of the tasks whose error is reported: the ``wrist: true`` tasks, else (a robot
    without a wrist task, e.g. H1) every position-tracked task."""
    tasks = retargeter.tasks
    return [k for k, t in enumerate(tasks) if t.wrist] or [k for k, t in enumerate(tasks) if t.position_cost > 0]


def retarget_clip(path, robot: str = "g1", source: str = "bvh", calibration: Calibration | None = None,
                  progress=None, retargeter: Retargeter | None = None, limits: str = "urdf",
                  filter: str = "none", estimate_lag: bool | None = None) -> RetargetResult:
    """Retarget a BVH clip onto ``robot`` through ``source`` (``bvh``|``exo``|``vr``).

    Args:
        path: BVH file. robot: mapping name or YAML path. calibration: operator calibration
            (default: measured from the clip for ``bvh``; the live node's default for ``exo``/``vr``).
        progress: optional ``(done, total)`` callable. retargeter: reuse one (reset first).
        limits: ``urdf`` (default: the data is re-retargeted, not sent to a motor) or ``teleop``
            (the live safety limits), see :class:`Retargeter`.
        filter: ``none`` (default offline: the IK output is already within the limits, and a
            causal filter only adds lag) or ``mapping`` (the mapping's live filter).
        estimate_lag: fill ``lag_s`` (default: with teleop limits only; it costs about two IK
            solves per frame, and with URDF limits the command does not lag: ``lag_s`` is NaN).
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
        if filter not in ("none", "mapping"):
            raise ValueError(f"filter must be 'none' or 'mapping', not {filter!r}")
        retargeter = Retargeter(robot, calibration, limits=limits,
                                filter={"type": "none"} if filter == "none" else None)
        # URDF limits: no lag worth its cost (lag_s NaN) unless asked for
        retargeter.estimate_lag = limits == "teleop" if estimate_lag is None else bool(estimate_lag)
    else:
        retargeter.reset()
    return retarget_poses(batch, retargeter, progress=progress, source=source, clip=clip.path)


__all__ = ["SOURCES", "RetargetResult", "tracked_tasks", "exo_replay_messages", "vr_replay_messages", "source_poses",
           "retarget_poses", "retarget_clip", "VR_TRACKERS"]
