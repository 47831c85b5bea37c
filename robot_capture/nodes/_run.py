"""Shared ``main()`` plumbing for the node shells: init, spin, clean shutdown.

``rclpy.init`` installs handlers for SIGINT and SIGTERM that shut the context down;
spinning then ends with ``ExternalShutdownException`` (or ``KeyboardInterrupt``), and the
node is destroyed before the context is shut down, so every node exits with status 0 on
either signal.
"""
from __future__ import annotations

import sys
from typing import Callable

from robot_capture.ros_env import ensure_ament_prefix


def make_executor(kind: str = "events"):
    """``events`` (rclpy's EventsExecutor: lower latency, ~2-5x the message rate) or ``single``."""
    from rclpy.executors import SingleThreadedExecutor

    if kind == "events":
        try:
            from rclpy.experimental import EventsExecutor

            return EventsExecutor()
        except ImportError:  # older rclpy
            pass
    return SingleThreadedExecutor()


def run(node_factory: Callable[[], object], args=None, executor: str = "events") -> int:
    """Init rclpy with ``args`` (``--ros-args ...`` honoured), build the node, spin until shutdown.

    Returns:
        0 on a signal or normal shutdown, 1 if the node failed to start (the error is logged).
    """
    ensure_ament_prefix()
    import rclpy
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    status = 0
    try:
        node = node_factory()
        ex = make_executor(executor)
        ex.add_node(node)
        try:
            # spin_once in a loop, not spin(): the EventsExecutor's spin() does not return
            # when the signal handler shuts the context down (rclpy 9.x, measured here).
            while rclpy.ok():
                ex.spin_once(timeout_sec=0.1)
        finally:
            ex.shutdown()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except StartupError as e:
        (node.get_logger() if node else rclpy.logging.get_logger("robot_capture")).error(str(e))
        status = 1
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return status


class StartupError(RuntimeError):
    """A node cannot start (bad parameter, missing device); ``run`` logs it and returns 1."""
