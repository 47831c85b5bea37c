"""Headset teleoperation (issue 19), ROS-free core: the WebSocket pose protocol (``protocol``), WebXR ->
REP-103 (``convert``, through ``retarget/hand_tracking``), the headset clock (``clock``), connections
(``session``), per-window figures (``latency``), the certificate (``certs``) and the server (``server``).
The ROS shell is ``nodes/xr_node.py``; the verb ``robot-capture xr`` (``cli/xr.py``)."""
