"""The station config (``config/floor.yaml``) schema: every key at every level is checked.

Pydantic v2 models with ``model_config = STRICT_KEYS`` (unknown keys are errors with "did
you mean"), validated through :mod:`robot_capture.config_schema`, so a typo such as
``record: compresion: zstd`` or ``cameras: head: widht: 640`` is one line naming the file
and the key path instead of a silently ignored setting. On top of the schema:

* ``parameters: {<node>: {...}}`` keys are checked against what that node declares
  (:func:`robot_capture.nodes.declared.declared_parameters`), e.g.
  ``parameters.recorder.flush_intervl_s: not a parameter of node recorder (did you mean
  'flush_interval_s'?)``;
* ``robot`` must name ``config/robots/<robot>.yaml`` (or be a mapping YAML path), checked
  before anything starts.

ROS-free.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator

from robot_capture.config_schema import (STRICT_KEYS, ConfigError, Count, Finite, Fraction, NonNegative, Positive,
                                         PositiveSeconds, RateHz, RateHzOrZero, RosTopic, Seconds, suggest, validate)

__all__ = ["FloorConfig", "validate_floor", "check_robot", "check_node_parameters", "PARAMETER_TYPES"]

Scalar = Union[bool, int, Finite, str]
#: an image dimension, px (16K is beyond any camera)
Pixels = Annotated[int, Field(gt=0, le=16384)]


class EpisodeLabels(BaseModel):
    model_config = STRICT_KEYS
    task: str = ""
    operator: str = ""
    scene: str = ""
    notes: str = ""
    tasks: list[str] = []     # the console's "next task" list (recorder parameter `tasks`)


class RetargetSection(BaseModel):
    model_config = STRICT_KEYS
    source: Literal["exo", "vr", "direct"] = "exo"
    rate_hz: RateHzOrZero = 100.0     # 0: one command per input


class RecordSection(BaseModel):
    model_config = STRICT_KEYS
    topics: list[RosTopic] = []
    compression: Literal["none", "lz4", "zstd"] = "none"


X264Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]


class CameraSection(BaseModel):
    model_config = STRICT_KEYS
    source: Union[int, str] = "0"
    rate_hz: RateHz = 30.0
    width: Pixels = 320
    height: Pixels = 240
    compressed: bool = False
    # recorded as: raw | h264 | lossless (robot_capture.video; the live topic stays raw)
    codec: Literal["raw", "h264", "lossless"] = "raw"
    preset: X264Preset = "ultrafast"


class SimSection(BaseModel):
    model_config = STRICT_KEYS
    clip: str = "cmu_02_06_bend_scoop_up_lift_arm.bvh"
    loop: bool = True
    joint_state_rate_hz: RateHz = 500.0
    time_constant_s: PositiveSeconds = 0.05
    camera_source: str = "synthetic"


_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/(msg/)?[A-Za-z][A-Za-z0-9_]*$")


def _absolute(v: str) -> str:
    if not str(v).startswith("/"):
        raise ValueError(f"a stream's topic must be absolute (start with '/'), got {v!r}")
    return v


class StreamSection(BaseModel):
    """One stream of the station contract (:mod:`robot_capture.floor.contract`)."""

    model_config = STRICT_KEYS
    name: str = Field(min_length=1)
    topic: RosTopic
    type: str
    rate_hz: Optional[RateHzOrZero] = None          # None or 0: presence only
    tolerance: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 0.5
    required: bool = True
    role: Literal["robot", "operator", "camera", "derived"]
    source: str = ""
    derived_from: list[RosTopic] = []
    node: str = ""
    sim: Literal["", "robot_sim", "mocap_replay"] = ""
    for_source: Optional[Literal["exo", "vr", "direct"]] = None
    message_bytes: Count = 0
    codec: Literal["", "raw", "h264", "lossless"] = ""   # a sensor_msgs/Image camera: how it is recorded
    preset: Literal["", X264Preset] = ""

    @field_validator("topic")
    @classmethod
    def _topic_absolute(cls, v: str) -> str:
        return _absolute(v)

    @field_validator("derived_from")
    @classmethod
    def _sources_absolute(cls, v: list[str]) -> list[str]:
        return [_absolute(t) for t in v]

    @field_validator("type")
    @classmethod
    def _type_name(cls, v: str) -> str:
        if not _TYPE.match(str(v)):
            raise ValueError("not a ROS message type (package/msg/Type, e.g. sensor_msgs/msg/JointState)")
        return v


class CheckSection(BaseModel):
    """``robot-capture station check`` thresholds (:class:`robot_capture.floor.contract.CheckLimits`)."""

    model_config = STRICT_KEYS
    sample_s: Annotated[float, Field(gt=0.0, le=60.0, allow_inf_nan=False)] = 3.0
    stamp_offset_warn_s: PositiveSeconds = 0.02
    stamp_offset_fail_s: PositiveSeconds = 0.1
    disk_warn_hours: NonNegative = 2.0
    disk_fail_hours: NonNegative = 0.05


class FloorConfig(BaseModel):
    """``config/floor.yaml`` (see the commented shipped file for the meaning of each key)."""

    model_config = STRICT_KEYS
    robot: str = "g1"
    output_dir: str = "recordings"
    dds_transport: str = ""
    station: str = ""         # station namespace (/<station>); graph.build checks the token
    nice: int = Field(0, ge=-20, le=19)
    episode: EpisodeLabels = EpisodeLabels()
    retarget: RetargetSection = RetargetSection()
    record: RecordSection = RecordSection()
    cameras: Optional[dict[str, Optional[CameraSection]]] = None
    parameters: Optional[dict[str, Optional[dict[str, Union[Scalar, list[Scalar]]]]]] = None
    sim: SimSection = SimSection()
    # the station contract; None (a config from before it): the shipped floor.yaml's streams
    streams: Optional[list[StreamSection]] = None
    check: CheckSection = CheckSection()


#: value types of the numeric node parameters ``parameters.<node>.<name>`` may set, by node
#: role (``camera_<name>`` nodes are role ``camera``): a value a node would crash on or spin
#: on (an infinite or zero rate, a negative period) is a config error before anything starts.
PARAMETER_TYPES: dict[str, dict[str, Any]] = {
    "recorder": {"flush_interval_s": PositiveSeconds, "max_bag_duration_s": Seconds, "disk_min_free_mb": NonNegative,
                 "discovery_interval_s": PositiveSeconds, "diagnostics_rate_hz": RateHzOrZero,
                 "status_log_s": Seconds, "take_period_s": Seconds, "stream_lost_s": PositiveSeconds,
                 "silent_after_s": PositiveSeconds, "min_rate_fraction": Fraction, "console_rate_hz": RateHz,
                 "qos_depth": Annotated[int, Field(ge=1)], "qos_depth_large": Annotated[int, Field(ge=1)],
                 "drain_batch": Count, "chunk_size": Annotated[int, Field(ge=1)], "max_bag_size": Count},
    "retarget": {"rate_hz": RateHzOrZero, "diagnostics_rate_hz": RateHzOrZero, "stale_periods": Positive,
                 "max_future_s": PositiveSeconds, "flood_hz": RateHz},
    "camera": {"rate_hz": RateHz, "width": Pixels, "height": Pixels,
               "jpeg_quality": Annotated[int, Field(ge=1, le=100)],
               "hfov_deg": Annotated[float, Field(gt=0.0, lt=180.0, allow_inf_nan=False)]},
    "mocap_replay": {"speed": Annotated[float, Field(ge=0.01, le=100.0, allow_inf_nan=False)],
                     "hand_pose_s": PositiveSeconds},
    "robot_sim": {"rate_hz": RateHz, "time_constant_s": PositiveSeconds},
}


def _parameter_problems(params: Any, where: str) -> list[str]:
    """One line per ``parameters.<node>.<name>`` value outside its :data:`PARAMETER_TYPES` type."""
    out = []
    for node, values in (params or {}).items() if isinstance(params, dict) else ():
        role = "camera" if str(node).startswith("camera_") else str(node)
        for name, value in (values or {}).items() if isinstance(values, dict) else ():
            kind = PARAMETER_TYPES.get(role, {}).get(str(name))
            if kind is None:
                continue
            try:
                TypeAdapter(kind).validate_python(value)
            except ValidationError as exc:
                msg = str(exc.errors(include_url=False)[0].get("msg", "invalid value")).replace(
                    "Input should", "input should").replace("Value error, ", "")
                out.append(f"{where}: parameters.{node}.{name}: {msg}, got {value!r}")
    return out


def validate_floor(cfg: Any, where: str = "floor.yaml") -> FloorConfig:
    """Validate a parsed station config: the schema, the numeric node parameters
    (:data:`PARAMETER_TYPES`) and the recorder's Joy map (``parameters.recorder.joy_map``).

    Raises:
        ConfigError: one line per problem (file, key path, the fix).
    """
    data = {k: v for k, v in dict(cfg or {}).items() if not str(k).startswith("_")} if isinstance(cfg, dict) else cfg
    model = validate(FloorConfig, data, where)
    problems = _parameter_problems(data.get("parameters"), where)
    if problems:
        raise ConfigError(problems)
    joy = ((data.get("parameters") or {}).get("recorder") or {}).get("joy_map", "")
    if str(joy).lower() not in ("none", "off", "false"):  # the recorder's Joy button map is checked too
        from robot_capture.console.commands import load_joy_map

        try:
            load_joy_map(joy or None)
        except FileNotFoundError as exc:
            raise ConfigError([f"{where}: parameters.recorder.joy_map: {exc}"]) from None
    return model


def check_robot(robot: str, where: str = "robot") -> None:
    """``robot`` names a mapping in the user robot folder or ``config/robots``, or is an existing
    mapping YAML (:func:`robot_capture.paths.resolve_robot`), and that mapping is valid
    (:class:`robot_capture.retarget.mapping.RobotMapping`: every key and value).

    Raises:
        ConfigError: unknown robot or missing file (with the closest known name), or an invalid
            mapping (one line per problem naming the mapping file and the key).
    """
    from robot_capture.paths import known_robots, resolve_robot
    from robot_capture.retarget.mapping import RobotMapping

    try:
        RobotMapping.load(robot)
    except FileNotFoundError as exc:
        raise ConfigError([f"{where}: {exc}"]) from None
    except KeyError:
        known = known_robots()
        raise ConfigError([f"{where}: unknown robot {str(robot)!r}{suggest(robot, known)}; "
                           f"known: {', '.join(known)} ($ROBOT_CAPTURE_ROBOTS or ~/.config/robot_capture/robots, "
                           "then config/robots), or a mapping YAML path"]) from None


# every node also has rclpy's own parameter
_BUILTIN = {"use_sim_time"}


def check_node_parameters(node: str, module: str, params: dict, where: str = "floor.yaml") -> None:
    """Every key of ``parameters.<node>`` is a parameter ``module`` declares.

    Raises:
        ConfigError: one line per unknown parameter (with "did you mean").
    """
    from robot_capture.nodes.declared import declared_parameters

    known = set(declared_parameters(module)) | _BUILTIN
    bad = [k for k in params or {} if k not in known]
    if bad:
        raise ConfigError([f"{where}: parameters.{node}.{k}: not a parameter of node {node}{suggest(k, sorted(known))}"
                           for k in bad])
