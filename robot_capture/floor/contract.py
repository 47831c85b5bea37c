"""The station contract: every stream a station records or gates on (``floor.yaml`` ``streams:``).

One list of :class:`Stream` drives the recorder's subscriptions, the readiness gate
(:mod:`robot_capture.console.streams`), the expected rates stored in each bag (custom_data
``expected_hz/<topic>``, judged by the QA), the names people read (console, report, ``info``:
custom_data ``stream/<topic>``) and ``robot-capture station check``. The anchor is rosetta's
YAML contract (topics, types, rates); each stream here also says who it is for a person:

* ``topic``, ``type`` (``pkg/msg/Type``), ``rate_hz`` (None: event-driven, presence only) and
  ``tolerance`` (a rate under ``(1 - tolerance) x rate_hz`` is *slow*; 0.5 = the console's
  historical ``min_rate_fraction``);
* ``required`` (a start is refused while it is not fresh, the QA fails a bag without it),
  ``role`` (robot | operator | camera | derived), ``name`` ("robot joint state"), ``source``
  (the device or driver: "robot driver", "exoskeleton driver", "retarget node");
* ``derived_from``: the streams a derived one is computed from. The gate names a derived
  stream only when its sources are fine (:func:`root_causes`): with no exoskeleton, the
  refusal names the exoskeleton, not ``/retarget/joint_command``;
* ``node``: the floor node that publishes it ("" = an outside driver); ``sim``: the simulator
  that provides it in sim mode (robot_sim, mocap_replay). In sim mode an outside-driver stream
  with no simulator is not gated (shown, recorded if it comes);
* ``for_source``: an operator stream required only when ``retarget.source`` is this (exo, vr);
* ``codec`` (a sensor_msgs/Image camera stream: ``raw`` as received, ``h264`` or ``lossless``
  encoded at record time into ``foxglove_msgs/msg/CompressedVideo`` under the same topic, see
  :mod:`robot_capture.video.stage`; "" = not a raw camera) and ``preset`` (x264 preset, ""
  = ``ultrafast``). ``cameras.<name>.codec`` / ``.preset`` set them for the floor's cameras.

Cameras under ``cameras:`` become streams automatically (``<name> camera`` and ``<name> camera
info``, role camera, node ``camera_<name>``). ``record.topics`` (the old list) are recorded but
not gated. ROS-free.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from robot_capture.config_schema import ConfigError

__all__ = ["Stream", "Contract", "CheckLimits", "ROLES", "build_contract", "root_causes", "streams_from_params",
           "STREAM_PREFIX", "streams_from_custom_data", "camera_streams", "message_bytes"]

ROLES = ("robot", "operator", "camera", "derived")
#: custom_data key prefix of a stream's person-readable description in each bag
STREAM_PREFIX = "stream/"
# the gate names root causes in this order: a robot or operator device before what is computed from it
_ROLE_ORDER = {r: i for i, r in enumerate(ROLES)}

# bytes per message for the disk estimate when a stream declares none (CDR size, rounded up):
# a 30-joint JointState with names ~1.6 kB, a pose 100 B, a 26-pose PoseArray 1.5 kB
_TYPE_BYTES = {"sensor_msgs/msg/JointState": 1600, "geometry_msgs/msg/PoseStamped": 100,
               "geometry_msgs/msg/PoseArray": 1500, "std_msgs/msg/Bool": 8, "sensor_msgs/msg/CameraInfo": 400,
               "diagnostic_msgs/msg/DiagnosticArray": 2000, "sensor_msgs/msg/CompressedImage": 20000,
               "sensor_msgs/msg/Image": 230400}


def normalize_type(t: str) -> str:
    """``sensor_msgs/JointState`` -> ``sensor_msgs/msg/JointState`` (already full: unchanged)."""
    parts = str(t).strip().split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else str(t).strip()


@dataclass(frozen=True)
class Stream:
    """One declared stream (see the module docstring for each field). Rates in Hz."""

    topic: str
    type: str
    name: str
    role: str
    source: str = ""
    rate_hz: float | None = None
    tolerance: float = 0.5
    required: bool = True
    derived_from: tuple = ()
    node: str = ""
    sim: str = ""
    message_bytes: int = 0
    codec: str = ""
    preset: str = ""

    def label(self) -> str:
        """``robot joint state (/joint_states, robot driver)``: device first, then where."""
        return f"{self.name} ({self.topic}, {self.source})" if self.source else f"{self.name} ({self.topic})"

    @property
    def min_rate_hz(self) -> float | None:
        """Below this the stream is slow (``(1 - tolerance) x rate_hz``); None without a rate."""
        return (1.0 - self.tolerance) * self.rate_hz if self.rate_hz else None

    def to_param(self) -> str:
        """One ``expected_streams`` recorder parameter entry (a JSON object)."""
        d = dataclasses.asdict(self)
        d["derived_from"] = list(self.derived_from)
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        """The custom_data value stored in each bag: ``name | role | source``."""
        return f"{self.name} | {self.role} | {self.source}"


@dataclass(frozen=True)
class CheckLimits:
    """``station check`` thresholds (floor.yaml ``check:``).

    Stamp offset = median of (receive time - header stamp) on the station clock: a fail at
    0.1 s is the QA's camera/state skew fail (qa.yaml ``sync.skew_fail_s``), 3 frames at 30 Hz;
    a warn at 0.02 s is its warn. Disk: hours of recording at the declared data rate.
    """

    sample_s: float = 3.0
    stamp_offset_warn_s: float = 0.02
    stamp_offset_fail_s: float = 0.1
    disk_warn_hours: float = 2.0
    disk_fail_hours: float = 0.05


@dataclass
class Contract:
    """The station's streams (declared order) plus topics recorded without a gate."""

    streams: list[Stream]
    extra_topics: list[str] = field(default_factory=list)
    check: CheckLimits = field(default_factory=CheckLimits)
    output_dir: str = "recordings"
    robot: str = "g1"

    def by_topic(self) -> dict[str, Stream]:
        return {s.topic: s for s in self.streams}

    def required(self) -> list[Stream]:
        return [s for s in self.streams if s.required]

    def optional(self) -> list[Stream]:
        return [s for s in self.streams if not s.required]

    def recorded_topics(self) -> list[str]:
        """The recorder's ``topics``: every declared stream, then the extra topics."""
        out = [s.topic for s in self.streams]
        return out + [t for t in self.extra_topics if t not in out]

    def expected_hz(self) -> dict[str, float | None]:
        """``{topic: Hz | None}`` of the required streams (what the QA requires of each bag)."""
        return {s.topic: s.rate_hz for s in self.required()}

    def data_rate_bytes_s(self, measured_bytes: Mapping[str, float] | None = None) -> float:
        """Bytes per second at the declared rates (presence-only streams count 1 Hz);
        message size: ``measured_bytes[topic]`` if given, else :func:`message_bytes`."""
        total = 0.0
        for s in self.streams:
            size = (measured_bytes or {}).get(s.topic) or message_bytes(s)
            total += (s.rate_hz or 1.0) * size
        return total


def message_bytes(s: Stream) -> int:
    """The declared (or, by type, typical) serialized size of one message of ``s`` in bytes."""
    return int(s.message_bytes or _TYPE_BYTES.get(s.type, 1000))


def camera_streams(name: str, cam: Mapping, sim: bool) -> list[Stream]:
    """The two streams of camera ``name`` from floor.yaml ``cameras:`` (image, camera_info)."""
    compressed = bool(cam.get("compressed", False))
    base = f"/camera/{name}"
    w, h, rate = int(cam.get("width", 320)), int(cam.get("height", 240)), float(cam.get("rate_hz", 30.0))
    node = f"camera_{name}"
    image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    codec = "" if compressed else str(cam.get("codec", "raw"))
    # bytes on disk per frame: JPEG ~1/10 of raw; H.264 crf 23 a conservative 1/50 (benchmarks/video_bench.py
    # measured 1/100 on a real photo panned, 1/380 on the synthetic camera, 640x480); lossless ~1/2 (1/1.7-1/2.1
    # measured: sensor noise does not compress)
    size = w * h * 3 // {"h264": 50, "lossless": 2}.get(codec, 10 if compressed else 1)
    return [Stream(topic=f"{base}/image_raw/compressed" if compressed else f"{base}/image_raw", type=image_type,
                   name=f"{name} camera", role="camera", source=f"{node} node", rate_hz=rate, node=node,
                   sim="camera" if sim else "", message_bytes=size, codec=codec,
                   preset="" if compressed else str(cam.get("preset", "ultrafast"))),
            Stream(topic=f"{base}/camera_info", type="sensor_msgs/msg/CameraInfo", name=f"{name} camera info",
                   role="camera", source=f"{node} node", rate_hz=rate, node=node, sim="camera" if sim else "",
                   derived_from=(f"{base}/image_raw/compressed" if compressed else f"{base}/image_raw",))]


def build_contract(cfg: Mapping, sim: bool = False, sim_rates: Mapping[str, float] | None = None,
                   where: str = "floor.yaml") -> Contract:
    """The contract of a validated station config (``floor.graph.load_config`` + overrides).

    Args:
        cfg: the config dict; ``streams`` is a list of stream mappings (the
            :class:`robot_capture.floor.config.StreamSection` keys), ``None`` for a config
            written before the contract (the caller substitutes the shipped streams).
        sim: sim mode: streams a simulator provides take its rate (``sim_rates[<simulator>]``),
            outside-driver streams with no simulator are not gated.
        sim_rates: simulator -> Hz, e.g. ``{"robot_sim": 500, "mocap_replay": 120}``.

    Raises:
        ConfigError: a topic declared twice, a ``derived_from`` topic that is not declared, no
            required robot stream (the robot's joint state is gated in every mode), a warn
            threshold of ``check`` beyond its fail threshold.
    """
    sim_rates = dict(sim_rates or {})
    rt = cfg.get("retarget") or {}
    source = str(rt.get("source", "exo"))
    retarget_rate = float(rt.get("rate_hz", 100.0) or 0.0)
    streams: list[Stream] = []
    problems: list[str] = []
    from robot_capture.floor.config import CheckSection, StreamSection

    for raw in cfg.get("streams") or []:
        d = StreamSection.model_validate(dict(raw)).model_dump()
        for_source = d.pop("for_source", None)
        d.pop("record", None)
        d["type"] = normalize_type(d["type"])
        d["derived_from"] = tuple(d.get("derived_from") or ())
        d["rate_hz"] = float(d["rate_hz"]) if d.get("rate_hz") else None
        if for_source and for_source != source:
            d["required"] = False
        if sim and d.get("sim") in sim_rates and sim_rates[d["sim"]]:
            d["rate_hz"] = float(sim_rates[d["sim"]])
        elif sim and d.get("required", True) and not d.get("sim") and not d.get("node"):
            d["required"] = False   # an outside driver no simulator stands in for
        s = Stream(**{k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(Stream)}})
        streams.append(s)
    labels = [f"streams.{i}.topic" for i in range(len(streams))]  # where each stream was declared
    for name, cam in (cfg.get("cameras") or {}).items():
        more = camera_streams(str(name), cam or {}, sim)
        streams += more
        labels += [f"cameras.{name}"] * len(more)
    # a retarget output without a declared rate runs at retarget.rate_hz (0: at its input's rate)
    by = {s.topic: s for s in streams}
    inputs = [by[t] for s in streams if s.node == "retarget" for t in s.derived_from if t in by]
    input_rate = next((t.rate_hz for t in inputs if t.required and t.rate_hz), None)
    streams = [dataclasses.replace(s, rate_hz=retarget_rate or input_rate) if s.node == "retarget"
               and s.rate_hz is None and s.type != "std_msgs/msg/Bool" else s for s in streams]
    seen: dict[str, int] = {}
    for i, s in enumerate(streams):
        if s.topic in seen:
            problems.append(f"{where}: {labels[i]}: {s.topic} declared twice (first as {labels[seen[s.topic]]})")
        seen.setdefault(s.topic, i)
    for s in streams:
        for t in s.derived_from:
            if t not in seen:
                problems.append(f"{where}: streams: {s.topic}: derived_from {t} is not a declared stream")
    if not any(s.role == "robot" and s.required for s in streams):
        problems.append(f"{where}: streams: no required robot stream: declare the robot's joint state "
                        "(e.g. {name: robot joint state, topic: /joint_states, type: sensor_msgs/msg/JointState, "
                        "role: robot, source: robot driver, sim: robot_sim})")
    chk = CheckSection.model_validate(dict(cfg.get("check") or {})).model_dump()
    if chk["stamp_offset_warn_s"] > chk["stamp_offset_fail_s"]:
        problems.append(f"{where}: check.stamp_offset_warn_s ({chk['stamp_offset_warn_s']:g}) is over "
                        f"check.stamp_offset_fail_s ({chk['stamp_offset_fail_s']:g}): warn before failing")
    if chk["disk_fail_hours"] > chk["disk_warn_hours"]:
        problems.append(f"{where}: check.disk_fail_hours ({chk['disk_fail_hours']:g}) is over "
                        f"check.disk_warn_hours ({chk['disk_warn_hours']:g}): warn before failing")
    if problems:
        raise ConfigError(problems)
    extra = [t for t in _split((cfg.get("record") or {}).get("topics")) if t not in seen]
    return Contract(streams=streams, extra_topics=extra, check=CheckLimits(**chk),
                    output_dir=str(cfg.get("output_dir") or "recordings"), robot=str(cfg.get("robot") or "g1"))


def _split(value) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    return [str(v) for v in value]


def streams_from_params(entries: Iterable, optional: Iterable = ()) -> list[Stream]:
    """The recorder's ``expected_streams`` entries -> streams.

    An entry is a JSON object (:meth:`Stream.to_param`, what the floor graph sets) or the older
    ``topic=rate_hz`` (rate 0 or none = presence only; named by its topic). Topics in
    ``optional`` are not required.

    Raises:
        ValueError: a rate that is not a number >= 0, or a JSON entry that is not a stream
            (the entry is named).
    """
    opt = set(optional or ())
    out: list[Stream] = []
    for e in entries or []:
        e = str(e).strip()
        if e.startswith("{"):
            try:
                d = json.loads(e)
                d["derived_from"] = tuple(d.get("derived_from") or ())
                s = Stream(**d)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"expected_streams entry {e[:80]!r}: not a stream ({exc})") from None
        else:
            topic, _, rate = e.partition("=")
            topic = topic.strip()
            if not topic:
                continue
            try:
                r = float(rate) if rate.strip() not in ("", "none", "None") else 0.0
            except ValueError:
                raise ValueError(f"expected_streams entry {e!r}: rate must be a number (Hz)") from None
            if r < 0:
                raise ValueError(f"expected_streams entry {e!r}: rate must be >= 0")
            s = Stream(topic=topic, type="", name=topic, role="", rate_hz=r or None)
        if s.topic in opt:
            s = dataclasses.replace(s, required=False)
        out.append(s)
    known = {s.topic for s in out}
    out += [Stream(topic=t, type="", name=t, role="", required=False) for t in opt if t not in known]
    return out


def root_causes(bad: list) -> list:
    """Of the streams that are not fine (objects with ``topic``, ``role`` and ``derived_from``),
    the ones to name: a derived stream only when none of its sources is itself in ``bad`` (a
    source that is not required, or not tracked, does not hide it). Ordered robot, operator,
    camera, derived (then by topic)."""
    bad_topics = {s.topic for s in bad}
    out = [s for s in bad if not any(t in bad_topics for t in (getattr(s, "derived_from", ()) or ()))]
    return sorted(out, key=lambda s: (_ROLE_ORDER.get(getattr(s, "role", ""), len(ROLES)), s.topic))


def streams_from_custom_data(custom_data: Mapping) -> dict[str, dict]:
    """``{topic: {name, role, source}}`` from a bag's custom_data ``stream/<topic>``."""
    out = {}
    for k, v in (custom_data or {}).items():
        if str(k).startswith(STREAM_PREFIX):
            parts = [p.strip() for p in str(v).split("|")] + ["", ""]
            out[str(k)[len(STREAM_PREFIX):]] = {"name": parts[0], "role": parts[1], "source": parts[2]}
    return out
