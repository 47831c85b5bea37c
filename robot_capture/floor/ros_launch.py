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
remappings=[(from, to)], output='screen', sigterm_timeout=str, on_exit=[...], prefix=str, additional_env=dict)`` and
``launch.actions.Shutdown(reason=)``. Each node's
parameters are passed as the same params file ``up`` writes
(:func:`robot_capture.floor.graph.write_params_file`), so both paths hand the nodes
identical values. ``launch`` and ``launch_ros`` are imported only inside the
functions: this module imports without them.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile

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
    from launch.actions import Shutdown
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
    atexit.register(shutil.rmtree, workdir, True)  # the params files outlive the nodes' start only
    actions = []
    for spec in specs:
        params_file = graph.write_params_file(spec, workdir)
        actions.append(Node(
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
    return actions


def generate(sim: bool):
    """Return the ``LaunchDescription`` of the floor graph (with simulators if ``sim``)."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    entities = [DeclareLaunchArgument(name, default_value=default, description=desc)
                for name, (default, desc) in declared_arguments(sim).items()]
    entities.append(OpaqueFunction(function=node_actions, kwargs={"sim": sim}))
    return LaunchDescription(entities)
