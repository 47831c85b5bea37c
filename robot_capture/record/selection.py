"""Which topics to record.

:class:`TopicSelection` decides from the topic name (explicit list, ``all``,
``regex``, ``exclude`` regex), as ``ros2 bag record`` does (topics, ``--all``,
``--regex``, ``--exclude-regex``). Hidden topics (a path element starting with
``_``) are only recorded when listed explicitly. Regexes use :func:`re.search`
semantics like rosbag2.

The subscription QoS (adapted to the publishers' offers as rosbag2 does) comes
from :func:`robot_capture.bag.qos.adapt_request_to_offers`.

No rclpy here.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Iterable, Sequence


def _compile(pattern: str | None):
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid topic regex {pattern!r}: {exc}") from exc


def normalize_topic(name: str) -> str:
    """Absolute topic name: leading ``/`` added, trailing ``/`` removed."""
    name = name.strip()
    if not name.startswith("/"):
        name = "/" + name
    return name.rstrip("/") or "/"


@dataclasses.dataclass
class TopicSelection:
    """Topic name filter.

    Args:
        topics: names recorded whatever the other options say (unless excluded).
        all: record every (non-hidden) topic.
        regex: also record topics whose name matches (``re.search``).
        exclude: never record topics matching this (``re.search``); applies to all.
    Raises:
        ValueError: on an invalid regex, or when nothing could ever be selected.
    """

    topics: Sequence[str] = ()
    all: bool = False
    regex: str | None = None
    exclude: str | None = None

    def __post_init__(self):
        self.topics = tuple(normalize_topic(t) for t in self.topics if t and t.strip())
        self._regex = _compile(self.regex)
        self._exclude = _compile(self.exclude)
        if not (self.topics or self.all or self._regex):
            raise ValueError("no topics selected: give topics, all=True or a regex")

    def matches(self, topic: str) -> bool:
        """True if ``topic`` (absolute name) should be recorded."""
        if self._exclude is not None and self._exclude.search(topic):
            return False
        if topic in self.topics:
            return True
        if any(part.startswith("_") for part in topic.split("/")):
            return False
        if self.all:
            return True
        return bool(self._regex is not None and self._regex.search(topic))

    def select(self, graph: Iterable[tuple[str, Sequence[str]]]) -> list[tuple[str, list[str]]]:
        """Filter ``(topic, [types])`` pairs (``Node.get_topic_names_and_types()``)."""
        return [(t, list(types)) for t, types in graph if self.matches(t)]

