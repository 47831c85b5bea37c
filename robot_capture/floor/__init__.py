"""robot_capture.floor"""
