"""Polled subscriptions: taken by a timer, never woken up per message.

rclpy's executors run a Python callback for each message of each subscription they spin,
and the SingleThreadedExecutor rebuilds its whole wait set for each. A 10 kHz input flood
then starves the retarget node's command timer (measured: 52-80 Hz of commands instead of
100), and 1.2 kHz of small messages cost the recorder half a core in wake-ups alone.

:func:`input_node` makes a companion node, ``_<name>_input`` (hidden, as ``ros2 node list``
hides names that start with ``_``) in the owner's namespace, that
no executor spins: its subscriptions (KEEP_LAST 1) keep only the newest message in the
DDS reader (C++), and the owner's timer takes it with :func:`take` (the recorder: every waiting message of its
small-message topics, every ``take_period_s``). The flood then costs
the process the middleware's receive path only. The companion gets the process's
``--ros-args`` (topic remaps, namespace), except that its name is its own, so a
``__node`` remap never gives two nodes the same name. (A callback group that refuses
subscriptions keeps them out of the SingleThreadedExecutor's wait set, but the wait then
returns at once in a busy loop, 94 % of a core, rclpy 9.1; and the EventsExecutor does
not ask the group.)
"""
from __future__ import annotations

__all__ = ["input_node", "take"]


def input_node(owner):
    """The companion node of ``owner`` (an rclpy Node) for polled subscriptions.

    Not spun by any executor; destroy it with the owner. No parameter services, no rosout.
    """
    from rclpy.node import Node

    name = f"_{owner.get_name()}_input"
    return Node(name, namespace=owner.get_namespace(), context=owner.context,
                cli_args=["--ros-args", "-r", f"__node:={name}"],
                start_parameter_services=False, enable_rosout=False)


def take(sub, msg_type, raw: bool = True):
    """Take the oldest message waiting in ``sub``'s reader history.

    Returns ``(message, info)`` (``message`` is CDR ``bytes`` when ``raw``; ``info`` the
    rmw MessageInfo dict with ``received_timestamp`` and ``source_timestamp`` in ns, and
    ``publication_sequence_number`` where the rmw gives it), or None when nothing waits.
    Raises what rclpy raises for a destroyed subscription.
    """
    h = sub.handle
    with h:
        return h.take_message(msg_type, raw)
