"""robot_capture.kinematics: URDF -> RobotModel (FK, Jacobians) and the multi-task IK solver.

``RobotModel`` (model.py), ``IKSolver`` and tasks (ik.py), pure NumPy reference (reference.py),
C core ``_ik`` (``_ik.c``, built by setup.py).
"""
from .model import RobotModel

__all__ = ["RobotModel"]
