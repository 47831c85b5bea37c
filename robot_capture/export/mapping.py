"""The stream -> LeRobot feature mapping: a YAML file, validated with pydantic.

``config/export/lerobot_default.yaml`` is the mapping for the shipped floor; a customer
asks for another one (other topics, end-effector actions, velocities) with a file, no
code. :func:`load_mapping` validates it (``robot_capture.config_schema``: one line per
problem, "did you mean" for misspelled keys). :func:`resolve` matches a mapping against
one bag's topics and gives the concrete :class:`StreamSpec` list of that bag.

Feature shapes follow from the message type: a JointState field gives one value per
joint (``names`` = the JointState names, suffixed ``.vel``/``.effort`` for velocity and
effort), a PoseStamped 7 values and a PoseArray of n poses 7n values
(``x y z qx qy qz qw``; m, ROS quaternion order).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from robot_capture.config_schema import STRICT_KEYS, RosTopic, load_yaml, validate

#: a dataset frame rate, frames/s (LeRobot stores an int)
Fps = Annotated[int, Field(ge=1, le=1000)]

__all__ = ["FeatureMap", "CameraConfig", "VideoConfig", "Mapping", "StreamSpec", "CameraSpec",
           "load_mapping", "default_mapping_path", "resolve", "MissingStreamError", "CAMERA_TOPIC"]

#: camera topics of the floor's topic contract: /camera/<name>/image_raw[/compressed]
CAMERA_TOPIC = re.compile(r"^/camera/([A-Za-z0-9_]+)/image_raw(/compressed)?$")
# CompressedVideo: a camera recorded as H.264 (robot_capture.video), decoded and re-encoded by the export
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "foxglove_msgs/msg/CompressedVideo")
FIELD_SUFFIX = {"position": "", "velocity": ".vel", "effort": ".effort"}


class FeatureMap(BaseModel):
    """One numeric feature: a topic sampled onto the frame grid."""

    model_config = STRICT_KEYS
    key: str
    topic: RosTopic
    fields: list[Literal["position", "velocity", "effort"]] = ["position"]
    sample: Literal["interpolate", "hold"] = "hold"
    required: bool = False
    names: list[str] | None = None   # PoseArray/PoseStamped: one name per pose (default pose<i>)

    @field_validator("key")
    @classmethod
    def _no_slash(cls, v: str) -> str:
        if "/" in v or not v:
            raise ValueError("a feature key must be non-empty and contain no '/' (LeRobot rejects it)")
        return v


class CameraConfig(BaseModel):
    model_config = STRICT_KEYS
    discover: bool = True
    key_prefix: str = "observation.images."
    topics: dict[str, RosTopic] = {}


class VideoConfig(BaseModel):
    model_config = STRICT_KEYS
    codec: Literal["libsvtav1", "h264", "hevc"] = "libsvtav1"
    pix_fmt: Literal["yuv420p", "yuv444p"] = "yuv420p"
    gop: Annotated[int, Field(ge=1)] = 2
    crf: Annotated[int, Field(ge=0, le=63)] = 30       # libsvtav1's range (h264/hevc: 0-51)
    preset: Annotated[int, Field(ge=-2, le=13)] = 12   # libsvtav1's range


class Mapping(BaseModel):
    """A whole mapping file (see ``config/export/lerobot_default.yaml``)."""

    model_config = STRICT_KEYS
    fps: Fps | None = None
    primary_camera: str | None = None
    default_fps: Fps = 30
    features: list[FeatureMap]
    cameras: CameraConfig = CameraConfig()
    video: VideoConfig = VideoConfig()

    @field_validator("features")
    @classmethod
    def _unique(cls, v: list[FeatureMap]) -> list[FeatureMap]:
        keys = [f.key for f in v]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"duplicate feature keys {dup}")
        return v


def default_mapping_path() -> Path:
    """The installed ``config/export/lerobot_default.yaml``."""
    from robot_capture.paths import config_dir

    return config_dir() / "export" / "lerobot_default.yaml"


def load_mapping(path: str | Path | None = None) -> Mapping:
    """Load and validate a mapping file (None = the shipped default).

    Raises:
        FileNotFoundError: no such file. ConfigError: invalid YAML or keys/values.
    """
    p = Path(path) if path is not None else default_mapping_path()
    return validate(Mapping, load_yaml(p), p.name)


class MissingStreamError(ValueError):
    """A required stream (or a camera / feature the dataset already has) is not in the bag."""


@dataclass
class StreamSpec:
    """One numeric feature resolved against a bag: topic, type, and how to sample it."""

    key: str
    topic: str
    type: str
    fields: list[str]
    sample: str
    names: list[str] | None = None   # filled from the first message


@dataclass
class CameraSpec:
    """One camera resolved against a bag. ``key`` = ``observation.images.<name>``."""

    key: str
    name: str
    topic: str
    type: str
    shape: tuple | None = None    # (H, W, 3), from the first frame


@dataclass
class Resolved:
    streams: list[StreamSpec] = field(default_factory=list)
    cameras: list[CameraSpec] = field(default_factory=list)
    missing_optional: list[str] = field(default_factory=list)


def resolve(mapping: Mapping, topics: dict, want_features: set[str] | None = None,
            streams: dict | None = None) -> Resolved:
    """Match ``mapping`` against a bag's ``topics`` ({name: TopicInfo with .type}).

    Args:
        want_features: the feature keys an existing dataset already has (None: a new
            dataset, whose feature set this bag decides).
        streams: the bag's station-contract names, ``{topic: {name, source}}``
            (:func:`robot_capture.floor.contract.streams_from_custom_data`): a missing stream is
            named as the station names it ("robot joint state (/joint_states, robot driver)").

    Raises:
        MissingStreamError: a required topic, or a feature of ``want_features``, is not in
            the bag (message names the topic and the feature).
    """
    out = Resolved()
    for fm in mapping.features:
        info = topics.get(fm.topic)
        wanted = want_features is None or fm.key in want_features
        if info is None or getattr(info, "count", 1) == 0:
            if fm.required or (want_features is not None and fm.key in want_features):
                st = (streams or {}).get(fm.topic) or {}
                what = f"{st['name']} ({fm.topic}, {st['source']})" if st.get("name") else fm.topic
                raise MissingStreamError(f"{what} missing from the bag (feature {fm.key})")
            out.missing_optional.append(fm.topic)
            continue
        if not wanted:
            continue
        out.streams.append(StreamSpec(key=fm.key, topic=fm.topic, type=info.type, fields=list(fm.fields),
                                      sample=fm.sample, names=list(fm.names) if fm.names else None))
    cams: dict[str, tuple[str, str]] = {}
    if mapping.cameras.discover:
        for t in sorted(topics):
            m = CAMERA_TOPIC.match(t)
            if m and topics[t].type in IMAGE_TYPES and getattr(topics[t], "count", 1) > 0:
                cams.setdefault(m.group(1), (t, topics[t].type))
    for name, t in mapping.cameras.topics.items():
        if t in topics:
            cams[name] = (t, topics[t].type)
        elif want_features is None:
            raise MissingStreamError(f"camera {name}: {t} missing from the bag")
    for name in sorted(cams):
        key = mapping.cameras.key_prefix + name
        if want_features is not None and key not in want_features:
            continue
        out.cameras.append(CameraSpec(key=key, name=name, topic=cams[name][0], type=cams[name][1]))
    if want_features is not None:
        have = {c.key for c in out.cameras}
        for k in sorted(want_features):
            if k.startswith(mapping.cameras.key_prefix) and k not in have:
                name = k[len(mapping.cameras.key_prefix):]
                raise MissingStreamError(f"camera {name} missing from the bag (no /camera/{name}/image_raw; "
                                         f"the dataset has {k})")
    return out
