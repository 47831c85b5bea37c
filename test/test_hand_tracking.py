"""Recorded WebXR (Quest) hand poses -> OpenXR joints -> VR source HumanPose, on the real files."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robot_capture.retarget.hand_tracking import (
    WEBXR_HAND_JOINTS,
    bone_lengths,
    load_webxr_hand_poses,
    webxr_sample_path,
    webxr_to_openxr,
    webxr_to_wrist_frame,
)
from robot_capture.retarget.pose import OPENXR_HAND_JOINTS, hand_keypoint, make_transform
from robot_capture.retarget.vr import VrSource

SIDES = ("left", "right")
FINGERS = ("thumb", "index", "middle", "ring", "little")


@pytest.fixture(scope="module")
def poses():
    return {s: load_webxr_hand_poses(webxr_sample_path(s)) for s in SIDES}


def _by_name(poses, side, name):
    return next(p for p in poses[side] if name in p.names)


def test_all_110_poses_load_in_metres(poses):
    assert sum(len(v) for v in poses.values()) == 110
    for side in SIDES:
        assert len(poses[side]) == 55
        for p in poses[side]:
            assert p.handedness == side and p.positions.shape == (25, 3)
            np.testing.assert_array_equal(p.positions[0], 0.0)  # wrist-relative
            assert 0.05 < np.abs(p.positions).max() < 0.25  # metres (a hand spans ~0.2 m)
            assert p.source.startswith(str(webxr_sample_path(side)) + ":")
    names = {n for p in poses["left"] for n in p.names}
    assert {"rest", "flat", "flare", "fist", "point", "pinch"} <= names


def test_openxr_order_and_joint_mapping(poses):
    p = _by_name(poses, "left", "flat")
    W = make_transform(Rotation.from_euler("xyz", [0.3, -0.2, 1.1]).as_matrix(), [0.4, -0.1, 1.2])
    J = webxr_to_openxr(p.positions, W, "left")
    assert J.shape == (26, 4, 4) and len(OPENXR_HAND_JOINTS) == 26
    np.testing.assert_allclose(J[1], W, atol=1e-12)  # wrist
    local = np.linalg.inv(W) @ J
    for j, name in enumerate(OPENXR_HAND_JOINTS[1:], start=1):
        webxr = WEBXR_HAND_JOINTS[j - 1]
        assert webxr.split("-")[0].replace("pinky", "little") == name.split("_")[0]
        assert webxr.split("-")[-1] == name.split("_")[-1]
        np.testing.assert_allclose(local[j, :3, 3], p.positions[j - 1], atol=1e-12, err_msg=name)
    # palm: centre of the middle metacarpal bone
    mid = 0.5 * (p.positions[WEBXR_HAND_JOINTS.index("middle-finger-metacarpal")]
                 + p.positions[WEBXR_HAND_JOINTS.index("middle-finger-phalanx-proximal")])
    np.testing.assert_allclose(local[0, :3, 3], mid, atol=1e-12)
    # rotations are proper, and each joint's -z points along its bone toward the fingertip
    R = J[:, :3, :3]
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), (26, 3, 3)), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    i_prox, i_int = OPENXR_HAND_JOINTS.index("index_proximal"), OPENXR_HAND_JOINTS.index("index_intermediate")
    bone = J[i_int, :3, 3] - J[i_prox, :3, 3]
    np.testing.assert_allclose(-R[i_prox][:, 2], bone / np.linalg.norm(bone), atol=1e-9)


@pytest.mark.parametrize("side", SIDES)
def test_open_hand_tips_farther_than_metacarpals(poses, side):
    for name in ("rest", "flat", "flare"):
        p = _by_name(poses, side, name)
        d = np.linalg.norm(p.positions, axis=1)
        for f, finger in enumerate(("thumb", "index-finger", "middle-finger", "ring-finger", "pinky-finger")):
            tip = d[WEBXR_HAND_JOINTS.index(f"{finger}-tip")]
            meta = d[WEBXR_HAND_JOINTS.index(f"{finger}-metacarpal")]
            assert tip > meta + 0.03, (name, finger, tip, meta)


@pytest.mark.parametrize("side", SIDES)
def test_bone_lengths_plausible(poses, side):
    meta_bones = [0, 3, 7, 11, 15]  # first bone of each digit (thumb has 3 bones, fingers 4)
    for p in poses[side]:
        b = bone_lengths(p.positions)
        assert b.shape == (19,)
        phal = np.delete(b, meta_bones)
        assert ((phal > 0.01) & (phal < 0.06)).all(), (p.source, phal)
        assert ((b[meta_bones] > 0.025) & (b[meta_bones] < 0.08)).all(), (p.source, b[meta_bones])


def test_malformed_lines_name_file_and_line(tmp_path, poses):
    good = webxr_sample_path("left").read_text(encoding="utf-8").splitlines()[:2]
    cases = {
        "{not json": "not valid JSON",
        '{"names": ["x"], "handedness": "left"}': "missing key 'jointPositions'",
        '{"names": ["x"], "handedness": "middle", "jointPositions": []}': "handedness",
        '{"names": ["x"], "handedness": "left", "jointPositions": [[0, 0, 0]]}': "25 x 3",
        '{"names": ["x"], "handedness": "left", "jointPositions": "abc"}': "not a numeric array",
        '{"names": ["x"], "handedness": "left", "jointPositions": [%s]}' % ",".join(["[NaN, 0, 0]"] * 25): "non-finite",
    }
    for bad, msg in cases.items():
        f = tmp_path / "bad.jsonl"
        f.write_text("\n".join(good + ["", bad]) + "\n", encoding="utf-8")
        with pytest.raises(ValueError, match=rf"bad\.jsonl:4: .*{msg}"):
            load_webxr_hand_poses(f)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no hand poses"):
        load_webxr_hand_poses(empty)
    with pytest.raises(ValueError, match="handedness"):
        webxr_to_wrist_frame(poses["left"][0].positions, "up")


def _vr_trackers(src, yaw, origin, wrist_rot=None):
    """Tracker poses in vr_world for a standing operator whose body frame is yaw/origin in vr_world."""
    W = make_transform(Rotation.from_euler("z", yaw).as_matrix(), origin)
    Rw = np.eye(3) if wrist_rot is None else wrist_rot
    body = {"head": make_transform(None, src.head_in_body),
            "left_wrist": make_transform(Rw, [0.02, 0.22, 0.75]),
            "right_wrist": make_transform(Rw, [0.02, -0.22, 0.75])}
    return W, body, {k: W @ v for k, v in body.items()}


def test_real_hands_reach_the_human_pose_in_the_body_frame(poses):
    """Wrists at attention (identity in the body frame) in a yawed, offset vr_world."""
    src = VrSource()
    _W, body, vr = _vr_trackers(src, yaw=2.3, origin=[1.5, -0.7, 0.1])
    hands = {s: {n: webxr_to_openxr(_by_name(poses, s, n).positions, vr[f"{s}_wrist"], s) for n in ("flat", "fist")}
             for s in SIDES}
    for name in ("flat", "fist"):
        hp = src.human_pose(vr["head"], vr["left_wrist"], vr["right_wrist"],
                            left_hand=hands["left"][name], right_hand=hands["right"][name], stamp=1.5)
        assert hp.valid and hp.is_finite()
        for side in SIDES:
            np.testing.assert_allclose(hp.keypoints[f"{side}_wrist"], body[f"{side}_wrist"], atol=1e-9)
            w = hp.position(f"{side}_wrist")
            rel = {j: hp.position(hand_keypoint(side, j)) - w for j in OPENXR_HAND_JOINTS}
            # exact: body-frame offsets are the recorded offsets in the wrist frame (wrist = body axes here)
            expect = webxr_to_wrist_frame(_by_name(poses, side, name).positions, side)
            for j, jn in enumerate(OPENXR_HAND_JOINTS[1:]):
                np.testing.assert_allclose(rel[jn], expect[j], atol=1e-9, err_msg=(side, jn))
            # physical: hanging hand at attention, thumb forward (+x), palm toward the thigh
            assert rel["middle_metacarpal"][2] < -0.03 and rel["palm"][2] < -0.05
            if name == "flat":
                assert rel["thumb_tip"][0] > rel["little_tip"][0] + 0.03, (side, name)
                assert rel["middle_tip"][2] < -0.15, (side, rel["middle_tip"])
            else:  # fist: finger tips curl to the palm side (left: -y, right: +y)
                inward = -1.0 if side == "left" else 1.0
                for f in FINGERS[1:]:
                    assert inward * rel[f"{f}_tip"][1] > 0.015, (side, f, rel[f"{f}_tip"])


def test_live_retarget_on_vr_hand_uses_real_hands(poses):
    from robot_capture.retarget.live import LiveRetarget
    from robot_capture.retarget.mapping import RobotMapping

    live = LiveRetarget(RobotMapping.load("g1"), source="vr")
    src = live.vr
    R = Rotation.from_euler("y", -1.2).as_matrix()  # wrist raised forward (palm inward)
    _W, body, vr = _vr_trackers(src, yaw=-0.8, origin=[0.3, 2.0, 0.0], wrist_rot=R)
    p = _by_name(poses, "right", "point")
    live.on_vr_hand("right", list(webxr_to_openxr(p.positions, vr["right_wrist"], "right")))
    for k, (name, T) in enumerate(vr.items()):
        assembled = live.on_vr(name, T, stamp=2.0, token=k)
    assert assembled
    hp = live.pose
    assert not any(hp.has(hand_keypoint("left", j)) for j in OPENXR_HAND_JOINTS)
    w = hp.keypoints["right_wrist"]
    np.testing.assert_allclose(w, body["right_wrist"], atol=1e-9)
    expect = webxr_to_wrist_frame(p.positions, "right")
    for j, jn in enumerate(OPENXR_HAND_JOINTS[1:]):
        np.testing.assert_allclose(np.linalg.inv(w) @ hp.keypoints[hand_keypoint("right", jn)][:, 3],
                                   np.r_[expect[j], 1.0], atol=1e-9, err_msg=jn)
    # the pointing index is the farthest tip, and with the forearm raised forward it points forward (+x body)
    tip = hp.position(hand_keypoint("right", "index_tip")) - hp.position("right_wrist")
    assert tip[0] > 0.12


def test_clip_replay_attaches_a_recorded_hand_at_the_wrists(poses):
    from robot_capture.sim.replay import ClipReplay

    r = ClipReplay("cmu_02_05_punch_strike", exo=False, hand_poses="fist")
    for side in SIDES:
        H = r.hands[side]
        assert H.shape == (r.n_frames, 26, 4, 4) and np.isfinite(H).all()
        np.testing.assert_allclose(H[:, 1], r.vr[f"{side}_wrist"], atol=1e-12)
        expect = webxr_to_wrist_frame(_by_name(poses, side, "fist").positions, side)
        for i in (0, r.n_frames // 2, r.n_frames - 1):
            local = np.linalg.inv(r.vr[f"{side}_wrist"][i]) @ H[i]
            np.testing.assert_allclose(local[1:, :3, 3], expect, atol=1e-9)
    assert ClipReplay("cmu_02_05_punch_strike", exo=False).hands == {}
    with pytest.raises(ValueError, match="no_such_pose.*known: .*fist"):
        ClipReplay("cmu_02_05_punch_strike", exo=False, hand_poses="no_such_pose")
    with pytest.raises(ValueError, match="needs the VR poses"):
        ClipReplay("cmu_02_05_punch_strike", vr=False, hand_poses="fist")


@pytest.mark.ros
def test_mocap_replay_node_publishes_hands(ros_node, poses):
    from geometry_msgs.msg import PoseArray, PoseStamped

    from robot_capture.nodes._convert import pose_array_to_matrices, pose_to_matrix, stamp_to_ns
    from ros_util import spin_until, start_node, stop_node

    proc = start_node("robot_capture.nodes.mocap_replay_node",
                      {"clip": "cmu_02_05_punch_strike", "publish_exo": False, "hand_poses": "point"})
    node, ex = ros_node
    try:
        hands, wrists = [], {}
        node.create_subscription(PoseArray, "/vr/right_hand", hands.append, 100)
        node.create_subscription(PoseStamped, "/vr/right_wrist",
                                 lambda m: wrists.__setitem__(stamp_to_ns(m.header.stamp), m), 100)
        paired = lambda: [h for h in hands if stamp_to_ns(h.header.stamp) in wrists]  # noqa: E731
        assert spin_until(ex, lambda: len(paired()) > 3), "no /vr/right_hand messages paired with wrists"
        expect = webxr_to_wrist_frame(_by_name(poses, "right", "point").positions, "right")
        for h in paired()[:4]:
            assert h.header.frame_id == "vr_world" and len(h.poses) == 26
            W = pose_to_matrix(wrists[stamp_to_ns(h.header.stamp)].pose)
            J = np.asarray(pose_array_to_matrices(h))
            local = np.linalg.inv(W) @ J
            np.testing.assert_allclose(local[1:, :3, 3], expect, atol=1e-6)
    finally:
        stop_node(proc)
