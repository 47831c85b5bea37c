"""VR source: tracker poses in vr_world <-> HumanPose in the body frame."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robot_capture.retarget.bvh import load_bvh
from robot_capture.retarget.exo import ExoArmModel
from robot_capture.retarget.pose import OPENXR_HAND_JOINTS
from robot_capture.retarget.vr import VrSource, place_elbow, vr_poses_from_human


def _world(yaw, xyz):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", yaw).as_matrix()
    T[:3, 3] = xyz
    return T


def test_round_trip_through_vr_world_is_yaw_and_position_invariant():
    exo = ExoArmModel.load()
    rng = np.random.default_rng(2)
    src = VrSource()
    for _ in range(20):
        a = rng.uniform(-0.5, 1.2, 14)
        pose = exo.pose_from_angles(exo.joint_names, a, stamp=3.0)
        W = _world(rng.uniform(-np.pi, np.pi), rng.uniform(-3, 3, 3))
        vr = vr_poses_from_human(pose, W)
        assert set(vr) == {"head", "left_wrist", "right_wrist"}
        back = src.human_pose(vr["head"], vr["left_wrist"], vr["right_wrist"], stamp=3.0)
        assert back.valid and back.stamp == 3.0
        for k in ("head", "left_wrist", "right_wrist", "torso", "left_shoulder"):
            np.testing.assert_allclose(back.keypoints[k], pose.keypoints[k], atol=1e-9, err_msg=k)
        # elbows are estimated: on the arm-length circle
        for side in ("left", "right"):
            e = back.position(f"{side}_elbow")
            assert np.linalg.norm(e - back.position(f"{side}_shoulder")) == pytest.approx(exo.lengths["upper_arm"], abs=1e-6)


def test_head_yaw_turns_the_body_frame():
    src = VrSource()
    head = _world(0.7, [1.0, 2.0, 1.6])
    wrist = _world(0.7, [1.0, 2.0, 1.0])
    p = src.human_pose(head, wrist, wrist)
    np.testing.assert_allclose(p.rotation("head"), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(p.position("head"), src.head_in_body, atol=1e-12)
    # a head pitched down 80 deg keeps its heading
    pitched = head.copy()
    pitched[:3, :3] = Rotation.from_euler("zy", [0.7, 1.4]).as_matrix()
    p2 = src.human_pose(pitched, wrist, wrist)
    np.testing.assert_allclose(p2.position("left_wrist"), p.position("left_wrist"), atol=1e-9)


def test_hands_and_bad_input():
    src = VrSource()
    hand = [_world(0.0, [0.1 * i, 0, 1.0]) for i in range(len(OPENXR_HAND_JOINTS))]
    head, wr = _world(0.0, [0, 0, 1.6]), _world(0.0, [0.3, 0.2, 1.0])
    p = src.human_pose(head, wr, wr, left_hand=hand)
    assert p.has("left_hand_index_tip") and not p.has("right_hand_index_tip")
    np.testing.assert_allclose(p.position("left_hand_wrist")[0], 0.1, atol=1e-12)
    bad = head.copy()
    bad[0, 3] = np.nan
    q = src.human_pose(bad, wr, wr)
    assert not q.valid and "nan_input" in q.flags
    q = src.human_pose(np.eye(3), wr, wr)
    assert not q.valid and "malformed" in q.flags


def test_place_elbow_geometry():
    sh, wr = np.zeros(3), np.array([0.3, 0.0, -0.2])
    e = place_elbow(sh, wr, 0.28, 0.26, np.array([0.0, 0.0, -1.0]))
    assert np.linalg.norm(e - sh) == pytest.approx(0.28)
    assert np.linalg.norm(wr - e) == pytest.approx(0.26)
    assert e[2] < min(sh[2], wr[2])  # below the shoulder-wrist line, as hinted


def test_clip_vr_replay_matches_clip_wrists_relative_to_head(data_dir):
    clip = load_bvh(data_dir / "motion" / "cmu_02_05_punch_strike.bvh")
    from robot_capture.retarget.offline import source_poses, vr_replay_messages

    msgs = vr_replay_messages(clip)
    assert msgs["head"].shape == (clip.n_frames, 4, 4)
    # vr_world is the clip world: the head is 1.4-1.9 m above the floor... or above the pelvis origin
    assert 0.3 < np.median(msgs["head"][:, 2, 3] - clip.world_from_body()[:, 2, 3]) < 0.9
    batch = source_poses(clip, "vr")
    ref = clip.human_poses()
    # wrist relative to head is preserved up to the body-frame yaw estimate (head vs pelvis heading)
    d_vr = np.linalg.norm(batch.keypoints["left_wrist"][:, :3, 3] - batch.keypoints["head"][:, :3, 3], axis=1)
    d_ref = np.linalg.norm(ref.keypoints["left_wrist"][:, :3, 3] - ref.keypoints["head"][:, :3, 3], axis=1)
    np.testing.assert_allclose(d_vr, d_ref, atol=1e-9)
