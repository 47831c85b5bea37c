"""robot_capture.kinematics"""
