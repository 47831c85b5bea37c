"""QoS profiles as rosbag2 stores them (metadata version 9), without rclpy.

A profile is a plain ``dict`` with rosbag2's keys in rosbag2's order
(``rosbag2_storage/src/rosbag2_storage/qos.cpp``, ``convert<rclcpp::QoS>::encode``)::

    history: keep_last | keep_all | system_default | unknown
    depth: int
    reliability: reliable | best_effort | system_default | best_available | unknown
    durability: volatile | transient_local | system_default | best_available | unknown
    deadline: {sec: int, nsec: int}
    lifespan: {sec: int, nsec: int}
    liveliness: automatic | manual_by_topic | system_default | best_available | unknown
    liveliness_lease_duration: {sec: int, nsec: int}
    avoid_ros_namespace_conventions: bool

Durations use ``RMW_DURATION_INFINITE`` = ``{sec: 9223372036, nsec: 854775807}``.
In MCAP channel metadata the list of offered profiles is a YAML *string*
(``offered_qos_profiles``); in metadata.yaml v9 it is a YAML sequence of maps.
"""
from __future__ import annotations

from typing import Any, Iterable

import yaml

__all__ = [
    "INFINITE",
    "adapt_request_to_offers",
    "dump_qos_list",
    "from_rclpy",
    "load_qos_list",
    "normalize",
    "qos_profile",
]

#: RMW_DURATION_INFINITE as rosbag2 writes it.
INFINITE = {"sec": 9223372036, "nsec": 854775807}
_INF_NS = 9223372036854775807

_ENUMS = {
    "history": ("system_default", "keep_last", "keep_all", "unknown"),
    "reliability": ("system_default", "reliable", "best_effort", "unknown", "best_available"),
    "durability": ("system_default", "transient_local", "volatile", "unknown", "best_available"),
    "liveliness": ("system_default", "automatic", None, "manual_by_topic", "unknown", "best_available"),
}
_DURATIONS = ("deadline", "lifespan", "liveliness_lease_duration")
# Foxy-era "infinite" values that rosbag2 maps to RMW_DURATION_INFINITE on read.
_FOXY_INFINITE = ({"sec": 0x7FFFFFFF, "nsec": 0xFFFFFFFF}, {"sec": 0x7FFFFFFF, "nsec": 0x7FFFFFFF},
                  {"sec": 9223372036, "nsec": 854775807})


def qos_profile(
    history: str = "keep_last",
    depth: int = 10,
    reliability: str = "reliable",
    durability: str = "volatile",
    deadline: dict | None = None,
    lifespan: dict | None = None,
    liveliness: str = "automatic",
    liveliness_lease_duration: dict | None = None,
    avoid_ros_namespace_conventions: bool = False,
) -> dict:
    """A profile dict in rosbag2 key order. Durations default to infinite."""
    return {
        "history": history,
        "depth": int(depth),
        "reliability": reliability,
        "durability": durability,
        "deadline": dict(deadline or INFINITE),
        "lifespan": dict(lifespan or INFINITE),
        "liveliness": liveliness,
        "liveliness_lease_duration": dict(liveliness_lease_duration or INFINITE),
        "avoid_ros_namespace_conventions": bool(avoid_ros_namespace_conventions),
    }


def _duration(value: Any) -> dict:
    if isinstance(value, dict):
        return {"sec": int(value.get("sec", 0)), "nsec": int(value.get("nsec", 0))}
    ns = getattr(value, "nanoseconds", None)
    if ns is None:
        ns = int(value)
    ns = int(ns)
    if ns >= _INF_NS:
        return dict(INFINITE)
    return {"sec": ns // 1_000_000_000, "nsec": ns % 1_000_000_000}


def _enum(key: str, value: Any) -> str:
    if isinstance(value, str):
        v = value.lower()
        return v if v in _ENUMS[key] else "unknown"
    try:
        name = _ENUMS[key][int(value)]
    except (TypeError, ValueError, IndexError):
        return "unknown"
    return name or "unknown"


def normalize(profile: dict) -> dict:
    """A profile from any rosbag2 version (ints or strings) as a v9 dict in key order.

    Raises:
        ValueError: ``profile`` is not a mapping.
    """
    if not isinstance(profile, dict):
        raise ValueError(f"QoS profile must be a mapping, got {type(profile).__name__}")
    out = qos_profile()
    for key in ("history", "reliability", "durability", "liveliness"):
        if key in profile:
            out[key] = _enum(key, profile[key])
    if "depth" in profile:
        out["depth"] = int(profile["depth"])
    for key in _DURATIONS:
        if key in profile:
            d = _duration(profile[key])
            out[key] = dict(INFINITE) if d in _FOXY_INFINITE else d
    if "avoid_ros_namespace_conventions" in profile:
        out["avoid_ros_namespace_conventions"] = bool(profile["avoid_ros_namespace_conventions"])
    return out


def from_rclpy(qos) -> dict:
    """Convert an ``rclpy.qos.QoSProfile`` (duck-typed; rclpy is not imported) to a dict."""
    def name(policy) -> str:
        return getattr(policy, "name", str(policy)).lower()

    return qos_profile(
        history=name(qos.history),
        depth=int(qos.depth),
        reliability=name(qos.reliability),
        durability=name(qos.durability),
        deadline=_duration(qos.deadline),
        lifespan=_duration(qos.lifespan),
        liveliness=name(qos.liveliness),
        liveliness_lease_duration=_duration(qos.liveliness_lease_duration),
        avoid_ros_namespace_conventions=bool(qos.avoid_ros_namespace_conventions),
    )


class _Dumper(yaml.SafeDumper):
    """Block style with indented sequences, as yaml-cpp emits."""

    def increase_indent(self, flow=False, indentless=False):  # noqa: D401 - PyYAML hook
        return super().increase_indent(flow, False)


def dump_qos_list(profiles: Iterable[dict] | None) -> str:
    """The YAML string rosbag2 puts in the MCAP channel metadata ``offered_qos_profiles``."""
    items = [normalize(p) for p in (profiles or [])]
    if not items:
        return "[]"
    return yaml.dump(items, Dumper=_Dumper, sort_keys=False, default_flow_style=False).rstrip("\n")


def load_qos_list(value: str | list | None) -> list[dict]:
    """Parse ``offered_qos_profiles`` from a channel (string) or metadata.yaml (list or,
    before v9, string). Returns normalized v9 dicts; ``[]`` for empty input.

    Raises:
        ValueError: the value is not a YAML sequence of mappings.
    """
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"offered_qos_profiles is not valid YAML: {exc}") from None
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"offered_qos_profiles must be a sequence, got {type(value).__name__}")
    return [normalize(p) for p in value]


def adapt_request_to_offers(offers: list[dict]) -> dict:
    """The QoS a recorder should request to match all publishers, as rosbag2 does
    (``Rosbag2QoS::adapt_request_to_offers``): reliable only if every publisher is
    reliable, transient_local only if every publisher is; deadline and liveliness left
    unspecified. With no publishers, the rosbag2 default (reliable, volatile, depth 10)."""
    req = qos_profile()
    if not offers:
        return req
    offers = [normalize(o) for o in offers]
    if not all(o["reliability"] == "reliable" for o in offers):
        req["reliability"] = "best_effort"
    if all(o["durability"] == "transient_local" for o in offers):
        req["durability"] = "transient_local"
    return req
