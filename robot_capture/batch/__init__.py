"""Batch processing of a centre's archive: one job per bag, on a process pool or a Ray cluster.

* :mod:`~robot_capture.batch.ledger`: the SQLite ledger (one row per stage and bag).
* :mod:`~robot_capture.batch.fingerprint`: what a bag's content is (sha256, cheap fingerprint).
* :mod:`~robot_capture.batch.jobs`: stage -> job function (the single-bag commands' functions).
* :mod:`~robot_capture.batch.stages`: per-stage checks, pre-pass and final step (export merge).
* :mod:`~robot_capture.batch.pool`: local worker processes with worker-death retry.
* :mod:`~robot_capture.batch.ray_backend`: Ray tasks on an existing cluster (``[ray]`` extra).
* :mod:`~robot_capture.batch.runner`: :func:`run_batch`, progress, summary.

ROS-free (a stage's job function may import rclpy, in the worker). DESIGN.md "batch".
"""
