"""FK and frame Jacobians of RobotModel against independent references, on real URDFs.

References: (a) ``reference.urdf_fk``, a separately written FK that walks the parsed URDF
joints by name; (b) central finite differences of FK; (c) the NumPy model code vs the C
extension. Tolerance 1e-9 everywhere.
"""
import numpy as np
import pytest

from robot_capture.kinematics import reference
from robot_capture.kinematics.model import RobotModel
from robot_capture.paths import data_dir

ROBOTS = {
    "g1": "unitree_g1/g1_29dof_rev_1_0.urdf",
    "g1_hand": "unitree_g1/g1_29dof_with_hand_rev_1_0.urdf",
    "h1": "unitree_h1/h1.urdf",
    "h1_hand": "unitree_h1/h1_with_hand.urdf",  # mimic joints
    "kuavo": "leju_kuavo/biped_s45.urdf",
}


def load(key, **kw):
    return RobotModel.from_urdf(data_dir() / "robots" / ROBOTS[key], **kw)


def configs(model, n=5, seed=0):
    rng = np.random.default_rng(seed)
    return [model.random_configuration(rng) for _ in range(n)]


@pytest.mark.parametrize("key", list(ROBOTS))
def test_fk_matches_independent_urdf_walk(key):
    model = load(key)
    for q in configs(model):
        values = model.joint_positions(q)
        poses = model.fk_all(q)
        for i, frame in enumerate(model.frame_names):
            ref = reference.urdf_fk(model.urdf, values, frame, model.base_link)
            np.testing.assert_allclose(poses[i], ref, atol=1e-9, err_msg=frame)


def test_mimic_joints_follow_master():
    model = load("h1_hand")
    assert model.mimic, "h1_with_hand has <mimic> joints"
    q = configs(model, 1)[0]
    vals = model.joint_positions(q)
    for name, (master, mult, off) in model.mimic.items():
        assert name not in model.joint_names
        assert vals[name] == pytest.approx(mult * vals[master] + off, abs=1e-12)


def _fd_jacobian(model, q, frame, h=1e-5):
    J = np.zeros((6, model.nq))
    for k in range(model.nq):
        dq = np.zeros(model.nq)
        dq[k] = h
        Tp, Tm = model.fk(q + dq, frame), model.fk(q - dq, frame)
        J[:3, k] = (Tp[:3, 3] - Tm[:3, 3]) / (2 * h)
        J[3:, k] = reference.log_so3(Tp[:3, :3] @ Tm[:3, :3].T) / (2 * h)
    return J


@pytest.mark.parametrize("key", ["g1", "h1", "h1_hand", "kuavo"])
def test_jacobian_matches_central_finite_differences(key):
    model = load(key)
    rng = np.random.default_rng(1)
    frames = [model.frame_names[i] for i in rng.choice(model.nframes, 6, replace=False)]
    frames += [model.frame_names[-1]]
    for q in configs(model, 3, seed=2):
        for frame in frames:
            np.testing.assert_allclose(model.jacobian(q, frame), _fd_jacobian(model, q, frame), atol=1e-9,
                                       err_msg=f"{key}:{frame}")


@pytest.mark.parametrize("key", ["g1", "h1", "h1_hand", "kuavo"])
def test_c_extension_matches_numpy(key):
    model = load(key)
    assert model._kin is not None, "C extension robot_capture.kinematics._ik is not built"
    for q in configs(model, 4, seed=3):
        np.testing.assert_allclose(model.fk_all(q), reference.fk_all(model, q), atol=1e-12)
        for i in range(model.nframes):
            np.testing.assert_allclose(model.jacobian(q, model.frame_names[i]), reference.jacobian(model, q, i),
                                       atol=1e-12)


def test_locked_joints_fold_into_fk():
    full = load("g1")
    legs = [n for n in full.joint_names if "hip" in n or "knee" in n or "ankle" in n]
    locked = {n: 0.1 for n in legs}
    model = load("g1", locked_joints=locked)
    assert model.nq == full.nq - len(legs)
    q = configs(model, 1)[0]
    qfull = np.array([locked.get(n, 0.0) for n in full.joint_names])
    for i, n in enumerate(model.joint_names):
        qfull[full.joint_index(n)] = q[i]
    for frame in ("left_ankle_roll_link", "right_wrist_yaw_link"):
        np.testing.assert_allclose(model.fk(q, frame), full.fk(qfull, frame), atol=1e-12)
    # a list locks at 0 clipped into the limits
    m2 = load("g1", locked_joints=legs)
    assert set(m2.locked) == set(legs)
    for n, v in m2.locked.items():
        j = m2.urdf.joints[n]
        assert j.lower <= v <= j.upper


def test_sub_tree_base_link():
    full = load("g1")
    model = load("g1", base_link="torso_link")
    assert model.frame_names[0] == "torso_link"
    assert "left_hip_pitch_link" not in model.frame_names
    assert set(model.joint_names) < set(full.joint_names)
    q = configs(model, 1)[0]
    qfull = full.neutral()
    for i, n in enumerate(model.joint_names):
        qfull[full.joint_index(n)] = q[i]
    T_pt = full.fk(qfull, "torso_link")
    np.testing.assert_allclose(model.fk(q, "left_wrist_yaw_link"),
                               np.linalg.inv(T_pt) @ full.fk(qfull, "left_wrist_yaw_link"), atol=1e-12)
