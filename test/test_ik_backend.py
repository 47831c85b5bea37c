"""IKSolver never falls back silently: backend "c" without the built extension is an ImportError
that says how to build; the NumPy twin runs only when asked for by name."""
import numpy as np
import pytest

from robot_capture.kinematics import ik
from robot_capture.kinematics.ik import FrameTask, IKSolver
from robot_capture.kinematics.model import RobotModel
from robot_capture.paths import data_dir

G1 = data_dir() / "robots/unitree_g1/g1_29dof_rev_1_0.urdf"


@pytest.fixture(scope="module")
def g1():
    return RobotModel.from_urdf(G1)


def test_c_backend_without_extension_raises_with_build_hint(g1, monkeypatch):
    monkeypatch.setattr(ik, "_ik", None)
    with pytest.raises(ImportError, match=r"pip install \."):
        IKSolver(g1, [FrameTask("left_wrist_yaw_link")])
    with pytest.raises(ImportError, match="backend=\"numpy\""):
        IKSolver(g1, [FrameTask("left_wrist_yaw_link")], backend="c")


def test_numpy_backend_only_by_name(g1, monkeypatch):
    monkeypatch.setattr(ik, "_ik", None)
    s = IKSolver(g1, [FrameTask("left_wrist_yaw_link")], backend="numpy")
    assert s.backend == "numpy"
    q = g1.neutral()
    r = s.solve(q, [g1.fk(q, "left_wrist_yaw_link")])
    np.testing.assert_allclose(r.q, q, atol=1e-9)  # already at the target: stays put


def test_installed_default_is_c(g1):
    assert IKSolver(g1, [FrameTask("left_wrist_yaw_link")]).backend == "c"


def test_unknown_backend_is_value_error(g1):
    with pytest.raises(ValueError, match="backend"):
        IKSolver(g1, [FrameTask("left_wrist_yaw_link")], backend="fortran")
