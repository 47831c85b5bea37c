"""robot_capture.sim: ROS-free logic of the floor simulators.

* ``robot_sim``: first-order joint follower with URDF position/velocity limits
  (the logic of ``robot_sim_node``).
* ``stick_render``: pinhole stick-figure renderer of a robot's kinematic tree
  (the synthetic source of ``camera_node``).

Nothing here imports rclpy.
"""
