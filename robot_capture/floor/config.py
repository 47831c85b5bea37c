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

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, Field

from robot_capture.config_schema import STRICT_KEYS, ConfigError, suggest, validate

__all__ = ["FloorConfig", "validate_floor", "check_robot", "check_node_parameters"]

Scalar = Union[bool, int, float, str]


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
    rate_hz: float = Field(100.0, ge=0)


class RecordSection(BaseModel):
    model_config = STRICT_KEYS
    topics: list[str] = []
    compression: Literal["none", "lz4", "zstd"] = "none"


class CameraSection(BaseModel):
    model_config = STRICT_KEYS
    source: Union[int, str] = "0"
    rate_hz: float = Field(30.0, gt=0)
    width: int = Field(320, gt=0)
    height: int = Field(240, gt=0)
    compressed: bool = False


class SimSection(BaseModel):
    model_config = STRICT_KEYS
    clip: str = "cmu_02_06_bend_scoop_up_lift_arm.bvh"
    loop: bool = True
    joint_state_rate_hz: float = Field(500.0, gt=0)
    time_constant_s: float = Field(0.05, gt=0)
    camera_source: str = "synthetic"


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


def validate_floor(cfg: Any, where: str = "floor.yaml") -> FloorConfig:
    """Validate a parsed station config.

    Raises:
        ConfigError: one line per problem (file, key path, the fix).
    """
    data = {k: v for k, v in dict(cfg or {}).items() if not str(k).startswith("_")} if isinstance(cfg, dict) else cfg
    return validate(FloorConfig, data, where)


def check_robot(robot: str, where: str = "robot") -> None:
    """``robot`` names a mapping in the user robot folder or ``config/robots``, or is an existing
    mapping YAML (:func:`robot_capture.paths.resolve_robot`).

    Raises:
        ConfigError: unknown robot or missing file (with the closest known name).
    """
    from robot_capture.paths import known_robots, resolve_robot

    try:
        resolve_robot(robot)
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
