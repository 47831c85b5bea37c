"""robot_capture.kinematics: URDF -> RobotModel (FK, Jacobians) and the multi-task IK solver.

``RobotModel`` (model.py), ``IKSolver`` and tasks (ik.py, tasks.py), pure NumPy reference and
baseline (reference.py), C core ``_ik`` (``_ik.c``, built by setup.py).
"""
from .ik import (FrameTask, IKResult, IKSolver, IKStatus, OrientationTask, PositionTask, PostureTask,
                 RelativeFrameTask, VectorTask)
from .model import RobotModel

__all__ = ["RobotModel", "IKSolver", "IKResult", "IKStatus", "FrameTask", "RelativeFrameTask", "PostureTask",
           "PositionTask", "OrientationTask", "VectorTask"]
