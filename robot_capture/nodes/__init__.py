"""robot_capture.nodes"""
