"""QA thresholds: ``config/qa.yaml``, validated by pydantic (``robot_capture.config_schema``).

``load_config(path=None, rig=None, rig_name=None) -> QAConfig``: the shipped defaults
(``config/qa.yaml``), then ``path`` (a full file or a partial override), then a per-rig
override (a file ``rig``, or the ``rigs: {name: {...}}`` entry ``rig_name``), each changing
only the keys it names. The thresholds and their sources are documented in qa.yaml.
``QAConfig.sha256`` fingerprints the effective thresholds (stored in the verdict). Every
threshold is finite and within its range (``config_schema`` types: a NaN would make every
comparison false and turn a failing episode into a pass); topic keys are valid ROS names.

Raises ``ConfigError`` (one line per problem, "did you mean") or ``FileNotFoundError``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from typing import Annotated

from pydantic import BaseModel, Field

from robot_capture.config_schema import (STRICT_KEYS, ConfigError, Count, Fraction, NonNegative, Positive,
                                         RateHz, RateHzOrZero, RosTopic, Seconds, load_yaml, validate)

__all__ = ["QAConfig", "load_config", "default_path"]

#: an 8-bit luma level (0..255)
Luma = Annotated[float, Field(ge=0.0, le=255.0, allow_inf_nan=False)]


class _M(BaseModel):
    model_config = STRICT_KEYS


class Presence(_M):
    edge_tolerance_s: Seconds = 1.0


class Rate(_M):
    warn_below: NonNegative = 0.95     # x the expected rate
    fail_below: NonNegative = 0.84
    warn_above: NonNegative = 1.05
    fail_above: NonNegative = 1.25


class Gaps(_M):
    drop_periods: Positive = 1.5
    warn_drops: Count = 1
    fail_drops: Count = 6
    fast_rate_hz: RateHz = 100.0
    fast_max_gap_s: Seconds = 0.1
    max_gap_s: Seconds = 0.5
    min_rate_hz: RateHz = 5.0


class Stamps(_M):
    latency_p99_warn_s: Seconds = 0.25
    clock_ahead_fail_s: Seconds = 0.01
    clock_behind_fail_s: Seconds = 0.5
    duplicate_warn: Count = 1
    exclude: list[RosTopic] = Field(default_factory=lambda: ["/diagnostics"])


class Sync(_M):
    skew_warn_s: Seconds = 0.02
    skew_fail_s: Seconds = 0.1
    state_topic: RosTopic = "/joint_states"


class Duration(_M):
    fail_below_s: Seconds = 1.0
    iqr_factor: NonNegative = 1.5
    min_iqr_fraction: NonNegative = 0.1
    min_episodes: Count = 4


class Idle(_M):
    window_s: Seconds = 0.25
    tolerance_rad: NonNegative = 0.005
    warn_s: Seconds = 2.0
    robot_topic: RosTopic = "/joint_states"
    input_topics: list[RosTopic] = Field(default_factory=lambda: ["/exo/joint_states", "/retarget/joint_command"])


class Retarget(_M):
    command_topic: RosTopic = "/retarget/joint_command"
    failure_warn: Fraction = 0.01
    failure_fail: Fraction = 0.05
    wrist_p95_warn_m: NonNegative = 0.05
    wrist_max_fail_m: NonNegative = 0.25
    tracking_limit_rad: NonNegative = 0.6
    tracking_min_s: Seconds = 0.1


class Command(_M):
    frozen_fraction: Fraction = 0.05
    jump_sigma: NonNegative = 8.0
    jump_min_rad_s: NonNegative = 1.0


class Labels(_M):
    required: list[str] = Field(default_factory=lambda: ["task", "operator", "success"])


class Sources(_M):
    multi_source: list[RosTopic] = Field(default_factory=lambda: ["/diagnostics", "/tf", "/tf_static", "/rosout"])


class Video(_M):
    """Thresholds of the video checks (robot_capture.qa.checks_video; sources in config/qa.yaml)."""

    sample_hz: RateHz = 10.0
    stretch_warn_s: Seconds = 0.2
    stretch_fail_s: Seconds = 0.5
    dark_luma: Luma = 16
    bright_luma: Luma = 250
    flat_fraction: Fraction = 0.98
    motion_rad: NonNegative = 0.005
    blur_fraction: Fraction = 0.3
    blur_fail_s: Seconds = 1.0
    static_change_luma: Luma = 4.0
    static_motion_rad: NonNegative = 0.2
    decode_fail_frames: Count = 1
    exclude: list[RosTopic] = Field(default_factory=list)


class QAConfig(_M):
    """The effective QA thresholds (see config/qa.yaml for meanings and sources)."""

    presence: Presence = Field(default_factory=Presence)
    rate: Rate = Field(default_factory=Rate)
    gaps: Gaps = Field(default_factory=Gaps)
    stamps: Stamps = Field(default_factory=Stamps)
    sync: Sync = Field(default_factory=Sync)
    duration: Duration = Field(default_factory=Duration)
    idle: Idle = Field(default_factory=Idle)
    retarget: Retarget = Field(default_factory=Retarget)
    command: Command = Field(default_factory=Command)
    labels: Labels = Field(default_factory=Labels)
    sources: Sources = Field(default_factory=Sources)
    video: Video = Field(default_factory=Video)
    expected_hz: dict[RosTopic, RateHzOrZero | None] = Field(default_factory=dict)
    rigs: dict[str, dict] = Field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """Fingerprint of the thresholds (``rigs`` excluded: only the applied one counts)."""
        d = self.model_dump(exclude={"rigs"})
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def default_path() -> Path:
    """``config/qa.yaml`` of the checkout or the installed share/ copy."""
    from robot_capture.paths import config_dir

    return config_dir() / "qa.yaml"


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "expected_hz" \
            else v
    return out


def _read(path, where: str | None = None) -> dict:
    data = load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{where or path}: expected a mapping of keys, got {type(data).__name__}"])
    return data


def load_config(path: str | os.PathLike | None = None, rig: str | os.PathLike | None = None,
                rig_name: str | None = None) -> QAConfig:
    """The effective QA config (see the module docstring).

    Raises:
        FileNotFoundError: a named file does not exist.
        ConfigError: invalid YAML, an unknown key or a bad value (file and key path named),
            or an unknown ``rig_name``.
    """
    try:
        data = _read(default_path())
    except FileNotFoundError:
        data = {}
    where = "qa.yaml"
    if path is not None:
        data = _merge(data, _read(path))
        where = Path(path).name
    base = validate(QAConfig, data, where)
    if rig_name:
        if rig_name not in base.rigs:
            from robot_capture.config_schema import suggest

            raise ConfigError([f"{where}: rigs: no rig {rig_name!r}{suggest(rig_name, base.rigs)}"
                               f" (have {', '.join(sorted(base.rigs)) or 'none'})"])
        data = _merge(data, base.rigs[rig_name])
        where = f"{where} (rig {rig_name})"
    if rig is not None:
        data = _merge(data, _read(rig))
        where = Path(rig).name
    return validate(QAConfig, data, where)


def as_config(config) -> QAConfig:
    """``config`` as a QAConfig: None (defaults), a path, a dict, or a QAConfig."""
    if config is None:
        return load_config()
    if isinstance(config, QAConfig):
        return config
    if isinstance(config, dict):
        return validate(QAConfig, _merge(load_config().model_dump(), config), "qa config")
    return load_config(config)
