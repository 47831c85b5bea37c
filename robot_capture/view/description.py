"""The robot model for viewers: the URDF text served as ``/robot_description`` (ROS-free).

``/robot_description`` is a ``std_msgs/String`` holding the URDF XML, published once with
transient-local durability (latched), as ``robot_state_publisher`` does; RViz's RobotModel
display and Foxglove's 3D panel read it. Mesh ``package://`` URIs are passed on unchanged.
"""
from __future__ import annotations

from pathlib import Path

TOPIC = "/robot_description"
TYPE = "std_msgs/msg/String"
# rosbag2-style QoS dict (robot_capture.bag.qos) of a latched topic: reliable, transient local, depth 1
LATCHED_QOS = {"history": "keep_last", "depth": 1, "reliability": "reliable", "durability": "transient_local"}


def urdf_path(robot: str = "g1", urdf: str = "") -> Path:
    """The URDF file of a robot, resolved as the simulators resolve it (:func:`robot_capture.sim.robots.load_robot`).

    Args:
        robot: robot mapping name (``config/robots/<robot>.yaml``), a mapping YAML path, or a ``.urdf`` path.
        urdf: URDF path; overrides the mapping's.
    Raises:
        FileNotFoundError: the URDF does not exist. KeyError: unknown robot name (closest names suggested).
        ValueError: malformed mapping.
    """
    if not urdf and str(robot).endswith(".urdf"):
        urdf = robot
    if urdf:
        path = Path(urdf).expanduser()
    else:
        from robot_capture.retarget.mapping import RobotMapping

        path = Path(RobotMapping.load(robot).urdf)
    if not path.is_file():
        raise FileNotFoundError(f"URDF {path} does not exist")
    return path


def robot_description(robot: str = "g1", urdf: str = "") -> str:
    """The URDF XML text of a robot (see :func:`urdf_path` for the arguments and errors)."""
    return urdf_path(robot, urdf).read_text(encoding="utf-8")


def urdf_from_attachments(attachments: dict[str, tuple[str, bytes]]) -> tuple[str, str] | None:
    """``(name, xml)`` of the URDF a bag carries as an MCAP attachment (the recorder attaches the
    robot's URDF by file name, ``*.urdf``), or None when it has none. Several: the first by name.

    Args:
        attachments: ``BagReader.attachments()``: name -> (media_type, data).
    """
    names = sorted(n for n in attachments if n.lower().endswith(".urdf"))
    for name in names:
        try:
            text = attachments[name][1].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if text.lstrip().startswith("<"):
            return name, text
    return None
