"""The ``sources`` check: every stream of an episode comes from one source.

A second station on the same ROS domain (or a second driver, or a driver restarted
mid-episode) mixes its messages into a running episode: a bag once got 1,922
``/joint_states`` of a 29-joint robot among the 23-joint robot's, and 77 commands with
17 joints. The other checks then see only symptoms ("stamps going backwards"). This check
names the cause, from two independent signs:

* **publishers**: the recorder counts the distinct publishers (rmw publisher GIDs) whose
  messages went into the episode, per topic (custom_data ``publishers/<topic>``,
  :mod:`robot_capture.record.stats`). More than one on a topic not listed in
  ``sources.multi_source`` (``/diagnostics``, ``/tf``: several publishers by design) fails.
  (rclpy 7 / Jazzy gives no publisher GID: that sign is then absent, the next one remains.)
* **joint names**: every ``sensor_msgs/JointState`` message of a topic carries the same
  joint names. A second set inside the episode fails.
"""
from __future__ import annotations

from robot_capture.episodes import Finding
from robot_capture.qa.bagdata import parse_joint_state
from robot_capture.qa.context import EpisodeContext

__all__ = ["sources", "joint_name_sets", "PUBLISHERS_PREFIX"]

PUBLISHERS_PREFIX = "publishers/"
_JOINT_STATE = "sensor_msgs/msg/JointState"


def joint_name_sets(ctx: EpisodeContext, topic: str) -> dict[tuple[str, ...], int]:
    """``{joint names: message count}`` of a JointState topic (malformed messages skipped)."""
    sets: dict[tuple[str, ...], int] = {}
    last_list, last_key = None, None
    for b in ctx.data.payloads(topic):
        try:
            _st, names, _pos = parse_joint_state(b)
        except ValueError:
            continue
        if names is not last_list:  # parse_joint_state hands back the same list for repeated names
            last_list, last_key = names, tuple(names)
        sets[last_key] = sets.get(last_key, 0) + 1
    return sets


def sources(ctx: EpisodeContext) -> list[Finding]:
    """Findings (fail) for a stream with several publishers or several joint-name sets."""
    out: list[Finding] = []
    multi = set(ctx.config.sources.multi_source)
    counts: dict[str, int] = {}
    for key, value in (ctx.episode.custom_data or {}).items():
        if key.startswith(PUBLISHERS_PREFIX):
            try:
                counts[key[len(PUBLISHERS_PREFIX):]] = int(float(value))
            except (TypeError, ValueError):
                continue
    for topic in sorted(counts):
        n = counts[topic]
        if n > 1 and topic not in multi:
            out.append(Finding("sources", "fail",
                               f"{ctx.name(topic)}: {n} publishers inside the episode, one expected "
                               "(a second station or driver on this ROS domain, or a driver restarted): "
                               "its data is mixed", topic=topic, figures={"publishers": n}))
    ctx.metrics["publishers"] = {t: counts[t] for t in sorted(counts)}
    for topic in sorted(ctx.data.topics):
        if ctx.data.topics[topic] != _JOINT_STATE or not ctx.data.count(topic) or topic in multi:
            continue
        sets = joint_name_sets(ctx, topic)
        if len(sets) > 1:
            ranked = sorted(sets.items(), key=lambda kv: -kv[1])
            parts = ", ".join(f"{c} with {len(k)} joints" for k, c in ranked)
            out.append(Finding("sources", "fail",
                               f"{ctx.name(topic)}: joint names change inside the episode ({parts}): "
                               "two sources publish on it (a second station on this ROS domain?)",
                               topic=topic, figures={"name_sets": len(sets),
                                                     "messages_other": sum(c for _k, c in ranked[1:])}))
    return out
