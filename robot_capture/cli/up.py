"""``robot-capture up CONFIG``: run the floor graph without ``launch`` installed."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Bring up a training-floor station from its config (config/floor.yaml): the retarget
node, the recorder node and the camera nodes, plus the simulators (mocap_replay,
robot_sim, synthetic cameras) with --sim. The node list comes from
robot_capture.floor.graph, the same code launch/capture.launch.py and
launch/sim.launch.py use, so `up` and `ros2 launch` run the same graph.

Each node is a child process; its output is prefixed with [node name]. Ctrl-C or
SIGTERM shuts down in order: the recorder first, which stops the open episode at once
(metadata.yaml written), then the data sources, then the recorder finishes its QA. A node that dies is reported at once and
the rest of the graph is shut down (unless --keep-going).

`up` prints which config files it loaded, then, once every node runs, the station check
(`robot-capture station check`: every stream of the station contract, its rate, clock offset,
the robot's joints, disk hours). Once the recorder reports every required stream fresh, `up`
prints one "[up] floor ready" line (or after 60 s why not, the device first);
--status-every N adds a one-line status every N s (state, streams fresh, episode, counters). `up` exits non-zero when a required node died.

Episodes are driven from another shell (pure rclpy, works in the pip install):
  robot-capture episode start --task pick_cup      robot-capture episode success
  robot-capture console --keys                     robot-capture console --web
or, with a ROS install: ros2 service call /recorder/start_episode std_srvs/srv/Trigger
"""

EPILOG = """\
examples:
  robot-capture up                                   # shipped config/floor.yaml, real camera 0
  robot-capture up --sim --task pick_cup --operator alice
  robot-capture up my_station.yaml --robot h1 --cameras none --output-dir /data/episodes
  robot-capture up --sim --dry-run                   # print the graph and exit
"""


def add_parser(sub):
    from robot_capture.floor.graph import LAUNCH_ARGUMENTS, SIM_LAUNCH_ARGUMENTS

    p = sub.add_parser("up", help="bring up the floor graph from a config without `launch` installed",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", default="",
                   help="station config YAML (default: the shipped config/floor.yaml)")
    p.add_argument("--sim", action="store_true",
                   help="add the simulators (mocap_replay on a real clip, robot_sim) and render cameras from FK")
    shown = _config_defaults()
    for name, (_default, desc) in {**LAUNCH_ARGUMENTS, **SIM_LAUNCH_ARGUMENTS}.items():
        if name == "config":
            continue
        default = f" (default: {shown[name]}, from the config)" if name in shown else ""
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, default="", help=desc + default)
    p.add_argument("--keep-going", action="store_true",
                   help="when a node dies, report it and keep the rest running")
    p.add_argument("--dry-run", action="store_true", help="print the node list with parameters and exit")
    p.add_argument("--status-every", type=float, default=0.0, metavar="S",
                   help="print a one-line floor status every S seconds (default: 0 = only the ready line)")
    p.add_argument("--station-probe-s", type=float, default=None, metavar="S",
                   help="before starting, listen S seconds on the ROS domain for another station's recorder or "
                        "retarget node in this namespace (default: $ROBOT_CAPTURE_STATION_PROBE_S or 2.0; "
                        "0 = check this host only)")
    p.add_argument("--no-watch", action="store_true",
                   help="do not join the ROS graph to watch the recorder (no ready/status lines, no station check)")
    p.add_argument("--no-check", action="store_true", help="do not run the station check once the floor is up")
    return p


def _station_check(contract, namespace: str):
    """``on_up`` of the watch: run the station check in a thread and print its table."""
    import threading

    def work(sup):
        from robot_capture.floor.station_sample import check_station

        try:
            report = check_station(contract, namespace=namespace)
        except Exception as exc:  # noqa: BLE001 - the floor runs on without the check; say why
            sup.log(f"station check could not run: {exc}")
            return
        for line in report.text().splitlines():
            sup.log(line)

    return lambda sup: threading.Thread(target=work, args=(sup,), name="station-check", daemon=True).start()


def _watch(specs, status_every_s: float, contract=None):
    """The ready/status monitor: a RecorderBridge on the recorder's console_state, in this
    process, with the same DDS settings as the nodes; with a ``contract``, the station check once
    the floor is up. Returns (watch, bridge) or (None, None)."""
    import os

    from robot_capture.floor.graph import DDS_ENV_VARS
    from robot_capture.floor.readiness import FloorWatch

    rec = next((s for s in specs if s.role == "recorder"), None)
    if rec is None:
        return None, None
    if rec.env:  # the participant must use the floor's transports, or it sees no data
        for k in DDS_ENV_VARS:
            os.environ.pop(k, None)
        os.environ.update(rec.env)
    try:
        from robot_capture.console.bridge import RecorderBridge

        bridge = RecorderBridge(rec.fqn, node_name="floor_up_watch")
    except Exception as exc:  # noqa: BLE001 - no rclpy here: the floor still runs, without health lines
        print(f"[up] no ready/status lines: {exc}", file=sys.stderr)
        return None, None
    on_up = _station_check(contract, rec.namespace) if contract is not None else None
    return FloorWatch(bridge.latest, status_every_s=status_every_s, on_up=on_up), bridge


def _config_defaults() -> dict[str, str]:
    """What each flag defaults to: the shipped config/floor.yaml's values (shown in --help)."""
    from robot_capture.floor import graph

    try:
        cfg = graph.load_config(None)
    except (OSError, ValueError):
        return {}
    ep, sim, rec = cfg.get("episode") or {}, cfg.get("sim") or {}, cfg.get("record") or {}
    cams = list(cfg.get("cameras") or {})
    return {"robot": str(cfg.get("robot", "g1")), "output_dir": str(cfg.get("output_dir", "recordings")),
            "task": repr(ep.get("task", "")), "operator": repr(ep.get("operator", "")),
            "scene": repr(ep.get("scene", "")),
            "topics": f"record.topics, {len(rec.get('topics') or [])} topics, plus the cameras'",
            "cameras": ",".join(cams) if cams else "none", "nice": str(cfg.get("nice", 0)),
            "dds_transport": repr(str(cfg.get("dds_transport", ""))) + " = the shipped Fast DDS profile"
            if not cfg.get("dds_transport") else str(cfg.get("dds_transport")),
            "clip": str(sim.get("clip", "")), "loop": str(sim.get("loop", True)).lower(),
            "station": repr(str(cfg.get("station", "") or "")) + " = no namespace"
            if not cfg.get("station") else str(cfg.get("station"))}


def _flag_problem(args, cfg: dict) -> str:
    """The one-line error for a flag whose value cannot work, naming the flag (not the config
    file, which did not give the value), in plain words; '' when the flags are fine."""
    from robot_capture.cli.flags import did_you_mean, robot_flag_problem
    from robot_capture.floor.graph import split_list

    problem = robot_flag_problem(args.robot)
    if problem:
        return problem
    if args.cameras:
        have = list(cfg.get("cameras") or {})
        names = split_list(args.cameras)
        missing = [n for n in names if n not in have] if names not in (["none"], ["false"]) else []
        if missing:
            where = Path(cfg.get("_path") or "the config").name
            return (f"--cameras {args.cameras}: no camera {', '.join(repr(m) for m in missing)} in {where}"
                    f"{did_you_mean(missing[0], have)}; cameras there: {', '.join(have) or 'none'} (or none)")
    return ""


def _error_text(exc: BaseException) -> str:
    """An exception's message without the quotes ``str(KeyError)`` adds."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def loaded_configs(cfg: dict, specs) -> str:
    """``[up] config: <floor.yaml> | robot: <mapping> | DDS profile: <xml>``: the files this run reads."""
    parts = [f"config: {cfg.get('_path', '(none)')}"]
    if cfg.get("_streams_from"):
        parts.append(f"streams from {cfg['_streams_from']} (the config has no `streams:`)")
    rec = next((s for s in specs if s.role == "recorder"), None)
    if rec is not None:
        from robot_capture.paths import resolve_robot

        try:
            parts.append(f"robot: {resolve_robot(rec.parameters.get('robot', 'g1'))}")
        except (KeyError, FileNotFoundError):
            pass
        prof = next((v for k, v in rec.env.items() if k.endswith("PROFILES_FILE")), "")
        if prof:
            parts.append(f"DDS profile: {prof}")
    return "[up] " + " | ".join(parts)


def run(args) -> int:
    from robot_capture.cli.outputs import OutputPathError, check_output_dir
    from robot_capture.floor import graph, launcher
    from robot_capture.floor.graph import LAUNCH_ARGUMENTS, SIM_LAUNCH_ARGUMENTS

    overrides = {k: getattr(args, k) for k in {**LAUNCH_ARGUMENTS, **SIM_LAUNCH_ARGUMENTS} if k != "config"}
    try:
        cfg = graph.load_config(args.config or None)
        problem = _flag_problem(args, cfg)
        if problem:
            print(f"robot-capture up: {problem}", file=sys.stderr)
            return 2
        specs = graph.build(cfg, overrides=overrides, sim=args.sim)
        contract = graph.station_contract(cfg, overrides, sim=args.sim)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"robot-capture up: {_error_text(exc)}", file=sys.stderr)
        return 2
    rec = next((s for s in specs if s.role == "recorder"), None)
    if rec is not None and rec.parameters.get("output_dir"):
        flag = "--output-dir" if args.output_dir else f"{Path(cfg.get('_path') or 'config').name}: output_dir"
        try:  # the recorder would fail on it at start, with an errno and a repr; a dry run makes nothing
            check_output_dir(rec.parameters["output_dir"], flag)  # the recorder makes it: a refused start leaves nothing
        except OutputPathError as exc:
            print(f"robot-capture up: {exc}", file=sys.stderr)
            return 2
    print(loaded_configs(cfg, specs), flush=True)
    if args.dry_run:
        print(graph.describe(specs))
        return 0
    if args.status_every < 0:
        print("robot-capture up: --status-every must be >= 0", file=sys.stderr)
        return 2
    from robot_capture.floor.station_guard import StationBusyError, claim_for_specs

    if args.station_probe_s is not None and not args.station_probe_s >= 0:
        print("robot-capture up: --station-probe-s must be >= 0", file=sys.stderr)
        return 2
    try:  # one station per domain and namespace, checked before any node starts
        claim = claim_for_specs(specs, "robot-capture up", probe_s=args.station_probe_s,
                                log=lambda m: print(f"[up] {m}", flush=True))
    except StationBusyError as exc:
        print(f"robot-capture up: not starting: {exc}", file=sys.stderr)
        return 2
    with claim:
        watch, bridge = (None, None) if args.no_watch else _watch(specs, args.status_every,
                                                                  None if args.no_check else contract)
        try:
            return launcher.run(specs, keep_going=args.keep_going, watch=watch)
        finally:
            if bridge is not None:
                bridge.close()
