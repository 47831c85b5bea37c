"""robot_capture.retarget"""
