"""robot_capture.record"""
