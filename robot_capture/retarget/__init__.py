"""robot_capture.retarget: human motion -> humanoid joint commands (ROS-free core).

Modules (one concern each): ``pose`` (HumanPose, keypoint conventions), ``bvh`` (BVH clips),
``exo`` (exoskeleton arm model: FK and analytic inverse), ``vr`` (VR trackers), ``calibration``
(per-operator lengths and rotation offsets), ``mapping`` (robot YAML), ``filters`` (One-Euro,
critically damped, rate limits; C hot path in ``_filters.c``), ``direct`` (direct joint mode),
``retargeter`` (the pipeline), ``offline`` (clips, batch twin of the live step), ``live`` (the
session behind retarget_node). Nothing here imports rclpy or knows about bags.
"""
