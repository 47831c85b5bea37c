"""Shared ``main()`` plumbing for the node shells: init, spin, clean shutdown.

SIGINT and SIGTERM are handled in Python (rclpy's own handlers are off): the handler only
sets a flag, the spin loop (``spin_once`` with a 0.1 s timeout) sees it, and the main
thread then destroys the node and shuts the context down. So no callback can ever run
against a context that a signal handler already shut down, and every node exits with
status 0 within ~0.1 s of either signal.
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Callable

from robot_capture.ros_env import ensure_ament_prefix


class StartupError(RuntimeError):
    """A node cannot start (bad parameter, missing device); ``run`` logs it and returns 1."""


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
    """Init rclpy with ``args`` (``--ros-args ...`` honoured), build the node, spin until a signal.

    Returns:
        0 on SIGINT/SIGTERM or shutdown, 1 if the node failed to start (the error is logged).
    """
    ensure_ament_prefix()
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.signals import SignalHandlerOptions

    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(args=args if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    status = 0
    try:
        node = node_factory()
        ex = make_executor(executor)
        ex.add_node(node)
        try:
            # spin_once in a loop, not spin(): the EventsExecutor's spin() does not return on
            # context shutdown (rclpy 9.x, measured here), and the loop sees the stop flag.
            while not stop.is_set() and rclpy.ok():
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
        for s, h in previous.items():
            signal.signal(s, h)
    return status


def declare(node, name: str, default, description: str):
    """Declare a parameter that accepts any YAML/CLI type and return it as ``type(default)``.

    ``rate_hz: 100`` (an int) thus works for a float parameter, ``source: 0`` for a string one,
    and ``"true"``/``"false"`` strings for booleans.

    Raises:
        StartupError: the value cannot be converted (message names the parameter).
    """
    from rcl_interfaces.msg import ParameterDescriptor

    value = node.declare_parameter(
        name, default, ParameterDescriptor(description=description, dynamic_typing=True)).value
    kind = type(default)
    try:
        if kind is bool and isinstance(value, str):
            low = value.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(value)
            return low in ("true", "1", "yes", "on")
        if kind in (int, float) and isinstance(value, bool):
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise StartupError(f"parameter {name!r}: expected {kind.__name__}, got {value!r}") from None
