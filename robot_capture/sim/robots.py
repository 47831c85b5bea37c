"""Which robot a simulator shows: a robot mapping name/YAML, or a bare URDF.

The simulators model the whole robot (every movable joint), not the retargeting
sub-problem: joints the mapping locks (the legs) are simulated at their locked values, except
the joints of the mapping's ``hands:`` (commanded by the hand retargeter).
"""
from __future__ import annotations

from pathlib import Path


def load_robot(robot: str = "g1", urdf: str = ""):
    """Return ``(model, locked)`` for a simulator.

    Args:
        robot: robot mapping name (``config/robots/<robot>.yaml``) or path to a mapping YAML;
            a path ending in ``.urdf`` is taken as ``urdf``.
        urdf: URDF path; when given it overrides the mapping's URDF and nothing is locked.

    Returns:
        ``model``: :class:`~robot_capture.kinematics.model.RobotModel` with every movable joint
        active; ``locked``: ``{joint: value}`` (rad) the mapping locks.

    Raises:
        FileNotFoundError: the URDF does not exist. KeyError: unknown robot name.
        ValueError: malformed URDF or mapping.
    """
    from robot_capture.kinematics.model import RobotModel

    if not urdf and str(robot).endswith(".urdf"):
        urdf = robot
    if urdf:
        path = Path(urdf)
        if not path.is_file():
            raise FileNotFoundError(f"URDF {path} does not exist")
        return RobotModel.from_urdf(path), {}
    from robot_capture.retarget.mapping import RobotMapping

    mapping = RobotMapping.load(robot)
    reduced = mapping.robot_model()
    full = RobotModel(reduced.urdf, base_link=reduced.base_link)
    locked = dict(reduced.locked)
    if mapping.hands:  # hand joints: locked for the arm IK, commanded by the hand retargeter, so simulated
        from robot_capture.hands import load_hand

        for name in mapping.hands.values():
            hand = load_hand(name)
            for j in hand.command(hand.model.neutral()):
                locked.pop(j, None)
    return full, locked
