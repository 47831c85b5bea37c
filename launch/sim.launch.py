"""The training-floor station plus simulators: mocap_replay (a real BVH clip as
exoskeleton and VR input), robot_sim (the humanoid following the command) and
synthetic cameras rendered from the robot's FK.

    ros2 launch robot_capture sim.launch.py robot:=g1 clip:=cmu_02_05_punch_strike.bvh

Arguments: those of capture.launch.py plus clip and loop (`--show-args`). The node list
is built by robot_capture.floor.graph, the same code `robot-capture up --sim` runs.
"""
from robot_capture.floor.ros_launch import generate


def generate_launch_description():
    return generate(sim=True)
