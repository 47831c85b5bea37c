"""Per-operator calibration: segment lengths from a pose window, per-limb scaling, rotation offsets."""
from __future__ import annotations

import numpy as np
import pytest

from robot_capture.retarget.calibration import Calibration
from robot_capture.retarget.exo import ExoArmModel
from robot_capture.retarget.mapping import RobotMapping
from robot_capture.retarget.pose import HumanPoseBatch
from robot_capture.retarget.retargeter import Retargeter, robot_calibration_rotations

OPERATOR = {"upper_arm": 0.31, "forearm": 0.24, "torso_offset": [0.01, 0.0, 0.27],
            "shoulder_offset": [-0.02, 0.2, 0.16], "head_offset": [0.0, 0.0, 0.33]}


def _window(model, angles_fn, n=60, seed=0):
    rng = np.random.default_rng(seed)
    A = np.array([angles_fn(model) for _ in range(n)]) + rng.normal(scale=0.01, size=(n, 14))
    return HumanPoseBatch(model.fk_batch(A), np.arange(n) * 0.01), A


def _a_pose(model):
    a = np.zeros(14)
    a[model.joint_names.index("left_shoulder_abduction")] = 0.35
    a[model.joint_names.index("right_shoulder_abduction")] = 0.35
    a[model.joint_names.index("left_elbow_flexion")] = 0.15
    a[model.joint_names.index("right_elbow_flexion")] = 0.15
    return a


def test_segment_lengths_from_an_a_pose_window():
    model = ExoArmModel.load(segment_lengths=OPERATOR)
    window, _ = _window(model, _a_pose)
    cal = Calibration.from_poses(window, operator="op7")
    for k in ("upper_arm", "forearm"):
        assert cal.lengths[k] == pytest.approx(OPERATOR[k], abs=1e-9)
    for k in ("torso_offset", "shoulder_offset", "head_offset"):
        np.testing.assert_allclose(cal.lengths[k], OPERATOR[k], atol=1e-9)
    # list of HumanPose works too; an empty or NaN window is refused
    cal2 = Calibration.from_poses([window.pose(i) for i in range(5)])
    assert cal2.lengths["forearm"] == pytest.approx(0.24, abs=1e-9)
    with pytest.raises(ValueError):
        Calibration.from_poses([])
    bad = window.pose(0)
    bad.keypoints["left_wrist"] = bad.keypoints["left_wrist"] * np.nan
    with pytest.raises(ValueError, match="non-finite"):
        Calibration.from_poses([bad])


def test_per_limb_scaling_by_length_ratio():
    cal = Calibration.from_lengths(OPERATOR)
    r = Retargeter("kuavo", cal)
    up, fo = r._robot_lengths["left"]
    model = ExoArmModel.load(segment_lengths=OPERATOR)
    a = np.zeros(14)
    a[model.joint_names.index("left_shoulder_flexion")] = np.pi / 2  # arm straight forward
    kp = model.fk_batch(a[None])
    tg = r.targets_batch(kp)[0]
    k = [t.name for t in r.tasks].index("left_wrist")
    sh = r._p_robot_sh[k]
    # fully extended human arm -> target exactly one robot arm length from the robot shoulder, forward
    np.testing.assert_allclose(tg[k, :3, 3] - sh, [up + fo, 0, 0], atol=1e-9)
    ke = [t.name for t in r.tasks].index("left_elbow")
    np.testing.assert_allclose(tg[ke, :3, 3] - r._p_robot_sh[ke], [up, 0, 0], atol=1e-9)
    # a longer-armed operator reaching the same fraction of their reach gives the same target
    cal_long = Calibration.from_lengths({**OPERATOR, "upper_arm": 0.40, "forearm": 0.30})
    r2 = Retargeter("kuavo", cal_long)
    kp2 = ExoArmModel.load(segment_lengths={**OPERATOR, "upper_arm": 0.40, "forearm": 0.30}).fk_batch(a[None])
    np.testing.assert_allclose(r2.targets_batch(kp2)[0][k], tg[k], atol=1e-9)
    with pytest.raises(KeyError):
        Calibration.from_lengths({"upper_arm": 0.3, "shin": 0.4})


@pytest.mark.parametrize("robot", ["g1", "kuavo", "h1"])
def test_calibration_pose_maps_onto_robot_calibration_pose(robot):
    """Human in the mapping's calibration pose -> target rotations equal the robot frames there,
    and the IK lands near the robot's calibration configuration."""
    mapping = RobotMapping.load(robot)
    r = Retargeter(mapping)
    exo = ExoArmModel.load()
    a = np.zeros(14)
    for n, v in mapping.calibration_human.items():
        a[exo.joint_names.index(n)] = v
    kp = exo.fk_batch(a[None])
    tg = r.targets_batch(kp)[0]
    R_robot = robot_calibration_rotations(mapping, r.model)
    for k, t in enumerate(r.tasks):
        if t.orientation_cost > 0:
            np.testing.assert_allclose(tg[k, :3, :3], R_robot[t.name], atol=1e-9, err_msg=t.name)
    pose = exo.pose_from_angles(exo.joint_names, a, stamp=0.0)
    r.reset(mapping.calibration_q(r.model))
    for i in range(60):
        out = r.step(pose, 0.0)
    wrist = [k for k, t in enumerate(r.tasks) if t.wrist]
    if wrist:
        assert np.nanmax(out.position_errors[wrist]) < 0.03
    q_cal = mapping.calibration_q(r.model)
    assert np.abs(out.q_ik - q_cal).max() < 0.35


def test_measured_rotation_offsets_absorb_a_mounting_error():
    """An operator whose wrist trackers read 25 deg of pronation in the calibration pose: the
    measured offsets make that reading map to the robot's calibration wrist rotation."""
    mapping = RobotMapping.load("g1")
    exo = ExoArmModel.load()

    def cal_pose(model):
        a = np.zeros(14)
        for n, v in mapping.calibration_human.items():
            a[model.joint_names.index(n)] = v
        a[model.joint_names.index("left_forearm_pronation")] = np.radians(25)
        return a

    window, A = _window(exo, cal_pose, n=40, seed=1)
    cal = Calibration.from_poses(window, mapping)
    assert "left_wrist" in cal.rotation_offsets
    r = Retargeter(mapping, cal)
    tg = r.targets_batch({k: v[:1] for k, v in exo.fk_batch(cal_pose(exo)[None]).items()})[0]
    k = [t.name for t in r.tasks].index("left_wrist")
    R_robot = robot_calibration_rotations(mapping, r.model)["left_wrist"]
    ang = np.degrees(np.arccos(np.clip((np.trace(tg[k, :3, :3].T @ R_robot) - 1) / 2, -1, 1)))
    assert ang < 2.0  # noise only
    default = Retargeter(mapping).targets_batch({k2: v[:1] for k2, v in exo.fk_batch(cal_pose(exo)[None]).items()})[0]
    ang0 = np.degrees(np.arccos(np.clip((np.trace(default[k, :3, :3].T @ R_robot) - 1) / 2, -1, 1)))
    assert ang0 == pytest.approx(25, abs=0.5)  # without the measured offset the error is the mounting error


def test_yaml_round_trip(tmp_path):
    cal = Calibration.from_lengths(OPERATOR, operator="ann")
    cal.rotation_offsets["left_wrist"] = np.eye(3)[[1, 2, 0]]
    p = tmp_path / "cal.yaml"
    p.write_text(cal.to_yaml())
    back = Calibration.load(p)
    assert back.operator == "ann"
    assert back.lengths["upper_arm"] == OPERATOR["upper_arm"]
    np.testing.assert_array_equal(back.rotation_offsets["left_wrist"], cal.rotation_offsets["left_wrist"])
    r = Retargeter("g1", back)  # usable as is
    assert r.human_lengths["forearm"] == OPERATOR["forearm"]
