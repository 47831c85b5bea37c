"""ROS-free tests of the synthetic camera (robot_capture.sim.stick_render / synthetic_camera)."""
import numpy as np
import pytest

from robot_capture.kinematics.model import RobotModel
from robot_capture.sim.stick_render import CameraIntrinsics, StickRenderer, body_to_optical, look_at
from robot_capture.sim.synthetic_camera import RobotView


def test_pinhole_projection_of_a_known_segment():
    K = CameraIntrinsics.from_hfov(200, 100, 90.0)
    assert K.fx == pytest.approx(100.0)
    r = StickRenderer([-1, 0], ["a", "b"], K)
    cam = look_at((0.0, 0.0, 0.0), (1.0, 0.0, 0.0))  # looking along +x of the base
    # a point 2 m ahead and 0.5 m to the left projects 25 px left of the centre
    img = r.render(np.array([[2.0, 0.5, 0.0], [2.0, 0.5, 0.0]]), cam)
    lit = np.argwhere(img.sum(axis=2) > 300)
    u, v = lit[:, 1].mean(), lit[:, 0].mean()
    assert u == pytest.approx(100 - 25, abs=1.0) and v == pytest.approx(50, abs=1.0)


def test_points_behind_the_camera_are_not_drawn():
    K = CameraIntrinsics.from_hfov(64, 48, 90.0)
    r = StickRenderer([-1, 0], ["a", "b"], K)
    cam = look_at((0.0, 0.0, 0.0), (1.0, 0.0, 0.0))
    img = r.render(np.array([[-1.0, 0.0, 0.0], [-2.0, 0.1, 0.0]]), cam)
    assert np.all(img == img[0, 0])


def test_body_to_optical_looks_along_body_x():
    T = body_to_optical(np.eye(4))
    assert np.allclose(T[:3, 2], [1, 0, 0]) and np.allclose(T[:3, 0], [0, -1, 0]) and np.allclose(T[:3, 1], [0, 0, -1])


@pytest.mark.parametrize("urdf", ["unitree_g1/g1_29dof_rev_1_0.urdf", "leju_kuavo/biped_s45.urdf", "unitree_h1/h1.urdf"])
@pytest.mark.parametrize("view", ["head", "front"])
def test_frames_change_with_the_arm_joints(data_dir, urdf, view):
    model = RobotModel.from_urdf(data_dir / "robots" / urdf)
    cam = RobotView(model, 320, 240, 90.0, view=view)
    a = cam.render().copy()
    assert cam.render().tobytes() == a.tobytes()  # deterministic for the same state
    arm = [n for n in model.joint_names if "shoulder_pitch" in n or n in ("zarm_l1_joint", "zarm_r1_joint")]
    assert len(arm) == 2
    # raise both arms forward by 1 rad: pick the sign that moves the last arm link forward (+x)
    lo, hi = model.lower, model.upper
    best = None
    for sign in (1.0, -1.0):
        q = model.neutral()
        for n in arm:
            i = model.joint_index(n)
            q[i] = np.clip(sign, lo[i], hi[i])
        x = model.fk_all(q)[-1, 0, 3] + model.fk_all(q)[:, 0, 3].max()
        if best is None or x > best[0]:
            best = (x, [float(q[model.joint_index(n)]) for n in arm])
    assert cam.set_joint_positions(arm, best[1]) == 2
    b = cam.render()
    changed = np.any(a != b, axis=2).mean()
    assert changed > 0.002, f"only {changed:.4%} of pixels changed"
    # and unknown / NaN joints are ignored
    assert cam.set_joint_positions(["nope", arm[0]], [1.0, float("nan")]) == 0


def test_head_camera_link_is_found(g1_urdf):
    cam = RobotView(RobotModel.from_urdf(g1_urdf), 64, 48)
    assert cam.camera_link == "d435_link"
    with pytest.raises(ValueError):
        RobotView(RobotModel.from_urdf(g1_urdf), 64, 48, view="side")
    with pytest.raises(KeyError):
        RobotView(RobotModel.from_urdf(g1_urdf), 64, 48, camera_link="d453_link")
