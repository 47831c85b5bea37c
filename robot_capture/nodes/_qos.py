"""Shared rclpy helpers for the recorder and player nodes (imports rclpy).

* :func:`qos_from_dict` turns a rosbag2 QoS dict (``robot_capture.bag.qos``) into
  an ``rclpy.qos.QoSProfile``; durations that are infinite or zero are left at
  rclpy's defaults (rosbag2 does the same when it adapts a request).
* :func:`offered_qos` lists the QoS profiles the publishers of a topic offer, as
  rosbag2 dicts, from ``Node.get_publishers_info_by_topic``.
* :func:`import_message` imports ``pkg/msg/Type`` (None if not installed).
* :func:`run_node` spins a node until SIGINT/SIGTERM and always runs its cleanup.
"""
from __future__ import annotations

import importlib

from robot_capture.bag.qos import INFINITE, from_rclpy

_INF_NS = INFINITE["sec"] * 1_000_000_000 + INFINITE["nsec"]


def import_message(type_name: str):
    """The Python message class for ``pkg/msg/Type`` (or ``pkg/Type``); None if unavailable."""
    parts = type_name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(p.isidentifier() for p in parts):
        return None
    try:
        return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])
    except (ImportError, AttributeError):
        return None
    except Exception:  # noqa: BLE001 - a broken interface package must not stop the recorder
        return None


def qos_from_dict(d: dict, depth: int | None = None):
    """``rclpy.qos.QoSProfile`` for a rosbag2 QoS dict (``history``, ``depth``, ``reliability``,
    ``durability``, ``deadline``, ``lifespan``, ``liveliness``, ...). ``depth`` overrides."""
    from rclpy.duration import Duration
    from rclpy.qos import (DurabilityPolicy, HistoryPolicy, LivelinessPolicy, QoSProfile,
                           ReliabilityPolicy)

    def enum(cls, key, default):
        value = str(d.get(key, default)).upper()
        return cls[value] if value in cls.__members__ and value != "UNKNOWN" else cls[default.upper()]

    prof = QoSProfile(
        history=enum(HistoryPolicy, "history", "keep_last"),
        depth=int(depth if depth is not None else d.get("depth", 10) or 10),
        reliability=enum(ReliabilityPolicy, "reliability", "reliable"),
        durability=enum(DurabilityPolicy, "durability", "volatile"),
        liveliness=enum(LivelinessPolicy, "liveliness", "system_default"),
    )
    for key in ("deadline", "lifespan", "liveliness_lease_duration"):
        v = d.get(key)
        if isinstance(v, dict):
            ns = int(v.get("sec", 0)) * 1_000_000_000 + int(v.get("nsec", 0))
            if 0 < ns < _INF_NS:
                setattr(prof, key, Duration(nanoseconds=ns))
    return prof


def offered_qos(node, topic: str, type_name: str | None = None) -> list[dict]:
    """QoS profiles offered by the publishers of ``topic`` (rosbag2 dicts), optionally of one type."""
    out = []
    for info in node.get_publishers_info_by_topic(topic):
        if type_name is None or info.topic_type == type_name:
            out.append(from_rclpy(info.qos_profile))
    return out


def run_node(node_factory, cleanup_attr: str = "shutdown", args=None, parameter_overrides=None) -> int:
    """``rclpy.init(args)``, build the node, spin it until SIGINT/SIGTERM, then call
    ``node.<cleanup_attr>(abort)`` and shut rclpy down. Returns the exit code (0, or 1 if the
    node could not be built: the error is printed).

    The signals are handled in Python (rclpy's handlers are off): the first one only ends the
    spin loop (``spin_once`` with a 0.05 s timeout), so the cleanup runs while the ROS context
    is still up (the recorder takes what waits in its readers and closes the episode at the
    signal). ``abort`` (threading.Event) is set by a SIGTERM that comes after the first signal:
    the cleanup then skips what it may skip (the recorder's QA wait). A repeated SIGINT is
    reported and otherwise ignored (a terminal Ctrl-C and ``ros2 launch`` may both send one)."""
    import inspect
    import signal
    import sys
    import threading

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from robot_capture.bag.errors import BagError
    from robot_capture.ros_env import ensure_ament_prefix

    ensure_ament_prefix()
    got: list[int] = []
    abort = threading.Event()

    def on_signal(signum, _frame):
        if got and signum == signal.SIGTERM:
            abort.set()
        elif got:
            print(f"got {signal.Signals(signum).name} again: already shutting down (SIGTERM to skip the wait)",
                  file=sys.stderr)
        got.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    code = 0
    try:
        node = node_factory(parameter_overrides)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not got and rclpy.ok():
            executor.spin_once(timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, OSError, BagError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except Exception:  # noqa: BLE001 - see below
        # the context was shut down (rclpy.shutdown elsewhere) while the executor built its next wait
        # set: rclpy raises RCLError ("the given context is not valid") instead of
        # ExternalShutdownException. A clean stop, not a crash; anything else is re-raised.
        if node is None or rclpy.ok():
            raise
    finally:
        try:
            if node is not None:
                try:
                    cleanup = getattr(node, cleanup_attr)
                    cleanup(abort) if inspect.signature(cleanup).parameters else cleanup()
                finally:
                    node.destroy_node()
            rclpy.try_shutdown()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
    return code
