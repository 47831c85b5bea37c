"""robot_capture: ROS 2 robot-side recording stack for humanoid teleoperation data.

Layout (arrows point down; the core never imports rclpy):

* ``kinematics``: URDF -> kinematic model, C IK solver (``_ik.c``), task API.
* ``retarget``: human motion sources -> HumanPose -> robot joint commands.
* ``bag``: rosbag2 bag directories (metadata.yaml + MCAP): writer, reader, recover.
* ``record``: episodes and the ROS-free Recorder (serialized messages -> bags).
* ``floor``: the station graph (which nodes, which parameters) and its launcher.
* ``nodes``: thin rclpy shells over the core.
* ``cli``: ``robot-capture <verb>``.
"""

__version__ = "0.1.0"
