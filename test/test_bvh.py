"""BVH loading: every shipped clip, both naming conventions, units, wrapped channels, malformed files."""
from __future__ import annotations

import re

import numpy as np
import pytest

from robot_capture.retarget.bvh import load_bvh, parse_bvh
from robot_capture.retarget.pose import BODY_KEYPOINTS


def _clips(data_dir):
    return sorted((data_dir / "motion").glob("*.bvh"))


def test_every_clip_loads_with_plausible_skeleton(data_dir):
    clips = _clips(data_dir)
    assert len(clips) >= 7
    conventions = set()
    for path in clips:
        clip = load_bvh(path)
        conventions.add(clip.convention)
        batch = clip.human_poses()
        assert len(batch) == clip.n_frames > 100
        assert set(BODY_KEYPOINTS) <= set(batch.keypoints)
        kp = batch.keypoints
        for name, T in kp.items():
            assert np.isfinite(T).all(), (path.name, name)
            R = T[:, :3, :3]
            assert np.allclose(R @ np.swapaxes(R, 1, 2), np.eye(3), atol=1e-9), (path.name, name)
        # metres, REP-103 body frame: pelvis at the origin, head above, left arm at +y
        assert np.allclose(kp["pelvis"][:, :3, 3], 0.0, atol=1e-9)
        assert np.median(kp["head"][:, 2, 3]) > 0.3
        assert np.median(kp["left_shoulder"][:, 1, 3]) > 0.05 > -0.05 > np.median(kp["right_shoulder"][:, 1, 3])
        upper = np.linalg.norm(kp["left_elbow"][:, :3, 3] - kp["left_shoulder"][:, :3, 3], axis=1)
        fore = np.linalg.norm(kp["left_wrist"][:, :3, 3] - kp["left_elbow"][:, :3, 3], axis=1)
        assert 0.18 < np.median(upper) < 0.38 and 0.15 < np.median(fore) < 0.35, path.name
        # the body frame is gravity-aligned: the pelvis world pose has z up
        W = clip.world_from_body()
        assert np.allclose(W[:, :3, 2], [0, 0, 1], atol=1e-9)
    assert conventions == {"cgspeed", "cc"}


def test_units_detected_per_convention(data_dir):
    cc = load_bvh(data_dir / "motion" / "cmu_02_05_punch_strike.bvh")
    cg = load_bvh(data_dir / "motion" / "cmu_131_01_start_walk_stop.bvh")
    assert cc.length_scale == pytest.approx(0.01)  # centimetres
    assert cg.length_scale == pytest.approx(0.056444)  # CMU units (1/0.45 inch)
    # metre files: the same clip with offsets and root translation scaled to metres gives the same pose
    text = (data_dir / "motion" / "cmu_02_05_punch_strike.bvh").read_text()
    joints, ft, motion = parse_bvh(text)
    m = load_bvh(data_dir / "motion" / "cmu_02_05_punch_strike.bvh")
    for j in joints:
        j.offset = j.offset * 0.01
    motion = motion.copy()
    motion[:, :3] *= 0.01
    from robot_capture.retarget.bvh import BvhClip

    metres = BvhClip(joints, ft, motion, m.mapping)
    assert metres.length_scale == 1.0
    for k in BODY_KEYPOINTS:
        np.testing.assert_allclose(metres.human_poses().keypoints[k], m.human_poses().keypoints[k], atol=1e-9)


def test_channels_past_360_are_periodic(data_dir):
    path = data_dir / "motion" / "cmu_05_02_dance_expressive_arms.bvh"
    clip = load_bvh(path)
    assert np.abs(clip.channels).max() > 360.0  # the shipped clip really wraps
    ref = {k: v.copy() for k, v in clip.human_poses().keypoints.items()}
    # add +-360 deg to every rotation channel of every joint: the pose must not change
    shifted = clip.channels.copy()
    rng = np.random.default_rng(0)
    for j in clip.joints:
        for m, c in enumerate(j.channels):
            if c.endswith("rotation"):
                shifted[:, j.channel_start + m] += 360.0 * rng.integers(-2, 3, size=clip.n_frames)
    from robot_capture.retarget.bvh import BvhClip

    other = BvhClip(clip.joints, clip.frame_time, shifted, clip.mapping)
    for k in ref:
        np.testing.assert_allclose(other.human_poses().keypoints[k], ref[k], atol=1e-9)
    # and the trajectories are continuous frame to frame (no 360-degree flips)
    p = ref["left_wrist"][:, :3, 3]
    assert np.max(np.linalg.norm(np.diff(p, axis=0), axis=1)) < 0.25


def test_single_pose_matches_batch(data_dir):
    clip = load_bvh(data_dir / "motion" / "cmu_131_01_start_walk_stop.bvh")
    pose = clip.human_pose(100)
    assert pose.stamp == pytest.approx(100 * clip.frame_time)
    for k, T in pose.keypoints.items():
        np.testing.assert_array_equal(T, clip.human_poses().keypoints[k][100])
    with pytest.raises(IndexError):
        clip.human_pose(clip.n_frames)


def test_mapping_comes_from_config(data_dir):
    clip = load_bvh(data_dir / "motion" / "cmu_131_01_start_walk_stop.bvh")
    mapping = dict(clip.mapping)
    mapping["keypoints"] = dict(mapping["keypoints"])
    mapping["keypoints"]["left_wrist"] = {"position": "LeftElbow", "rotation_from": "LeftElbow"}
    moved = load_bvh(data_dir / "motion" / "cmu_131_01_start_walk_stop.bvh", mapping=mapping)
    np.testing.assert_allclose(moved.human_poses().keypoints["left_wrist"][:, :3, 3],
                               clip.human_poses().keypoints["left_elbow"][:, :3, 3], atol=1e-12)
    bad = dict(mapping, keypoints={**mapping["keypoints"], "head": {"position": "NoSuchJoint"}})
    with pytest.raises(ValueError, match="NoSuchJoint"):
        load_bvh(data_dir / "motion" / "cmu_131_01_start_walk_stop.bvh", mapping=bad)


GOOD = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT Spine
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.01
0 0 0 0 0 0 0 0 0
1 2 3 4 5 6 7 8 9
"""


def _lines(text):
    return text.splitlines()


# GOOD's lines (1-based): 4 root OFFSET, 5 root CHANNELS, 8 Spine OFFSET, 10 End Site, 15 closing brace,
# 16 MOTION, 17 Frames, 18 Frame Time, 19-20 motion rows. L[i] is line i + 1.
@pytest.mark.parametrize("edit,line,msg", [
    (lambda L: L.__setitem__(3, "  OFFSET 0 zero 0"), 4, "OFFSET values are not numbers"),
    (lambda L: L.__setitem__(4, "  CHANNELS 6 Xposition Yposition"), 5, "CHANNELS declares 6"),
    (lambda L: L.__setitem__(4, "  CHANNELS 1 Wrotation"), 5, "unknown channel"),
    (lambda L: L.__setitem__(7, "    OFFSET 0 10"), 8, "OFFSET needs 3"),
    (lambda L: L.__setitem__(18, "0 0 0 0 0 0 0 0"), 19, "expected 9 values, got 8"),
    (lambda L: L.__setitem__(19, "1 2 3 4 5 x 7 8 9"), 20, "not a number"),
    (lambda L: L.__setitem__(19, "1 2 3 4 5 nan 7 8 9"), 20, "non-finite"),
    (lambda L: L.__setitem__(16, "Frames: two"), 17, "Frames"),
    (lambda L: L.__setitem__(17, "Frame Time: 0"), 18, "Frame Time"),
    (lambda L: L.__setitem__(9, "    Bogus"), 10, "unexpected"),
    (lambda L: L.__setitem__(14, ""), 16, "MOTION before"),
    (lambda L: L.append("1 2 3 4 5 6 7 8 9"), 21, "more motion rows"),
    (lambda L: L.pop(), 20, "2 declared but 1 rows"),
])
def test_malformed_bvh_names_the_line(tmp_path, edit, line, msg):
    L = _lines(GOOD)
    edit(L)
    p = tmp_path / "bad.bvh"
    p.write_text("\n".join(L) + "\n")
    with pytest.raises(ValueError) as ei:
        parse_bvh(p.read_text(), p)
    text = str(ei.value)
    assert re.search(rf"bad\.bvh:{line}: ", text), text
    assert msg in text


def test_good_minimal_file_parses():
    joints, ft, motion = parse_bvh(GOOD)
    assert [j.name for j in joints] == ["Hips", "Spine", "Spine_End"]
    assert ft == 0.01 and motion.shape == (2, 9)


def test_unknown_skeleton_is_a_clear_error(tmp_path):
    p = tmp_path / "x.bvh"
    p.write_text(GOOD)
    with pytest.raises(ValueError, match="no known naming convention"):
        load_bvh(p)


def test_openxr_hand_joints_where_present(data_dir):
    from robot_capture.retarget.pose import OPENXR_HAND_JOINTS

    cc = load_bvh(data_dir / "motion" / "cmu_02_05_punch_strike.bvh").human_poses()
    for side in ("left", "right"):
        names = [k[len(side) + 6:] for k in cc.keypoints if k.startswith(f"{side}_hand_")]
        assert set(names) <= set(OPENXR_HAND_JOINTS)
        assert {"wrist", "thumb_distal", "index_proximal", "little_distal"} <= set(names)
        # phalanges are a few cm long and point along the hand (-z of the wrist frame)
        a, b = cc.keypoints[f"{side}_hand_index_proximal"], cc.keypoints[f"{side}_hand_index_intermediate"]
        assert 0.015 < np.median(np.linalg.norm(b[:, :3, 3] - a[:, :3, 3], axis=1)) < 0.06
        dots = np.sum(cc.keypoints[f"{side}_hand_middle_proximal"][:, :3, 2] * cc.keypoints[f"{side}_wrist"][:, :3, 2], 1)
        assert np.median(dots) > 0.8
    cg = load_bvh(data_dir / "motion" / "cmu_131_01_start_walk_stop.bvh").human_poses()
    assert not any("_hand_" in k for k in cg.keypoints)  # cgspeed has no finger joints
