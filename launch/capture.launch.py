"""The training-floor station: retarget node, recorder node and camera nodes.

    ros2 launch robot_capture capture.launch.py robot:=g1 task:=pick_cup operator:=alice \
        output_dir:=/data/episodes topics:="/joint_states,/retarget/joint_command" cameras:=none

Arguments: config, robot, output_dir, task, operator, scene, topics, cameras
(`ros2 launch robot_capture capture.launch.py --show-args`). The node list is built by
robot_capture.floor.graph from config/floor.yaml, the same code `robot-capture up` runs.
"""
from robot_capture.floor.ros_launch import generate


def generate_launch_description():
    return generate(sim=False)
