"""The floor graph as a ``launch`` description, for ``ros2 launch`` on a real ROS install.

``launch/capture.launch.py`` and ``launch/sim.launch.py`` are two lines each: they call
:func:`generate` with ``sim=False`` / ``sim=True``. The node list comes from
:func:`robot_capture.floor.graph.build`, the same function ``robot-capture up`` uses.

Launch API used (checked against ros2/launch and ros2/launch_ros, branches jazzy and
rolling): ``launch.LaunchDescription``, ``launch.actions.DeclareLaunchArgument(name,
default_value=, description=)``, ``launch.actions.OpaqueFunction(function=, kwargs=)``
whose function gets the ``LaunchContext`` and returns actions,
``LaunchContext.launch_configurations`` (dict of str), and
``launch_ros.actions.Node(package=, executable=, name=, namespace=, parameters=[path],
remappings=[(from, to)], output='screen', sigterm_timeout=str, on_exit=[...], prefix=str, additional_env=dict)``,
``launch.actions.Shutdown(reason=)``, ``launch.actions.RegisterEventHandler(event_handler)``,
``launch.event_handlers.OnShutdown(on_shutdown=callable(event, context))``, ``Shutdown.due_to_sigint``,
``LaunchContext.noninteractive`` and ``ExecuteLocal.process_details`` (``{'pid': ...}`` once started). Each node's
parameters are passed as the same params file ``up`` writes
(:func:`robot_capture.floor.graph.write_params_file`), so both paths hand the nodes
identical values. ``launch`` and ``launch_ros`` are imported only inside the
functions: this module imports without them.

**Shutdown order** (issue 18: an episode open at shutdown must end before any source stops).
On a ``Shutdown`` event that launch itself turns into signals (a required node exited, a
``--noninteractive`` launch got SIGINT), every ``ExecuteLocal`` SIGINTs its process from its
own ``OnShutdown`` handler, all at once. The handler :func:`stop_recorder_first` is registered
after the nodes, so launch calls it first (``LaunchContext.register_event_handler`` prepends):
it SIGINTs the recorder and blocks (at most the recorder's ``shutdown_timeout_s``) until the
recorder has closed its episode (:func:`robot_capture.floor.launcher.episode_closed`: its output
folder lock is free), and only then do the other handlers signal the sources. A terminal
Ctrl-C is different: the terminal signals every process of the foreground group at the same
instant, before launch sees it (launch then sends no SIGINT, ``due_to_sigint``), so no order
can be imposed; the recorder stops its episode at its own signal (``run_node``: within 0.05 s,
with the context still up), while the sources need as long to stop, so the episode does not end
in their silence. (``ros2 launch`` on SIGTERM cancels itself without signalling its nodes:
stop it with SIGINT.)
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
from pathlib import Path

from robot_capture.floor import graph

_CLAIMS: list = []  # the station claims of this launch process (held until it exits)


def declared_arguments(sim: bool) -> dict[str, tuple[str, str]]:
    """Launch arguments of capture.launch.py (``sim=False``) or sim.launch.py: name -> (default, help)."""
    args = dict(graph.LAUNCH_ARGUMENTS)
    if sim:
        args.update(graph.SIM_LAUNCH_ARGUMENTS)
    return args


def node_actions(context, sim: bool):
    """OpaqueFunction body: read the launch arguments, build the graph, return Node actions.

    Raises:
        FileNotFoundError, ValueError, KeyError: as :func:`graph.build` (launch reports them).
    """
    from launch.actions import RegisterEventHandler, Shutdown
    from launch.event_handlers import OnShutdown
    from launch_ros.actions import Node

    values = {name: context.launch_configurations.get(name, default)
              for name, (default, _help) in declared_arguments(sim).items()}
    specs = graph.build(values.pop("config") or None, overrides=values, sim=sim)
    # one station per domain and namespace, before any node starts (raises StationBusyError: launch
    # reports it and exits); the claim lives as long as this launch process
    from robot_capture.floor.station_guard import claim_for_specs

    _CLAIMS.append(claim_for_specs(specs, f"ros2 launch robot_capture {'sim' if sim else 'capture'}.launch.py",
                                   log=print))
    workdir = tempfile.mkdtemp(prefix="robot_capture_launch_")
    recorder = None
    atexit.register(shutil.rmtree, workdir, True)  # the params files outlive the nodes' start only
    actions = []
    for spec in specs:
        params_file = graph.write_params_file(spec, workdir)
        actions.append(node := Node(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            namespace=spec.namespace or None,  # launch argument station:=a -> /a
            parameters=[str(params_file)],
            remappings=[(a, b) for a, b in spec.remappings],
            output="screen",
            # the recorder needs time to close its episode on SIGINT before escalation
            sigterm_timeout=str(spec.shutdown_timeout_s),
            # as `up`: a required node's exit ends the launch (cameras are optional)
            on_exit=[Shutdown(reason=f"required node {spec.name} exited")] if spec.required else None,
            # config `nice` (GNU nice runs the node anyway, at normal priority, if not permitted)
            prefix=f"nice -n {spec.nice}" if spec.nice else None,
            # config `dds_transport` (ExecuteLocal's additional_env, passed through by Node)
            additional_env=dict(spec.env) or None,
        ))
        if spec.role == "recorder":
            recorder = (node, spec)
    if recorder is not None:  # after the nodes: launch calls it before their own shutdown handlers
        actions.append(RegisterEventHandler(OnShutdown(on_shutdown=stop_recorder_first(*recorder))))
    return actions


def _pid_alive(pid: int) -> bool:
    """False once ``pid`` has exited (a zombie counts as exited: launch's loop may not have reaped it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False


def stop_recorder_first(recorder_action, spec: graph.NodeSpec):
    """The ``OnShutdown`` callable (see the module docstring): SIGINT the recorder and wait until it has
    closed its episode, when launch is about to signal every node; nothing after a terminal Ctrl-C."""
    from robot_capture.floor.launcher import wait_episode_closed

    def on_shutdown(event, context):
        details = getattr(recorder_action, "process_details", None)
        if not details or not details.get("pid"):
            return None
        if getattr(event, "due_to_sigint", False) and not getattr(context, "noninteractive", False):
            return None  # the terminal signalled every node at once already
        pid = int(details["pid"])
        try:
            os.kill(pid, signal.SIGINT)
        except OSError:
            return None
        wait_episode_closed(spec.parameters.get("output_dir"), lambda: _pid_alive(pid), spec.shutdown_timeout_s)
        return None

    return on_shutdown


def generate(sim: bool):
    """Return the ``LaunchDescription`` of the floor graph (with simulators if ``sim``)."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    entities = [DeclareLaunchArgument(name, default_value=default, description=desc)
                for name, (default, desc) in declared_arguments(sim).items()]
    entities.append(OpaqueFunction(function=node_actions, kwargs={"sim": sim}))
    return LaunchDescription(entities)
