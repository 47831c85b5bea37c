"""robot_capture.sim: ROS-free logic of the floor simulators (nothing here imports rclpy).

* ``robot_sim``: first-order joint follower with URDF position/velocity limits (robot_sim_node).
* ``robots``: which robot a simulator shows (mapping name/YAML or URDF; locked joints).
* ``ticker``: fixed-rate sample grid with catch-up (robot_sim_node, mocap_replay_node).
* ``replay``: a BVH clip as per-frame exoskeleton readings and VR poses (mocap_replay_node).
* ``stick_render``: pinhole stick-figure renderer of a kinematic tree.
* ``synthetic_camera``: the robot's head (or an external) camera view from FK (camera_node).
"""
