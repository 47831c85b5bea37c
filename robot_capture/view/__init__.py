"""The robot for viewers and the live view (issue 21).

``transforms.py`` (ROS-free): link transforms from a URDF and joint states, as
``robot_state_publisher`` does. ``server.py``: the station's topics over ``foxglove-sdk``'s
WebSocket server (``robot-capture view``).
"""
