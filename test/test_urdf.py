"""URDF parsing and RobotModel construction on every shipped URDF, plus error cases on
mutated copies of the real files (in a tmp dir)."""
import math
import re

import numpy as np
import pytest

from robot_capture.kinematics.model import RobotModel
from robot_capture.kinematics.urdf import parse_urdf, rpy_to_matrix
from robot_capture.paths import data_dir

URDFS = sorted((data_dir() / "robots").glob("*/*.urdf"))
G1 = data_dir() / "robots/unitree_g1/g1_29dof_rev_1_0.urdf"


def test_every_shipped_urdf_loads():
    assert len(URDFS) >= 7
    for path in URDFS:
        text = path.read_text()
        model = RobotModel.from_urdf(path)
        n_links = len(re.findall(r"<link\s+name=", re.sub(r"<!--.*?-->", "", text, flags=re.S)))
        assert model.nframes == n_links, path.name
        movable = [j for j in model.urdf.joints.values() if j.type in ("revolute", "continuous", "prismatic")]
        assert model.nq == len(movable) - len(model.mimic), path.name
        assert np.all(model.lower <= model.upper)
        assert np.all(model.velocity_limit > 0)
        q = model.neutral()
        assert np.all(np.isfinite(model.fk_all(q)))


def test_g1_limits_and_frames():
    model = RobotModel.from_urdf(G1)
    i = model.joint_index("left_shoulder_pitch_joint")
    assert model.lower[i] == pytest.approx(-3.0892) and model.upper[i] == pytest.approx(2.6704)
    assert model.velocity_limit[i] == pytest.approx(37)
    assert model.base_link == "pelvis"
    assert "imu_in_torso" in model.frame_names and "left_rubber_hand" in model.frame_names


def test_rpy_convention():
    R = rpy_to_matrix(0.3, -0.2, 1.1)
    def rx(a): return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    def ry(a): return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    def rz(a): return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    np.testing.assert_allclose(R, rz(1.1) @ ry(-0.2) @ rx(0.3), atol=1e-15)


def test_quirks_nameless_material_continuous_prismatic_floating(tmp_path):
    text = G1.read_text()
    text = text.replace('<material name="dark">', "<material>", 1)
    text = text.replace('type="revolute"', 'type="continuous"', 1)  # first revolute: left_hip_pitch
    text = text.replace(
        '<joint name="waist_yaw_joint" type="revolute">', '<joint name="waist_yaw_joint" type="prismatic">')
    text = text.replace("<!-- <link name=\"world\"></link>", "<link name=\"world\"></link>")
    text = text.replace("</joint> -->", "</joint>", 1)
    p = tmp_path / "quirky.urdf"
    p.write_text(text)
    urdf = parse_urdf(p)
    assert urdf.joints["floating_base_joint"].type == "floating"
    model = RobotModel.from_urdf(p)
    assert model.base_link == "world"
    i = model.joint_index("left_hip_pitch_joint")
    assert model.lower[i] == -math.inf and model.upper[i] == math.inf
    assert model.neutral()[i] == 0.0
    sub = RobotModel.from_urdf(p, base_link="pelvis")
    assert sub.nframes == model.nframes - 1


def _mutate(tmp_path, old, new, count=1):
    text = G1.read_text()
    assert old in text
    p = tmp_path / "bad.urdf"
    p.write_text(text.replace(old, new, count))
    return p


@pytest.mark.parametrize(
    "old,new,pattern",
    [
        ('<parent link="torso_link"/>', '<parent link="torso_lnk"/>', r"<joint name='logo_joint'>: <parent link='torso_lnk'> names no <link>; did you mean 'torso_link'"),
        ('<axis xyz="0 1 0"/>', '<axis xyz="0 one 0"/>', r"<axis> of joint 'left_hip_pitch_joint'.*not numeric"),
        ('<axis xyz="0 1 0"/>', '<axis xyz="0 0 0"/>', r"<axis>.*zero vector"),
        ('type="revolute"', 'type="hinge"', r"<joint name='left_hip_pitch_joint'>: type='hinge'"),
        ('<limit lower="-3.0892" upper="2.6704"', '<limit lower="3" upper="2"', r"<limit>.*lower=3.0 > upper=2.0"),
        ('<origin xyz="0.0039563 0.10022 0.24778"', '<origin xyz="0.0039563 0.10022"', r"<origin>.*needs 3"),
        ('<child link="left_shoulder_pitch_link"/>', '<child link="pelvis"/>', r"pelvis.*already has parent|root"),
        ("</robot>", "", r"malformed XML"),
        ('<joint name="left_elbow_joint"', '<joint', r"<joint>: missing 'name'"),
        ('<child link="left_elbow_link"/>', "", r"left_elbow_joint.*missing <child"),
    ],
)
def test_malformed_urdf_raises_value_error_naming_element(tmp_path, old, new, pattern):
    with pytest.raises(ValueError, match=pattern):
        RobotModel.from_urdf(_mutate(tmp_path, old, new))


def test_unknown_mimic_master(tmp_path):
    p = _mutate(tmp_path, '<axis xyz="0 1 0"/>', '<axis xyz="0 1 0"/><mimic joint="left_hip_pich_joint"/>')
    with pytest.raises(ValueError, match=r"<mimic> of joint 'left_hip_pitch_joint'.*left_hip_pich_joint"):
        parse_urdf(p)


def test_unknown_names_raise_key_error_with_suggestion():
    model = RobotModel.from_urdf(G1)
    with pytest.raises(KeyError, match="left_wrist_yaw_link"):
        model.fk(model.neutral(), "left_wrist_yaw_lnk")
    with pytest.raises(KeyError, match="left_elbow_joint"):
        model.joint_index("left_elbo_joint")
    with pytest.raises(KeyError, match="torso_link"):
        RobotModel.from_urdf(G1, base_link="torso_lnk")
    with pytest.raises(KeyError, match="waist_yaw_joint"):
        RobotModel.from_urdf(G1, locked_joints=["waist_yaw_jnt"])


def test_locked_value_outside_limits():
    with pytest.raises(ValueError, match="waist_roll_joint"):
        RobotModel.from_urdf(G1, locked_joints={"waist_roll_joint": 3.0})


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        RobotModel.from_urdf("/nonexistent/robot.urdf")
