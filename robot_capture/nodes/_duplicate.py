"""A node that sees another node of its own name stops publishing: one station per domain.

The bring-up refuses a second station before it starts (``floor/station_guard.py``); this
is the second line, for a duplicate that appears later (another PC joined the domain, a
probe that missed it on a starved machine). Two retarget nodes of one name would both
command the robot; two robot_sims would interleave their ``/joint_states``.

:class:`DuplicateWatch` checks the ROS graph every ``period_s`` for nodes with this node's
name and namespace. While there is one, :attr:`DuplicateWatch.blocked` is true: the node's
publishing path returns early (the robot holds its last command). It logs once when the
duplicate appears and once when it is gone, and :meth:`diagnostic_flag` names it for
``/diagnostics``. The graph entry of a SIGKILLed node lingers for its DDS lease (about
20 s here), so a node restarted right after such a kill holds for that long, and says so.
"""
from __future__ import annotations

import os

__all__ = ["DuplicateWatch"]


class DuplicateWatch:
    """Watch the graph for another node named like ``node``.

    Args:
        node: the rclpy Node (its own entry is counted once).
        period_s: graph check period, s.
        act: what the node does while blocked, for the log line ("not publishing", ...).
    """

    def __init__(self, node, period_s: float = 1.0, act: str = "not publishing until it is gone"):
        self.node = node
        self.act = act
        self.blocked = False
        self.times_seen = 0
        node.create_timer(period_s, self.check)

    @property
    def fqn(self) -> str:
        ns = self.node.get_namespace().rstrip("/")
        return f"{ns}/{self.node.get_name()}"

    def check(self) -> bool:
        """One graph check; returns :attr:`blocked`."""
        try:
            names = self.node.get_node_names_and_namespaces()
        except Exception:  # noqa: BLE001 - a timer firing while the context shuts down
            if self.node.context.ok():
                raise
            return self.blocked
        me = (self.node.get_name(), self.node.get_namespace())
        dup = sum(1 for n, s in names if (n, s) == me) > 1
        log = self.node.get_logger()
        if dup and not self.blocked:
            self.times_seen += 1
            log.error(f"another node named {self.fqn} is on ROS_DOMAIN_ID {os.environ.get('ROS_DOMAIN_ID', '0')} "
                      f"(a second station?): {self.act}")
        elif self.blocked and not dup:
            log.warning(f"the other {self.fqn} is gone: publishing again")
        self.blocked = dup
        return dup

    def diagnostic_flag(self) -> str | None:
        """``"duplicate_node"`` while blocked, else None."""
        return "duplicate_node" if self.blocked else None
