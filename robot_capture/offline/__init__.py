"""robot_capture.offline: compositions of the ROS-free cores for offline work (e.g. re-retargeting
a recorded bag onto another robot: ``bag`` + ``retarget``), so that neither core knows the other."""
