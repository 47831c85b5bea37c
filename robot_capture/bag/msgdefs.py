"""ROS 2 message definitions and type hashes from the installed interface packages.

The MCAP ``ros2`` profile stores one schema per message type: name ``pkg/msg/Type``,
encoding ``ros2msg`` and, as data, the *concatenated definition*. This module builds
that text exactly as rosbag2 does (``rosbag2_cpp/.../local_message_definition_source.cpp``):

* the root ``.msg`` file verbatim;
* then, for each dependency (field types that are not primitives, in sorted order),
  depth-first and without repeats: a newline, a line of 80 ``=``, a line
  ``MSG: pkg/Type`` and that dependency's own concatenated text.

A type with no ``.msg`` but an ``.idl`` falls back to the IDL form (``IDL: pkg/msg/Type``
delimiters, encoding ``ros2idl``). A type the index lacks but ``robot_capture.video.msgdef.VENDORED`` defines
(``foxglove_msgs/msg/CompressedVideo``) gets that text. A type found nowhere yields an empty encoding and
an empty text: the MCAP spec's "no schema available". (rosbag2 writes encoding
``unknown`` there, which the ``rosbags`` reader rejects for the whole file.)

Files are found through the ament index: ``$AMENT_PREFIX_PATH/share/<pkg>/msg/<Type>.msg``.
The type hash (``RIHS01_...``) comes from ``share/<pkg>/msg/<Type>.json`` (``type_hashes``).
No rclpy import anywhere.
"""
from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DELIMITER",
    "MessageDefinition",
    "UnknownTypeError",
    "definition_for",
    "find_share_dir",
    "split_type_name",
    "type_hash_for",
]

#: The 80-character separator line rosbag2 puts between concatenated definitions.
DELIMITER = "=" * 80 + "\n"

_PACKAGE_TYPENAME = re.compile(r"^([a-zA-Z0-9_]+)/(?:msg/|srv/)?([a-zA-Z0-9_]+)$")
_MSG_FIELD_TYPE = re.compile(r"(?:^|\n)\s*([a-zA-Z0-9_/]+)(?:\[[^\]]*\])?\s+")
_IDL_INCLUDE = re.compile(r'(?:^|\n)#include\s+(?:"|<)([a-zA-Z0-9_/]+)\.idl(?:"|>)')
_PRIMITIVES = frozenset(
    "bool byte char float32 float64 int8 uint8 int16 uint16 int32 uint32 int64 uint64 string".split()
)
_MAX_DEPTH = 50


class UnknownTypeError(LookupError):
    """The type name is malformed or no installed package defines it."""


@dataclass(frozen=True)
class MessageDefinition:
    """A schema as stored in MCAP.

    Attributes:
        type_name: ``pkg/msg/Type``.
        encoding: ``ros2msg``, ``ros2idl`` or ``""`` (no definition found).
        text: the concatenated definition (empty when unknown).
    """

    type_name: str
    encoding: str
    text: str

    @property
    def known(self) -> bool:
        return self.encoding != ""


def split_type_name(type_name: str) -> tuple[str, str]:
    """``"pkg/msg/Type"`` or ``"pkg/Type"`` -> ``("pkg", "Type")``.

    Raises:
        UnknownTypeError: the name is not of that form.
    """
    m = _PACKAGE_TYPENAME.match(type_name or "")
    if not m:
        raise UnknownTypeError(f"message type name {type_name!r} is not of the form pkg/msg/Type")
    return m.group(1), m.group(2)


def _prefixes() -> list[str]:
    if not os.environ.get("AMENT_PREFIX_PATH"):
        from robot_capture.ros_env import ensure_ament_prefix

        ensure_ament_prefix()  # ROS 2 from pip wheels: the venv holds the ament index
    return [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]


@functools.lru_cache(maxsize=512)
def _share_dir_cached(pkg: str, prefixes: tuple[str, ...]) -> Path | None:
    for prefix in prefixes:
        marker = Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / pkg
        if marker.exists():
            return Path(prefix) / "share" / pkg
    return None


def find_share_dir(pkg: str) -> Path | None:
    """The ``share/<pkg>`` directory of an installed package (ament index), or None."""
    return _share_dir_cached(pkg, tuple(_prefixes()))


def _read_spec(pkg: str, name: str, ext: str) -> str:
    share = find_share_dir(pkg)
    if share is None:
        raise UnknownTypeError(f"package {pkg!r} not found in AMENT_PREFIX_PATH={os.environ.get('AMENT_PREFIX_PATH', '')!r}")
    path = share / "msg" / f"{name}{ext}"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        raise UnknownTypeError(f"no {path}") from None


def _msg_dependencies(text: str, pkg: str) -> list[str]:
    deps = set()
    for m in _MSG_FIELD_TYPE.finditer(text):
        t = m.group(1)
        if t in _PRIMITIVES:
            continue
        deps.add(t if "/" in t else f"{pkg}/{t}")
    return sorted(deps)


def _idl_dependencies(text: str) -> list[str]:
    return sorted({m.group(1) for m in _IDL_INCLUDE.finditer(text)})


def _concat(root: str, fmt: str) -> str:
    """rosbag2's ``get_full_text`` for the msg or idl format."""
    seen: set[str] = set()
    ext = ".msg" if fmt == "MSG" else ".idl"

    def rec(type_name: str, depth: int) -> str:
        if depth <= 0:
            raise UnknownTypeError(f"definition of {root} nests deeper than {_MAX_DEPTH}")
        pkg, name = split_type_name(type_name)
        text = _read_spec(pkg, name, ext)
        deps = _msg_dependencies(text, pkg) if fmt == "MSG" else _idl_dependencies(text)
        out = [text]
        for dep in deps:
            if dep not in seen:
                seen.add(dep)
                out.append("\n" + DELIMITER + f"{fmt}: {dep}\n" + rec(dep, depth - 1))
        return "".join(out)

    if fmt == "MSG":
        return rec(root, _MAX_DEPTH)
    return DELIMITER + f"IDL: {root}\n" + rec(root, _MAX_DEPTH)


@functools.lru_cache(maxsize=512)
def _definition_cached(type_name: str, prefixes: tuple[str, ...]) -> MessageDefinition:
    try:
        split_type_name(type_name)
    except UnknownTypeError:
        return MessageDefinition(type_name, "", "")
    try:
        return MessageDefinition(type_name, "ros2msg", _concat(type_name, "MSG"))
    except UnknownTypeError:
        pass
    try:
        return MessageDefinition(type_name, "ros2idl", _concat(type_name, "IDL"))
    except UnknownTypeError:
        pass
    # types the station records without their package installed (foxglove_msgs/msg/CompressedVideo)
    from robot_capture.video.msgdef import VENDORED

    return MessageDefinition(type_name, "ros2msg", VENDORED[type_name]) if type_name in VENDORED else \
        MessageDefinition(type_name, "", "")


def definition_for(type_name: str) -> MessageDefinition:
    """The concatenated definition of ``type_name`` (``pkg/msg/Type``) from the ament index.

    Never raises for an unknown type: returns an empty encoding and text
    (check ``.known``). Results are cached per AMENT_PREFIX_PATH.
    """
    return _definition_cached(type_name, tuple(_prefixes()))


@functools.lru_cache(maxsize=512)
def _hash_cached(type_name: str, prefixes: tuple[str, ...]) -> str:
    try:
        pkg, name = split_type_name(type_name)
        share = find_share_dir(pkg)
        if share is None:
            return ""
        doc = json.loads((share / "msg" / f"{name}.json").read_text(encoding="utf-8"))
    except (UnknownTypeError, OSError, ValueError):
        return ""
    full = f"{pkg}/msg/{name}"
    for entry in doc.get("type_hashes", []):
        if entry.get("type_name") == full:
            return str(entry.get("hash_string", ""))
    return ""


def type_hash_for(type_name: str) -> str:
    """The REP-2011 type hash ``RIHS01_<64 hex>`` of ``pkg/msg/Type``, or ``""`` if unknown.

    Read from the interface package's generated ``share/<pkg>/msg/<Type>.json``
    (key ``type_hashes``, entry whose ``type_name`` is the type itself).
    """
    return _hash_cached(type_name, tuple(_prefixes()))
