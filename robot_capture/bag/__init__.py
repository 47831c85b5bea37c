"""robot_capture.bag"""
