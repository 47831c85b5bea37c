"""robot_capture.view.transforms: robot_state_publisher's transforms against the kinematics FK."""
from __future__ import annotations

import math

import numpy as np
import pytest

from robot_capture.kinematics import reference
from robot_capture.sim.robots import load_robot
from robot_capture.view.transforms import RobotTransforms

TINY = """<robot name="tiny">
  <link name="base"/><link name="a"/><link name="b"/><link name="c"/><link name="cam"/>
  <joint name="j_a" type="revolute"><parent link="base"/><child link="a"/>
    <origin xyz="0 0 0.1"/><axis xyz="0 0 1"/><limit lower="-3" upper="3" velocity="1" effort="1"/></joint>
  <joint name="j_b" type="prismatic"><parent link="a"/><child link="b"/>
    <origin xyz="0.2 0 0" rpy="0 0.3 0"/><axis xyz="1 0 0"/><limit lower="-1" upper="1" velocity="1" effort="1"/></joint>
  <joint name="j_c" type="revolute"><parent link="a"/><child link="c"/>
    <axis xyz="0 1 0"/><limit lower="-3" upper="3" velocity="1" effort="1"/>
    <mimic joint="j_a" multiplier="-2" offset="0.5"/></joint>
  <joint name="j_cam" type="fixed"><parent link="base"/><child link="cam"/><origin xyz="0.05 0 0.3" rpy="0 0.5 0"/></joint>
</robot>"""


@pytest.mark.parametrize("robot", ["g1", "h1", "kuavo"])
def test_transforms_match_fk_on_shipped_robots(robot):
    model, _locked = load_robot(robot)
    tf = RobotTransforms(model.urdf)
    rng = np.random.default_rng(7)
    for _ in range(3):
        q = model.random_configuration(rng)
        up = tf.update(model.joint_names, q)
        assert not up.unknown and not up.held
        assert len(up.transforms) == len(tf.moving) == model.nq
        poses = tf.link_poses()
        fk = model.fk_all(q)
        values = model.joint_positions(q)
        assert set(poses) >= set(model.frame_names)
        for i, frame in enumerate(model.frame_names):
            np.testing.assert_allclose(poses[frame], fk[i], atol=1e-9, err_msg=f"{robot} {frame}")
            ref = reference.urdf_fk(model.urdf, values, frame, model.base_link)
            np.testing.assert_allclose(poses[frame], ref, atol=1e-9, err_msg=f"{robot} {frame}")


def test_static_fixed_joints_once_and_frames_named_parent_child():
    tf = RobotTransforms(TINY)
    assert tf.root == "base"
    assert [(t.parent, t.child) for t in tf.static] == [("base", "cam")]
    cam = tf.static[0]
    np.testing.assert_allclose(cam.translation, [0.05, 0, 0.3])
    # rpy (0, 0.5, 0): a pitch of 0.5 rad about y -> quaternion (0, sin .25, 0, cos .25)
    np.testing.assert_allclose(cam.quaternion, [0, math.sin(0.25), 0, math.cos(0.25)], atol=1e-12)
    up = tf.update(["j_a", "j_b"], [0.4, 0.1])
    assert [(t.parent, t.child) for t in up.transforms] == [("base", "a"), ("a", "b"), ("a", "c")]


def test_mimic_follows_master_and_its_own_entry_is_ignored():
    tf = RobotTransforms(TINY)
    up = tf.update(["j_a", "j_b", "j_c"], [0.4, 0.1, 9.0])
    c = {t.child: t for t in up.transforms}["c"]
    expected = reference.axis_angle([0, 1, 0], -2 * 0.4 + 0.5)
    np.testing.assert_allclose(c.matrix[:3, :3], expected, atol=1e-12)
    ref = reference.urdf_fk(tf.urdf, {"j_a": 0.4, "j_b": 0.1, "j_c": -0.3}, "c", "base")
    np.testing.assert_allclose(tf.link_poses()["c"], ref, atol=1e-12)


def test_unknown_names_ignored_and_counted():
    tf = RobotTransforms(TINY)
    up = tf.update(["j_a", "wheel", "j_cam", "j_b", "wheel"], [0.1, 1.0, 2.0, 0.0, 1.0])
    assert up.unknown == ["wheel", "wheel"] and tf.unknown_total == 2
    assert len(up.transforms) == 3  # j_cam is a fixed joint: ignored, not unknown, not moved


def test_nan_position_holds_the_last_transform_and_is_flagged():
    tf = RobotTransforms(TINY)
    first = {t.child: t.matrix for t in tf.update(["j_a", "j_b"], [0.4, 0.1]).transforms}
    up = tf.update(["j_a", "j_b"], [float("nan"), 0.2])
    after = {t.child: t.matrix for t in up.transforms}
    assert up.held == ["j_a", "j_c"] and tf.held_total == 1
    np.testing.assert_array_equal(after["a"], first["a"])
    np.testing.assert_array_equal(after["c"], first["c"])  # the mimic follows its held master
    assert not np.allclose(after["b"], first["b"])
    for T in after.values():
        assert np.isfinite(T).all()


def test_a_joint_never_seen_has_no_transform_yet():
    tf = RobotTransforms(TINY)
    up = tf.update(["j_b"], [float("inf")])
    assert up.transforms == [] and up.held == ["j_b"]
    up = tf.update(["j_a"], [0.0])
    assert [t.child for t in up.transforms] == ["a", "c"]
    assert "b" not in tf.link_poses()


def test_bad_inputs():
    with pytest.raises(ValueError, match="2 names but 1 positions"):
        RobotTransforms(TINY).update(["j_a", "j_b"], [0.0])
    with pytest.raises(FileNotFoundError):
        RobotTransforms("/nonexistent/robot.urdf")
    loop = TINY.replace('<mimic joint="j_a"', '<mimic joint="j_c"')
    with pytest.raises(ValueError, match="mimic chain forms a loop"):
        RobotTransforms(loop)
