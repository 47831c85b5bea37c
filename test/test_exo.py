"""Exoskeleton arm model: FK geometry, analytic inverse round trips, names, signs, BVH replay."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from robot_capture.retarget.bvh import load_bvh
from robot_capture.retarget.exo import ExoArmModel
from robot_capture.retarget.pose import invert_transform


@pytest.fixture(scope="module")
def model():
    return ExoArmModel.load()


def _angles(model, **kw):
    a = np.zeros(len(model.joint_names))
    for k, v in kw.items():
        a[model.joint_names.index(k)] = v
    return a


def test_attention_pose_is_identity_and_lengths(model):
    pose = model.pose_from_angles(model.joint_names, np.zeros(14))
    L = model.lengths
    for name, T in pose.keypoints.items():
        np.testing.assert_allclose(T[:3, :3], np.eye(3), atol=1e-12, err_msg=name)
    sh = pose.position("left_shoulder")
    np.testing.assert_allclose(pose.position("left_elbow"), sh - [0, 0, L["upper_arm"]], atol=1e-12)
    np.testing.assert_allclose(pose.position("left_wrist"), sh - [0, 0, L["upper_arm"] + L["forearm"]], atol=1e-12)
    assert pose.position("right_shoulder")[1] == pytest.approx(-sh[1])


def test_fk_of_known_angles(model):
    L = model.lengths
    reach = L["upper_arm"] + L["forearm"]
    # shoulder flexion 90 deg: the arm points forward at shoulder height
    p = model.pose_from_angles(model.joint_names, _angles(model, left_shoulder_flexion=np.pi / 2))
    np.testing.assert_allclose(p.position("left_wrist") - p.position("left_shoulder"), [reach, 0, 0], atol=1e-12)
    # abduction 90 deg: each arm points sideways, away from the body
    p = model.pose_from_angles(model.joint_names, _angles(model, left_shoulder_abduction=np.pi / 2,
                                                          right_shoulder_abduction=np.pi / 2))
    np.testing.assert_allclose(p.position("left_wrist") - p.position("left_shoulder"), [0, reach, 0], atol=1e-12)
    np.testing.assert_allclose(p.position("right_wrist") - p.position("right_shoulder"), [0, -reach, 0], atol=1e-12)
    # elbow flexion 90 deg: forearm forward; internal rotation 90 deg then turns it toward the belly
    p = model.pose_from_angles(model.joint_names, _angles(model, left_elbow_flexion=np.pi / 2,
                                                          left_shoulder_rotation=np.pi / 2))
    np.testing.assert_allclose(p.position("left_wrist") - p.position("left_elbow"), [0, -L["forearm"], 0], atol=1e-12)
    # pronation 90 deg turns the left palm (facing -y at rest) backward (-x)
    p = model.pose_from_angles(model.joint_names, _angles(model, left_forearm_pronation=np.pi / 2))
    palm = -p.rotation("left_wrist")[:, 1]  # left palm normal is -y in the wrist frame
    np.testing.assert_allclose(palm, [-1, 0, 0], atol=1e-12)
    # wrist flexion bends the left hand toward the palm (-y)
    p = model.pose_from_angles(model.joint_names, _angles(model, left_wrist_flexion=np.pi / 2))
    np.testing.assert_allclose(-p.rotation("left_wrist")[:, 2], [0, -1, 0], atol=1e-12)


def test_inverse_round_trip_random(model):
    rng = np.random.default_rng(7)
    lo = np.radians([-40, -20, -70, 12, -85, -60, -25] * 2)
    hi = np.radians([130, 85, 70, 140, 85, 60, 25] * 2)
    A = rng.uniform(lo, hi, size=(500, 14))
    kp = model.fk_batch(A)
    B = model.angles_batch(kp)
    np.testing.assert_allclose(B, A, atol=1e-9)  # angles_from_pose o pose_from_angles = identity
    kp2 = model.fk_batch(B)
    for k in kp:
        np.testing.assert_allclose(kp2[k], kp[k], atol=1e-9)
    # single-pose API on one sample, with readings in a shuffled name order
    names, readings = model.angles_from_pose(model.pose_from_angles(model.joint_names, A[3]))
    np.testing.assert_allclose(readings, A[3], atol=1e-9)
    order = rng.permutation(14)
    p = model.pose_from_angles([names[i] for i in order], readings[order])
    np.testing.assert_allclose(p.keypoints["right_wrist"], kp["right_wrist"][3], atol=1e-9)


def test_straight_elbow_still_reproduces_the_pose(model):
    a = _angles(model, left_shoulder_flexion=0.4, left_shoulder_rotation=0.3, left_forearm_pronation=0.5,
                left_wrist_flexion=0.2, left_elbow_flexion=0.0)
    kp = model.fk_batch(a[None])
    b = model.angles_batch(kp)
    kp2 = model.fk_batch(b)
    for k in kp:
        np.testing.assert_allclose(kp2[k], kp[k], atol=1e-9)


def test_sign_and_offset_from_config(tmp_path, model):
    cfg = yaml.safe_load(_cfg_path().read_text())
    cfg["arms"]["left"][3]["sign"] = -1
    cfg["arms"]["left"][3]["offset"] = 0.1
    p = tmp_path / "exo.yaml"
    p.write_text(yaml.safe_dump(cfg))
    flipped = ExoArmModel.load(p)
    readings = np.zeros(14)
    readings[3] = 0.1 - 1.0  # anatomical elbow flexion = -1 * (reading - 0.1) = 1.0 rad
    ref = model.pose_from_angles(model.joint_names, _angles(model, left_elbow_flexion=1.0))
    got = flipped.pose_from_angles(flipped.joint_names, readings)
    np.testing.assert_allclose(got.keypoints["left_wrist"], ref.keypoints["left_wrist"], atol=1e-12)
    names, back = flipped.angles_from_pose(got)
    np.testing.assert_allclose(back, readings, atol=1e-9)


def _cfg_path():
    from robot_capture.paths import config_dir

    return config_dir() / "human" / "exo_arm.yaml"


def test_unknown_and_missing_names(model):
    names = list(model.joint_names) + ["left_pinky_curl"]
    pos = np.zeros(15)
    pose = model.pose_from_angles(names, pos)
    assert pose.valid and "unknown_joints" in pose.flags
    msg = model.unknown_warning(names)
    assert "left_pinky_curl" in msg and "left_shoulder_flexion" in msg  # names the expected ones
    assert model.unknown_warning(names) is None  # once
    pose = model.pose_from_angles(model.joint_names[:-1], np.zeros(13))
    assert not pose.valid and "missing_joints" in pose.flags
    pose = model.pose_from_angles(model.joint_names, np.zeros(13))
    assert not pose.valid and "malformed" in pose.flags


def test_bvh_through_exo_keeps_directions_and_wrist_rotation(data_dir):
    for clip_name in ("cmu_02_05_punch_strike.bvh", "cmu_131_01_start_walk_stop.bvh"):
        clip = load_bvh(data_dir / "motion" / clip_name)
        batch = clip.human_poses()
        model = ExoArmModel.load(segment_lengths=ExoArmModel.segment_lengths_from_pose(batch))
        kp = model.fk_batch(model.angles_batch(batch.keypoints))
        inv = invert_transform(batch.keypoints["torso"])
        for side in ("left", "right"):
            sh = (inv @ batch.keypoints[f"{side}_shoulder"])[:, :3, 3]
            for j in ("elbow", "wrist"):
                d_h = (inv @ batch.keypoints[f"{side}_{j}"])[:, :3, 3] - sh
                d_m = kp[f"{side}_{j}"][:, :3, 3] - kp[f"{side}_shoulder"][:, :3, 3]
                if j == "elbow":  # the upper-arm direction is exact
                    cos = np.sum(d_h * d_m, 1) / np.linalg.norm(d_h, axis=1) / np.linalg.norm(d_m, axis=1)
                    assert cos.min() > 1 - 1e-9, (clip_name, side, j)
                # the model uses the left/right mean segment lengths: positions agree to ~1 cm
                assert np.abs(d_m - d_h).max() < 0.015, (clip_name, side, j)
            np.testing.assert_allclose(kp[f"{side}_wrist"][:, :3, :3],
                                       (inv @ batch.keypoints[f"{side}_wrist"])[:, :3, :3], atol=1e-9)
