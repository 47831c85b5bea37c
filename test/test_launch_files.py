"""launch/capture.launch.py and launch/sim.launch.py.

`launch` and `launch_ros` are not on PyPI, so there are two checks:

* always: the launch files are loaded the way `ros2 launch` loads them
  (``SourceFileLoader`` + ``generate_launch_description()``) against minimal fakes of
  the launch API they use. The fakes keep the real signatures (keyword-only
  arguments, accepted keyword names) of ros2/launch and ros2/launch_ros, branch
  jazzy: ``LaunchDescription(initial_entities)``, ``DeclareLaunchArgument(name, *,
  default_value, description, choices)``, ``OpaqueFunction(*, function, args, kwargs)``
  and ``Node(*, executable, package, name, namespace, exec_name, parameters,
  remappings, ros_arguments, arguments, **ExecuteProcess/ExecuteLocal kwargs)``.
* where the real packages are importable (the ROS docker image in CI), the same
  checks with the real classes, executing the OpaqueFunction in a real LaunchContext.

Both compare the nodes with ``robot_capture.floor.graph.build`` (what `up` runs).
"""
from __future__ import annotations

import os
import shutil
import sys
import types
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

import pytest
import yaml

from robot_capture.floor import graph

LAUNCH_DIR = Path(__file__).resolve().parents[1] / "launch"

# ExecuteProcess(cmd, prefix, name, cwd, env, additional_env) + ExecuteLocal(...) keywords (jazzy)
_EXECUTE_KWARGS = {"prefix", "cwd", "env", "additional_env", "shell", "sigterm_timeout", "sigkill_timeout",
                   "emulate_tty", "output", "output_format", "cached_output", "log_cmd", "on_exit",
                   "respawn", "respawn_delay", "respawn_max_retries", "condition"}


def _fake_launch_modules():
    launch = types.ModuleType("launch")
    actions = types.ModuleType("launch.actions")
    launch_ros = types.ModuleType("launch_ros")
    handlers = types.ModuleType("launch.event_handlers")

    class RegisterEventHandler:
        def __init__(self, event_handler, **kwargs):
            self.event_handler = event_handler

    class OnShutdown:
        def __init__(self, *, on_shutdown, **kwargs):
            assert callable(on_shutdown)
            self.on_shutdown = on_shutdown
    ros_actions = types.ModuleType("launch_ros.actions")

    class LaunchDescription:
        def __init__(self, initial_entities=None, *, deprecated_reason=None):
            self.entities = list(initial_entities or [])

    class DeclareLaunchArgument:
        def __init__(self, name, *, default_value=None, description=None, choices=None, **kwargs):
            assert isinstance(name, str)
            assert default_value is None or isinstance(default_value, str)
            self.name, self.default_value, self.description = name, default_value, description

    class Shutdown:
        def __init__(self, *, reason="reason not given", **kwargs):
            self.reason = reason

    class OpaqueFunction:
        def __init__(self, *, function, args=None, kwargs=None, **left_over_kwargs):
            assert callable(function)
            assert kwargs is None or isinstance(kwargs, dict)
            self.function, self.args, self.kwargs = function, list(args or []), dict(kwargs or {})

        def execute(self, context):
            return self.function(context, *self.args, **self.kwargs)

    class Node:
        def __init__(self, *, executable, package=None, name=None, namespace=None, exec_name=None,
                     parameters=None, remappings=None, ros_arguments=None, arguments=None, **kwargs):
            unknown = set(kwargs) - _EXECUTE_KWARGS
            assert not unknown, f"Node() got keywords launch_ros does not accept: {unknown}"
            assert parameters is None or isinstance(parameters, list)  # ensure_argument_type(list)
            for rule in remappings or []:
                assert len(rule) == 2 and all(isinstance(x, str) for x in rule)
            self.node_package, self.node_executable, self.name = package, executable, name
            self.namespace = namespace
            self.parameters, self.remappings, self.kwargs = parameters, list(remappings or []), kwargs

    launch.LaunchDescription = LaunchDescription
    actions.DeclareLaunchArgument = DeclareLaunchArgument
    actions.OpaqueFunction = OpaqueFunction
    actions.Shutdown = Shutdown
    actions.RegisterEventHandler = RegisterEventHandler
    handlers.OnShutdown = OnShutdown
    launch.actions = actions
    launch.event_handlers = handlers
    ros_actions.Node = Node
    launch_ros.actions = ros_actions
    return {"launch": launch, "launch.actions": actions, "launch.event_handlers": handlers, "launch_ros": launch_ros,
            "launch_ros.actions": ros_actions}


def _load(path: Path):
    """Exactly launch's load_python_launch_file_as_module + generate_launch_description()."""
    loader = SourceFileLoader("python_launch_file", str(path))
    mod = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(mod)
    return mod.generate_launch_description()


@pytest.fixture(autouse=True)
def _station_claims(monkeypatch, tmp_path):
    """The launch files claim the station slot for the life of the launch process; here that is the
    pytest worker, so each test gets its own lock folder and its claims are released after it."""
    from robot_capture.floor import ros_launch

    monkeypatch.setenv("ROBOT_CAPTURE_LOCK_DIR", str(tmp_path / "station_locks"))
    monkeypatch.setenv("ROBOT_CAPTURE_STATION_PROBE_S", "0")
    yield
    while ros_launch._CLAIMS:
        ros_launch._CLAIMS.pop().release()


def test_a_second_launch_of_a_station_is_refused_before_any_node(monkeypatch):
    """Two launches on one domain and namespace: the second raises (launch reports it and exits)."""
    from robot_capture.floor import ros_launch
    from robot_capture.floor.station_guard import StationBusyError

    for name, mod in _fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, mod)
    ros_launch.node_actions(_Context({"cameras": "none"}), sim=False)
    with pytest.raises(StationBusyError, match="another station is up on ROS_DOMAIN_ID .*ros2 launch robot_capture capture"):
        ros_launch.node_actions(_Context({"cameras": "none"}), sim=True)


class _Context:
    def __init__(self, configs):
        self.launch_configurations = dict(configs)


def _check(ld, sim, node_cls, run_opaque, overrides):
    args = {e.name: e for e in ld.entities if type(e).__name__ == "DeclareLaunchArgument"}
    want_args = {"config", "robot", "output_dir", "task", "operator", "scene", "topics", "cameras", "nice",
                 "dds_transport", "station"}
    if sim:
        want_args |= {"clip", "loop"}
    assert set(args) == want_args
    opaque = [e for e in ld.entities if type(e).__name__ == "OpaqueFunction"]
    assert len(opaque) == 1
    entities = run_opaque(opaque[0], overrides)
    nodes = [n for n in entities if isinstance(n, node_cls)]
    # the one other entity: the shutdown handler that stops the recorder's episode first (ros_launch)
    assert entities[:len(nodes)] == nodes and [type(e).__name__ for e in entities[len(nodes):]] == ["RegisterEventHandler"]
    specs = graph.build(None, overrides=overrides, sim=sim)
    assert [(n.node_package, n.node_executable) for n in nodes] == [(s.package, s.executable) for s in specs]
    return nodes, specs


@pytest.mark.parametrize("sim", [False, True])
def test_launch_files_with_fake_launch_api(monkeypatch, sim, tmp_path):
    for name, mod in _fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, mod)
    ld = _load(LAUNCH_DIR / ("sim.launch.py" if sim else "capture.launch.py"))
    overrides = {"task": "pour water", "operator": "bob", "output_dir": str(tmp_path)}
    if sim:
        overrides["nice"] = "-5"
        overrides["dds_transport"] = "LARGE_DATA"
        overrides["station"] = "a"

    def run_opaque(op, ov):
        configs = {k: d for k, (d, _h) in (graph.LAUNCH_ARGUMENTS | (graph.SIM_LAUNCH_ARGUMENTS if sim else {})).items()}
        configs.update(ov)  # what `ros2 launch ... task:=... ` puts in the context
        return op.execute(_Context(configs))

    nodes, specs = _check(ld, sim, sys.modules["launch_ros.actions"].Node, run_opaque, overrides)
    for node, spec in zip(nodes, specs):
        assert node.name == spec.name
        assert node.namespace == ("/a" if sim else None)  # station:=a
        assert node.kwargs["output"] == "screen"
        on_exit = node.kwargs["on_exit"]
        assert (on_exit is None) == (spec.role == "camera")
        assert on_exit is None or type(on_exit[0]).__name__ == "Shutdown"
        assert node.kwargs["prefix"] == ("nice -n -5" if sim else None)
        # the shipped Fast DDS profile by default (floor.graph.dds_environment), the transport set if given
        assert node.kwargs["additional_env"] == ({"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"} if sim
                                                 else graph.dds_environment(""))
        float(node.kwargs["sigterm_timeout"])
        (pfile,) = node.parameters
        assert yaml.safe_load(Path(pfile).read_text())["/**"]["ros__parameters"] == spec.parameters
    rec = nodes[0]
    assert rec.name == "recorder"
    params = yaml.safe_load(Path(rec.parameters[0]).read_text())["/**"]["ros__parameters"]
    assert params["task"] == "pour water" and params["operator"] == "bob"
    assert ("mocap_replay" in [n.name for n in nodes]) is sim


def _real_launch():
    try:
        import launch  # noqa: F401
        import launch_ros.actions  # noqa: F401
    except ImportError:
        return None
    return launch


@pytest.mark.skipif(_real_launch() is None, reason="ros2 launch / launch_ros not installed (checked with fakes above)")
@pytest.mark.parametrize("sim", [False, True])
def test_launch_files_with_real_launch(sim, tmp_path):
    import launch
    from launch_ros.actions import Node

    ld = _load(LAUNCH_DIR / ("sim.launch.py" if sim else "capture.launch.py"))
    assert isinstance(ld, launch.LaunchDescription)
    overrides = {"task": "pour water", "operator": "bob", "output_dir": str(tmp_path)}

    def run_opaque(op, ov):
        ctx = launch.LaunchContext()
        for arg in ld.get_launch_arguments():
            ctx.launch_configurations[arg.name] = ov.get(arg.name, launch.utilities.perform_substitutions(
                ctx, arg.default_value))
        return op.execute(ctx)

    _check(ld, sim, Node, run_opaque, overrides)


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.xdist_group("sim_floor")
@pytest.mark.skipif(shutil.which("ros2") is None or _real_launch() is None,
                    reason="needs a ROS install with `ros2 launch` and the package built by colcon (CI image)")
def test_ros2_launch_sim_records_a_complete_episode(tmp_path):
    """`ros2 launch robot_capture sim.launch.py`, one episode through the services, Ctrl-C."""
    import signal
    import subprocess

    from sensor_msgs.msg import JointState

    from robot_capture.bag.reader import BagReader
    from robot_capture.floor.client import EpisodeClient
    from robot_capture.floor.demo import list_bags

    out_dir = tmp_path / "episodes"
    log_path = tmp_path / "launch.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["ros2", "launch", "robot_capture", "sim.launch.py", f"output_dir:={out_dir}",
                                 "cameras:=none", "task:=launch test", "operator:=ci"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with EpisodeClient(discovery_timeout_s=40.0, node_name="launch_operator") as client:
            client.watch({"/joint_states": JointState, "/retarget/joint_command": JointState})
            client.wait_for_recorder()
            client.wait_for_data(list(client.counts), min_messages=5, timeout_s=40.0)
            client.spin_for(1.0)
            client.start_episode()
            client.spin_for(2.0)
            client.stop_episode(success=True)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log_path.read_text(errors="replace")
    bags = list_bags(out_dir)
    assert len(bags) == 1, text[-4000:]
    with BagReader(bags[0]) as r:
        assert r.topics["/joint_states"].count > 0 and r.topics["/retarget/joint_command"].count > 0
        assert r.metadata.custom_data.get("episode.operator") == "ci"
