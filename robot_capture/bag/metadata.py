"""rosbag2 ``metadata.yaml`` (version 9): data model, YAML text, atomic write, parse.

The keys and nesting follow rosbag2's yaml-cpp converters
(``rosbag2_storage/include/rosbag2_storage/yaml.hpp``, ``convert<BagMetadata>``):
the file holds ``rosbag2_bagfile_information:`` wrapping ``version``,
``storage_identifier``, ``duration.nanoseconds``, ``starting_time.nanoseconds_since_epoch``,
``message_count``, ``topics_with_message_count[]`` (``topic_metadata`` {name, type,
serialization_format, offered_qos_profiles, type_description_hash} and
``message_count``), ``compression_format``, ``compression_mode``,
``relative_file_paths``, ``files[]`` (path, starting_time, duration, message_count),
``custom_data`` (string -> string) and ``ros_distro``.

``compression_format``/``compression_mode`` describe rosbag2_compression (file or
message compression) and stay empty: MCAP *chunk* compression is internal to the
storage plugin and must not be announced there, or ``ros2 bag play`` would try to
decompress the files itself.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from robot_capture.atomic import write_bytes_atomic
from robot_capture.bag.qos import load_qos_list, normalize

__all__ = [
    "METADATA_FILENAME",
    "METADATA_VERSION",
    "BagMetadata",
    "FileInfo",
    "TopicMeta",
    "dump_metadata",
    "parse_metadata",
    "read_metadata",
    "serialized_metadata",
    "write_metadata",
]

METADATA_FILENAME = "metadata.yaml"
METADATA_VERSION = 9


@dataclass
class TopicMeta:
    """One ``topics_with_message_count`` entry. ``offered_qos_profiles``: list of v9 dicts."""

    name: str
    type: str
    serialization_format: str = "cdr"
    offered_qos_profiles: list = field(default_factory=list)
    type_description_hash: str = ""
    message_count: int = 0


@dataclass
class FileInfo:
    """One ``files`` entry; times in ns (epoch), duration in ns."""

    path: str
    starting_time_ns: int = 0
    duration_ns: int = 0
    message_count: int = 0


@dataclass
class BagMetadata:
    """The parsed ``rosbag2_bagfile_information``. Times in ns since the epoch."""

    storage_identifier: str = "mcap"
    duration_ns: int = 0
    starting_time_ns: int = 0
    message_count: int = 0
    topics: list[TopicMeta] = field(default_factory=list)
    compression_format: str = ""
    compression_mode: str = ""
    relative_file_paths: list[str] = field(default_factory=list)
    files: list[FileInfo] = field(default_factory=list)
    custom_data: dict[str, str] = field(default_factory=dict)
    ros_distro: str = ""
    version: int = METADATA_VERSION

    @property
    def end_time_ns(self) -> int:
        return self.starting_time_ns + self.duration_ns

    def topic(self, name: str) -> TopicMeta | None:
        return next((t for t in self.topics if t.name == name), None)

    def to_dict(self) -> dict:
        """The mapping rosbag2 encodes (without the ``rosbag2_bagfile_information`` wrapper)."""
        return {
            "version": int(self.version),
            "storage_identifier": str(self.storage_identifier),
            "duration": {"nanoseconds": int(self.duration_ns)},
            "starting_time": {"nanoseconds_since_epoch": int(self.starting_time_ns)},
            "message_count": int(self.message_count),
            "topics_with_message_count": [
                {
                    "topic_metadata": {
                        "name": str(t.name),
                        "type": str(t.type),
                        "serialization_format": str(t.serialization_format),
                        "offered_qos_profiles": [normalize(p) for p in t.offered_qos_profiles],
                        "type_description_hash": str(t.type_description_hash),
                    },
                    "message_count": int(t.message_count),
                }
                for t in self.topics
            ],
            "compression_format": str(self.compression_format),
            "compression_mode": str(self.compression_mode),
            "relative_file_paths": [str(p) for p in self.relative_file_paths],
            "files": [
                {
                    "path": str(f.path),
                    "starting_time": {"nanoseconds_since_epoch": int(f.starting_time_ns)},
                    "duration": {"nanoseconds": int(f.duration_ns)},
                    "message_count": int(f.message_count),
                }
                for f in self.files
            ],
            "custom_data": {str(k): str(v) for k, v in self.custom_data.items()},
            "ros_distro": str(self.ros_distro),
        }


class _Dumper(yaml.SafeDumper):
    """Block style, sequences indented under their key (as yaml-cpp writes)."""

    def increase_indent(self, flow=False, indentless=False):  # noqa: D401 - PyYAML hook
        return super().increase_indent(flow, False)


def _dump(obj) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=1 << 30)


def dump_metadata(meta: BagMetadata) -> str:
    """The full metadata.yaml text (with the ``rosbag2_bagfile_information`` wrapper)."""
    return _dump({"rosbag2_bagfile_information": meta.to_dict()})


def serialized_metadata(meta: BagMetadata) -> str:
    """The ``serialized_metadata`` value of the MCAP ``rosbag2`` metadata record: the
    same mapping without the wrapper (rosbag2 ``MCAPStorage::update_metadata``)."""
    return _dump(meta.to_dict())


def write_metadata(bag_dir: str | os.PathLike, meta: BagMetadata) -> Path:
    """Write ``bag_dir/metadata.yaml`` atomically: temp file in the same directory,
    fsync, ``os.replace``, fsync of the directory. A crash leaves the old file or the
    new one, never half of one.

    Raises:
        OSError: on I/O failure (e.g. ENOSPC); the temp file is removed and any
            existing metadata.yaml is left untouched.
    """
    bag_dir = Path(bag_dir)
    return write_bytes_atomic(bag_dir / METADATA_FILENAME, dump_metadata(meta).encode("utf-8"))


def _req(d: dict, key: str, where: str):
    if not isinstance(d, dict) or key not in d:
        raise ValueError(f"metadata.yaml: missing key {where}{key}")
    return d[key]


def _ns(d, key: str, sub: str, where: str) -> int:
    v = _req(d, key, where)
    return int(_req(v, sub, f"{where}{key}.")) if isinstance(v, dict) else int(v)


def parse_metadata(doc: dict) -> BagMetadata:
    """Parse a loaded metadata.yaml mapping (with or without the wrapper), versions 1-9.

    Raises:
        ValueError: a required key is missing or malformed (the message names it).
    """
    if isinstance(doc, dict) and "rosbag2_bagfile_information" in doc:
        doc = doc["rosbag2_bagfile_information"]
    if not isinstance(doc, dict):
        raise ValueError("metadata.yaml: not a rosbag2_bagfile_information mapping")
    version = int(_req(doc, "version", ""))
    try:
        topics = []
        for i, entry in enumerate(_req(doc, "topics_with_message_count", "") or []):
            w = f"topics_with_message_count[{i}]."
            tm = _req(entry, "topic_metadata", w)
            topics.append(TopicMeta(
                name=str(_req(tm, "name", w)),
                type=str(_req(tm, "type", w)),
                serialization_format=str(_req(tm, "serialization_format", w)),
                offered_qos_profiles=load_qos_list(tm.get("offered_qos_profiles")),
                type_description_hash=str(tm.get("type_description_hash", "") or ""),
                message_count=int(_req(entry, "message_count", w)),
            ))
        files = []
        for i, f in enumerate(doc.get("files") or []):
            w = f"files[{i}]."
            files.append(FileInfo(
                path=str(_req(f, "path", w)),
                starting_time_ns=_ns(f, "starting_time", "nanoseconds_since_epoch", w),
                duration_ns=_ns(f, "duration", "nanoseconds", w),
                message_count=int(_req(f, "message_count", w)),
            ))
        return BagMetadata(
            version=version,
            storage_identifier=str(_req(doc, "storage_identifier", "")),
            duration_ns=_ns(doc, "duration", "nanoseconds", ""),
            starting_time_ns=_ns(doc, "starting_time", "nanoseconds_since_epoch", ""),
            message_count=int(_req(doc, "message_count", "")),
            topics=topics,
            compression_format=str(doc.get("compression_format", "") or ""),
            compression_mode=str(doc.get("compression_mode", "") or ""),
            relative_file_paths=[str(p) for p in (_req(doc, "relative_file_paths", "") or [])],
            files=files,
            custom_data={str(k): str(v) for k, v in (doc.get("custom_data") or {}).items()},
            ros_distro=str(doc.get("ros_distro", "") or ""),
        )
    except (TypeError, AttributeError) as exc:
        raise ValueError(f"metadata.yaml: malformed ({exc})") from None


def read_metadata(bag_dir: str | os.PathLike) -> BagMetadata:
    """Read and parse ``bag_dir/metadata.yaml``.

    Raises:
        FileNotFoundError: no metadata.yaml in ``bag_dir``.
        ValueError: not valid YAML or not a rosbag2 metadata file.
    """
    path = Path(bag_dir) / METADATA_FILENAME
    with open(path, "rb") as f:
        try:
            doc = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from None
    try:
        return parse_metadata(doc)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
