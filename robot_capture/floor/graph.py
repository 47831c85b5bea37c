"""The floor graph: a station config (``config/floor.yaml``) -> the list of nodes to run.

This is the one place that decides which nodes make up a training-floor station and
with which parameters. Both bring-ups read it, so they cannot drift apart:

* ``launch/capture.launch.py`` and ``launch/sim.launch.py`` map each :class:`NodeSpec`
  to a ``launch_ros.actions.Node`` (real ROS install);
* ``robot-capture up`` (:mod:`robot_capture.floor.launcher`) spawns each spec as a
  child process (pip-only machines, CI, the demo).

ROS-free: no rclpy or launch import here.

Config schema (see the commented ``config/floor.yaml``): ``robot``, ``output_dir``, ``nice``,
``dds_transport``,
``episode`` {task, operator, scene, notes}, ``retarget`` {source, rate_hz},
``record`` {topics, compression}, ``cameras`` {name: {source, rate_hz, width, height,
compressed}}, ``parameters`` {node name: {extra parameters}}, ``sim`` {clip, loop,
joint_state_rate_hz, time_constant_s, camera_source}, ``streams`` and ``check`` (the station
contract: :mod:`robot_capture.floor.contract` owns it; this module only hands it to the recorder).
"""
from __future__ import annotations

import copy
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from robot_capture.atomic import write_text_atomic

PACKAGE = "robot_capture"

# role -> (executable under lib/robot_capture, python module with main())
EXECUTABLES = {
    "recorder": ("recorder_node", "robot_capture.nodes.recorder_node"),
    "retarget": ("retarget_node", "robot_capture.nodes.retarget_node"),
    "camera": ("camera_node", "robot_capture.nodes.camera_node"),
    "mocap_replay": ("mocap_replay_node", "robot_capture.nodes.mocap_replay_node"),
    "robot_sim": ("robot_sim_node", "robot_capture.nodes.robot_sim_node"),
    "xr": ("xr_node", "robot_capture.nodes.xr_node"),
}

# Start order: recorder first (subscribed before data flows), sources last.
# Shutdown is the reverse of start except that the recorder always goes last.
_START_RANK = {"recorder": 0, "robot_sim": 1, "camera": 2, "retarget": 3, "mocap_replay": 4, "xr": 4}

TOP_KEYS = {"robot", "output_dir", "episode", "retarget", "record", "cameras", "parameters", "sim", "nice",
            "dds_transport", "station", "streams", "check"}
# a station namespace is one ROS name token (design.ros2.org "Topic and Service name mapping")
_STATION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Fast DDS builtin transport sets (FASTDDS_BUILTIN_TRANSPORTS, Fast DDS >= 2.13), the
# alternative to the shipped XML profile (config/fastdds.xml, the default). LARGE_DATA (TCP +
# shared memory for data, UDP discovery) is loss-free too, but every participant on the station
# must then use the same set, or data does not flow between them.
DDS_TRANSPORTS = ("DEFAULT", "DEFAULTv6", "SHM", "UDPv4", "UDPv6", "LARGE_DATA", "LARGE_DATAv6")
DDS_PROFILE_FILE = "fastdds.xml"
# every variable dds_environment() may set (a process that starts floor nodes clears them first)
DDS_ENV_VARS = ("FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")

# Launch arguments shared by capture.launch.py and sim.launch.py, and by `up` as flags.
# name -> (default, description). '' means "take it from the config file".
LAUNCH_ARGUMENTS = {
    "config": ("", "station config YAML (default: the package's config/floor.yaml)"),
    "robot": ("", "robot: a mapping name (user robot folder $ROBOT_CAPTURE_ROBOTS or "
                  "~/.config/robot_capture/robots, then config/robots: g1, h1, kuavo) or a mapping YAML path"),
    "output_dir": ("", "directory the episode bags are written to"),
    "task": ("", "episode task label"),
    "operator": ("", "episode operator label"),
    "scene": ("", "episode scene label"),
    "topics": ("", "more topics to record, not gated, comma- or space-separated (replaces record.topics; "
                   "the contract's streams are always recorded)"),
    "cameras": ("", "'none' to run no camera node; else comma-separated camera names to keep"),
    "nice": ("", "niceness of every node process, e.g. -5 for priority over other work (needs CAP_SYS_NICE)"),
    "dds_transport": ("", "DDS settings of every node: '' = the shipped Fast DDS profile config/fastdds.xml "
                          "(loss-free raw cameras, talks to default participants), 'inherit' = the "
                          "environment as it is, or a FASTDDS_BUILTIN_TRANSPORTS set such as LARGE_DATA"),
    "station": ("", "station namespace: every node runs under /<station> (services /<station>/recorder/...); "
                    "give each station its own ROS_DOMAIN_ID too"),
}
SIM_LAUNCH_ARGUMENTS = {
    "clip": ("", "BVH clip for mocap_replay: a name in shared/data/motion or a path"),
    "loop": ("", "replay the clip in a loop: true/false"),
}


@dataclass
class NodeSpec:
    """One node of the floor graph.

    Attributes:
        role: recorder | retarget | camera | mocap_replay | robot_sim | xr.
        name: ROS node name (no namespace).
        package, executable: as for ``ros2 run`` / ``launch_ros.actions.Node``.
        module: Python module with ``main()`` (how ``up`` starts it without an install).
        parameters: ROS parameters, ``{name: value}``; values are bool, int, float, str
            or homogeneous lists of those (never empty lists, never None).
        remappings: ``[(from, to), ...]`` ROS remapping rules.
        shutdown_timeout_s: how long a SIGINT may take before escalation.
        required: the station cannot work without it; when it dies, ``up`` (and launch)
            shut the graph down. Cameras are optional: their death is only reported.
        nice: scheduling niceness of the process (config ``nice``; 0 = inherit). Negative
            values (higher priority, as on a robot PC) need CAP_SYS_NICE; without it the
            node runs at normal priority and says so.
        env: extra environment variables of the process (config ``dds_transport`` sets
            ``FASTDDS_BUILTIN_TRANSPORTS`` for every node).
        namespace: ROS namespace (config ``station``: ``/<station>``; "" = the root).
    """

    role: str
    name: str
    executable: str
    module: str
    package: str = PACKAGE
    parameters: dict = field(default_factory=dict)
    remappings: list = field(default_factory=list)
    shutdown_timeout_s: float = 5.0
    required: bool = True
    nice: int = 0
    env: dict = field(default_factory=dict)
    namespace: str = ""

    @property
    def fqn(self) -> str:
        """Fully qualified node name, e.g. ``/a/recorder``."""
        return f"{self.namespace}/{self.name}" if self.namespace else f"/{self.name}"

    @property
    def start_rank(self) -> int:
        return _START_RANK.get(self.role, 5)


# --------------------------------------------------------------------------- config


def default_config_path() -> Path:
    """The shipped ``config/floor.yaml`` (source checkout or installed share/)."""
    from robot_capture.paths import config_dir

    return config_dir() / "floor.yaml"


def load_config(path: str | os.PathLike | None = None) -> dict:
    """Read a station config YAML. ``None`` or ``''`` reads the shipped ``floor.yaml``.

    Every key at every level is checked against :class:`robot_capture.floor.config.FloorConfig`.

    Raises:
        FileNotFoundError: the file does not exist.
        robot_capture.config_schema.ConfigError (a ValueError): not valid YAML (file:line), not
            a mapping, an unknown key at any level (with "did you mean") or a bad value, one
            line per problem naming the file and the key path.
    """
    from robot_capture.config_schema import load_yaml
    from robot_capture.floor.config import validate_floor

    p = Path(path) if path else default_config_path()
    if not p.is_file():
        raise FileNotFoundError(f"floor config not found: {p}")
    cfg = load_yaml(p) or {}
    validate_floor(cfg, where=p.name)
    if cfg.get("streams") is None:  # a config from before the station contract: the shipped streams
        shipped = default_config_path()
        cfg["streams"] = (load_yaml(shipped) or {}).get("streams") if shipped.resolve() != p.resolve() else []
        cfg["_streams_from"] = str(shipped)
    cfg["_path"] = str(p.resolve())
    return cfg


def split_list(value) -> list[str]:
    """``'a, b c'`` or ``['a', 'b']`` -> ``['a', 'b', 'c']`` (launch arguments are strings)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in re.split(r"[,\s]+", value.strip()) if v]
    return [str(v) for v in value]


def _bool(value) -> bool:
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean (true/false), got {value!r}")


def apply_overrides(cfg: Mapping, overrides: Mapping[str, Any] | None) -> dict:
    """Return a copy of ``cfg`` with launch-argument style overrides applied.

    ``overrides`` keys are those of :data:`LAUNCH_ARGUMENTS` and
    :data:`SIM_LAUNCH_ARGUMENTS` (except ``config``); ``None`` or ``''`` values are
    ignored, so unset launch arguments keep the config's values.

    Raises:
        KeyError: an unknown override name (suggests the closest).
    """
    out = copy.deepcopy(dict(cfg))
    known = (set(LAUNCH_ARGUMENTS) | set(SIM_LAUNCH_ARGUMENTS)) - {"config"}
    for key, value in (overrides or {}).items():
        if key == "config":
            continue
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            raise KeyError(f"unknown override {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
        if value is None or (isinstance(value, str) and value.strip() == ""):
            continue
        if key in ("robot", "output_dir"):
            out[key] = str(value)
        elif key in ("task", "operator", "scene"):
            out.setdefault("episode", {})[key] = str(value)
        elif key == "topics":
            out.setdefault("record", {})["topics"] = split_list(value)
        elif key == "cameras":
            names = split_list(value)
            cams = out.get("cameras") or {}
            if names in (["none"], ["false"]):
                out["cameras"] = {}
            else:
                missing = [n for n in names if n not in cams]
                if missing:
                    raise KeyError(f"cameras: {', '.join(missing)} not in config "
                                   f"(it has: {', '.join(sorted(cams)) or 'none'})")
                out["cameras"] = {n: cams[n] for n in names}
        elif key == "nice":
            try:
                out["nice"] = int(value)
            except ValueError:
                raise ValueError(f"nice must be an integer, got {value!r}") from None
        elif key == "dds_transport":
            out["dds_transport"] = str(value)
        elif key == "station":
            out["station"] = str(value)
        elif key == "clip":
            out.setdefault("sim", {})["clip"] = str(value)
        elif key == "loop":
            out.setdefault("sim", {})["loop"] = _bool(value)
    return out


def profiles_file_variables() -> tuple[str, ...]:
    """The variable(s) the installed Fast DDS reads its XML profiles file from.

    Fast DDS 3 (Kilted, ``libfastdds.so``) reads ``FASTDDS_DEFAULT_PROFILES_FILE``
    (rmw_fastrtps warns that ``FASTRTPS_...`` is deprecated); Fast DDS 2 (Jazzy,
    ``libfastrtps.so``) reads ``FASTRTPS_DEFAULT_PROFILES_FILE``. The library is looked up in
    ``lib/`` of ``sys.prefix`` (the PyPI wheels) and of every ``AMENT_PREFIX_PATH`` entry;
    both names when neither is found.
    """
    import sys

    prefixes = [sys.prefix] + [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in prefixes:
        lib = Path(prefix) / "lib"
        if any(lib.glob("libfastdds.so*")):
            return ("FASTDDS_DEFAULT_PROFILES_FILE",)
        if any(lib.glob("libfastrtps.so*")):
            return ("FASTRTPS_DEFAULT_PROFILES_FILE",)
    return ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def dds_profile_path() -> Path:
    """The shipped Fast DDS XML profile, ``config/fastdds.xml`` (checkout or installed share/)."""
    from robot_capture.paths import config_dir

    return config_dir() / DDS_PROFILE_FILE


def dds_environment(transport) -> dict[str, str]:
    """Environment of every floor process for config ``dds_transport``.

    * ``''`` or ``None`` (the default) or ``"profile"``: the shipped Fast DDS XML profile
      (:func:`dds_profile_path`), as ``FASTDDS_DEFAULT_PROFILES_FILE`` (Fast DDS 3, Kilted) and
      ``FASTRTPS_DEFAULT_PROFILES_FILE`` (Fast DDS 2, Jazzy). Its default participant profile
      keeps Fast DDS's default transports (shared memory + UDPv4, default locators, so it
      talks to any default participant) with a 16 MiB shared-memory segment, a 16384-deep port
      queue and 4 MiB socket buffers: loss-free at 6 raw 640x480 cameras
      (benchmarks/recorder_throughput.py).
    * ``"inherit"``: ``{}``, the environment as it is.
    * a transport set of :data:`DDS_TRANSPORTS` (case-insensitive):
      ``{"FASTDDS_BUILTIN_TRANSPORTS": <set>}``; every participant must then use the same set.

    Raises:
        ValueError: an unknown value (lists the known ones).
    """
    if transport is None or str(transport).strip().lower() in ("", "profile"):
        path = str(dds_profile_path())
        return {var: path for var in profiles_file_variables()}
    if str(transport).strip().lower() == "inherit":
        return {}
    by_lower = {t.lower(): t for t in DDS_TRANSPORTS}
    name = by_lower.get(str(transport).strip().lower())
    if name is None:
        raise ValueError(f"dds_transport must be '' (the shipped profile), 'inherit' or one of "
                         f"{list(DDS_TRANSPORTS)}, got {transport!r}")
    return {"FASTDDS_BUILTIN_TRANSPORTS": name}


#: variables with which a user has already chosen Fast DDS's transports or profiles
DDS_USER_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS",
                      "RMW_FASTRTPS_USE_QOS_FROM_XML")


def apply_dds_environment(transport, environ=None) -> dict[str, str]:
    """Set :func:`dds_environment` (``transport``) in ``environ`` (default ``os.environ``) for a
    ROS process started in this one (``record``, ``play``), before ``rclpy.init``.

    A choice already in the environment (any of :data:`DDS_USER_VARIABLES`) wins: nothing is
    set then. Returns what was set.

    Raises:
        ValueError: an unknown ``transport``.
    """
    env = os.environ if environ is None else environ
    wanted = dds_environment(transport)
    if any(env.get(v) for v in DDS_USER_VARIABLES):
        return {}
    env.update(wanted)
    return wanted


def resolve_clip(clip: str) -> Path:
    """A clip name in ``shared/data/motion`` or a path -> an existing path.

    Raises:
        FileNotFoundError: neither exists (lists the shipped clips).
    """
    p = Path(os.path.expanduser(str(clip)))
    if p.is_file():
        return p.resolve()
    from robot_capture.paths import data_dir

    motion = data_dir() / "motion"
    for cand in (motion / str(clip), motion / f"{clip}.bvh"):
        if cand.is_file():
            return cand
    shipped = sorted(x.name for x in motion.glob("*.bvh"))
    raise FileNotFoundError(f"clip {clip!r} not found as a path or in {motion} (shipped: {shipped})")


def clip_rate_hz(path: str | os.PathLike) -> float:
    """Frame rate of a BVH clip from its ``Frame Time:`` header line (1 / frame time).

    Raises:
        ValueError: no valid ``Frame Time:`` line in the file's header.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip().lower().startswith("frame time:"):
                try:
                    dt = float(line.split(":", 1)[1])
                except ValueError:
                    break
                if dt > 0:
                    return 1.0 / dt
                break
            if lineno > 100000:
                break
    raise ValueError(f"{path}: no valid 'Frame Time:' line in the BVH header")


# --------------------------------------------------------------------------- graph


def _clean_params(params: Mapping[str, Any], where: str) -> dict:
    """Drop None / empty lists (ROS parameter files cannot type them); check types."""
    out = {}
    for k, v in params.items():
        if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
            continue
        if isinstance(v, (list, tuple)):
            kinds = {type(x) for x in v}
            if kinds == {int, float}:
                v = [float(x) for x in v]
            elif len(kinds) != 1 or not kinds <= {bool, int, float, str}:
                raise ValueError(f"{where}: parameter {k!r} must be a homogeneous list, got {v!r}")
            v = list(v)
        elif isinstance(v, Path):
            v = str(v)
        elif not isinstance(v, (bool, int, float, str)):
            raise ValueError(f"{where}: parameter {k!r} has unsupported type {type(v).__name__}")
        out[str(k)] = v
    return out


def camera_topics(name: str, compressed: bool) -> tuple[str, str]:
    """(image topic, camera_info topic) of camera ``name`` per the topic contract."""
    from robot_capture.floor.contract import camera_streams

    image, info = camera_streams(name, {"compressed": compressed}, sim=False)
    return (image.topic, info.topic)


def sim_rates(cfg: Mapping) -> dict[str, float]:
    """Rates of the simulators' streams in sim mode: ``{"robot_sim": Hz, "mocap_replay": clip Hz}``.

    Raises:
        FileNotFoundError, ValueError: the clip is missing or has no frame time.
    """
    simc = cfg.get("sim") or {}
    clip = resolve_clip(str(simc.get("clip", "cmu_02_06_bend_scoop_up_lift_arm.bvh")))
    return {"robot_sim": float(simc.get("joint_state_rate_hz", 500.0)), "mocap_replay": clip_rate_hz(clip)}


def station_contract(cfg: Mapping | str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None,
                     sim: bool = False):
    """The :class:`robot_capture.floor.contract.Contract` of a config (path, dict or None for the
    shipped one) with launch-argument overrides applied. Raises as :func:`build`."""
    from robot_capture.floor.contract import build_contract

    if cfg is None or isinstance(cfg, (str, os.PathLike)):
        cfg = load_config(cfg)
    cfg = apply_overrides(cfg, overrides)
    where = Path(cfg["_path"]).name if cfg.get("_path") else "config"
    return build_contract(cfg, sim=sim, sim_rates=sim_rates(cfg) if sim else None, where=where)


#: the recorded Quest hand poses mocap_replay cycles through (1 s each) for a robot mapping with ``hands:``
SIM_HAND_POSES = "rest,pinch,fist,flat"


def _robot_hands(robot: str) -> dict:
    """The robot mapping's ``hands:`` ({} for none; the mapping was checked by ``check_robot``)."""
    from robot_capture.retarget.mapping import RobotMapping

    return dict(RobotMapping.load(robot).hands)


def _robot_argument(robot: str) -> str:
    """A robot name as given; a mapping path (``*.yaml`` or containing ``/``) made absolute, so that
    every node finds it whatever its working directory. FileNotFoundError for a missing path."""
    from robot_capture.paths import is_robot_path, resolve_robot

    return str(resolve_robot(robot)) if is_robot_path(robot) else robot


def build(cfg: Mapping | str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None,
          sim: bool = False) -> list[NodeSpec]:
    """Build the node list of a station, in start order.

    Args:
        cfg: a config dict (from :func:`load_config`), a path, or None for the shipped one.
        overrides: launch-argument style overrides (:func:`apply_overrides`).
        sim: add the simulators (mocap_replay, robot_sim) and render cameras synthetically.

    Returns:
        list of :class:`NodeSpec`, sorted by start rank (recorder first).

    Raises:
        ValueError, KeyError, FileNotFoundError: bad config, unknown override, missing clip.
    """
    if cfg is None or isinstance(cfg, (str, os.PathLike)):
        cfg = load_config(cfg)
    cfg = apply_overrides(cfg, overrides)
    extra = cfg.get("parameters") or {}
    robot = _robot_argument(str(cfg.get("robot") or "g1"))
    episode = cfg.get("episode") or {}
    rt = cfg.get("retarget") or {}
    rec = cfg.get("record") or {}
    simc = cfg.get("sim") or {}
    config_path = cfg.get("_path", "")
    nice = int(cfg.get("nice", 0) or 0)
    if not -20 <= nice <= 19:
        raise ValueError(f"nice must be within -20..19, got {nice}")
    env = dds_environment(cfg.get("dds_transport"))
    where = Path(config_path).name if config_path else "config"
    from robot_capture.floor.config import check_node_parameters, check_robot, validate_floor

    validate_floor(cfg, where=where)  # with the overrides applied
    check_robot(robot, where=f"{where}: robot")
    from robot_capture.floor.contract import build_contract

    contract = build_contract(cfg, sim=sim, sim_rates=sim_rates(cfg) if sim else None, where=where)
    station = str(cfg.get("station") or "").strip().strip("/")
    if station and not _STATION_RE.match(station):
        raise ValueError(f"station {station!r}: a letter then letters, digits or '_' (a ROS namespace token)")
    namespace = f"/{station}" if station else ""
    specs: list[NodeSpec] = []

    def add(role, name, params, timeout=5.0, remappings=()):
        exe, module = EXECUTABLES[role]
        check_node_parameters(name, module, extra.get(name) or {}, where=where)
        merged = {**params, **(extra.get(name) or {})}
        specs.append(NodeSpec(role=role, name=name, executable=exe, module=module,
                              parameters=_clean_params(merged, f"node {name}"),
                              remappings=list(remappings), shutdown_timeout_s=timeout, nice=nice,
                              env=dict(env), required=role != "camera", namespace=namespace))

    add("recorder", "recorder", {
        "output_dir": os.path.abspath(os.path.expanduser(str(cfg.get("output_dir") or "recordings"))),
        "topics": contract.recorded_topics(),
        "task": str(episode.get("task", "")),
        "operator": str(episode.get("operator", "")),
        "scene": str(episode.get("scene", "")),
        "notes": str(episode.get("notes", "")),
        "compression": str(rec.get("compression", "none")),
        "robot": robot,
        "attach_configs": [config_path] if config_path else [],
        "tasks": split_list(episode.get("tasks")),
    }, timeout=15.0)
    add("retarget", "retarget", {
        "robot": robot,
        "source": str(rt.get("source", "exo")),
        "rate_hz": float(rt.get("rate_hz", 100.0)),
    })
    if str(rt.get("source", "exo")) == "vr" and not sim:  # the headset page (issue 19); in sim mocap_replay is the headset
        add("xr", "xr", {"recorder": f"{namespace}/recorder"})
    for cam_name, cam in (cfg.get("cameras") or {}).items():
        cam = cam or {}
        source = str(simc.get("camera_source", "synthetic")) if sim else str(cam.get("source", "0"))
        add("camera", f"camera_{cam_name}", {
            "name": str(cam_name),
            "source": source,
            "rate_hz": float(cam.get("rate_hz", 30.0)),
            "width": int(cam.get("width", 320)),
            "height": int(cam.get("height", 240)),
            "compressed": _bool(cam.get("compressed", False)),
            "robot": robot,
        })
    if sim:
        add("robot_sim", "robot_sim", {
            "robot": robot,
            "rate_hz": float(simc.get("joint_state_rate_hz", 500.0)),
            "time_constant_s": float(simc.get("time_constant_s", 0.05)),
        })
        replay = {"clip": str(resolve_clip(str(simc.get("clip", "cmu_02_06_bend_scoop_up_lift_arm.bvh")))),
                  "loop": _bool(simc.get("loop", True))}
        if _robot_hands(robot):  # a robot with hands: the replayed operator opens, pinches and closes them
            replay["hand_poses"] = SIM_HAND_POSES
        add("mocap_replay", "mocap_replay", replay)
    unknown = set(extra) - {s.name for s in specs}
    if unknown:
        raise KeyError(f"parameters for unknown nodes {sorted(unknown)}; nodes are {[s.name for s in specs]}")
    specs.sort(key=lambda s: s.start_rank)
    # the station contract: the recorder's episode manager gates on the required streams, names
    # every stream as the contract does and stores the expected rates in each bag
    for s in specs:
        if s.role == "recorder" and "expected_streams" not in (extra.get(s.name) or {}):
            s.parameters["expected_streams"] = [st.to_param() for st in contract.streams]
            opt = [st.topic for st in contract.optional()]
            if opt and "optional_streams" not in (extra.get(s.name) or {}):
                s.parameters["optional_streams"] = opt
    return specs


def shutdown_order(specs: list[NodeSpec]) -> list[NodeSpec]:
    """Reverse start order, with every recorder last (so the open episode sees all data)."""
    rev = list(reversed(specs))
    return [s for s in rev if s.role != "recorder"] + [s for s in rev if s.role == "recorder"]


def expected_topics(specs: list[NodeSpec]) -> dict[str, float | None]:
    """topic -> expected rate in Hz (None: presence only) of the required streams of the station
    contract, as the graph handed it to the recorder (``expected_streams``); what the QA requires
    of each bag. Empty without a recorder."""
    from robot_capture.floor.contract import streams_from_params

    rec = next((s for s in specs if s.role == "recorder"), None)
    if rec is None:
        return {}
    streams = streams_from_params(rec.parameters.get("expected_streams") or [],
                                  rec.parameters.get("optional_streams") or [])
    return {st.topic: st.rate_hz for st in streams if st.required}


# --------------------------------------------------------------------------- params files


def params_yaml(spec: NodeSpec) -> str:
    """The ROS 2 parameters-file text for ``spec`` (``/**: {ros__parameters: ...}``).

    The wildcard node key keeps the file valid under any namespace or node-name remap.
    """
    return yaml.safe_dump({"/**": {"ros__parameters": dict(spec.parameters)}}, sort_keys=True,
                          default_flow_style=False)


def write_params_file(spec: NodeSpec, directory: str | os.PathLike) -> Path:
    """Write ``<directory>/<name>.params.yaml`` for ``spec``; return its path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{spec.name}.params.yaml"
    return write_text_atomic(path, params_yaml(spec), fsync=False)


def ros_arguments(spec: NodeSpec, params_file: str | os.PathLike) -> list[str]:
    """``--ros-args`` tail for a child process: node name, params file, remappings."""
    args = ["--ros-args", "-r", f"__node:={spec.name}", "--params-file", str(params_file)]
    if spec.namespace:
        args += ["-r", f"__ns:={spec.namespace}"]
    for src, dst in spec.remappings:
        args += ["-r", f"{src}:={dst}"]
    return args


def describe(specs: list[NodeSpec]) -> str:
    """Human-readable summary of a graph (for ``up --dry-run`` and logs)."""
    lines = []
    for s in specs:
        lines.append(f"{s.fqn} ({s.package}/{s.executable})")
        for k, v in sorted(s.parameters.items()):
            if k == "expected_streams":  # the station contract: one readable line per stream
                from robot_capture.floor.contract import streams_from_params

                lines.append(f"    {k}: (the station contract)")
                for st in streams_from_params(v, s.parameters.get("optional_streams") or ()):
                    rate = f"{st.rate_hz:g} Hz" if st.rate_hz else "no rate"
                    lines.append(f"        {st.topic}: {st.name} | {st.role} | {st.source} | {rate}"
                                 f"{'' if st.required else ' | optional'}")
                continue
            lines.append(f"    {k}: {v}")
        for a, b in s.remappings:
            lines.append(f"    remap {a} -> {b}")
        for k, v in sorted(s.env.items()):
            lines.append(f"    env {k}={v}")
        if s.nice:
            lines.append(f"    nice {s.nice}")
    return "\n".join(lines)
