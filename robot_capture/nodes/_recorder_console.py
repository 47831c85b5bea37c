"""The recorder node's console shell: the episode manager's services, Joy buttons, state topic,
and the same commands on a local Unix socket (``robot_capture.console.local_socket``).

A mixin of :class:`robot_capture.nodes.recorder_node.RecorderNode` (which documents the
services and parameters); the logic is ROS-free in :mod:`robot_capture.console`. Kept apart
so the node module stays one concern (recording) and one sitting long.
"""
from __future__ import annotations

import json
import sys
from collections import deque
from concurrent.futures import Future, TimeoutError as FutureTimeout

from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import String
from std_srvs.srv import Trigger

from robot_capture.console.commands import SERVICES, CommandError, JoyMapper, check_command, load_joy_map
from robot_capture.console.manager import EpisodeManager, ManagerConfig, next_task
from robot_capture.console.owner import OutputLock, duplicates


def _label(value) -> bool | None:
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    return True if v in ("true", "1", "yes", "success") else False if v in ("false", "0", "no", "failure") else None


class ConsoleShell:
    """Console services on a node that has ``rec`` (Recorder), ``_p`` (parameter getter),
    ``_reply`` and ``_episode_info``."""

    def create_manager(self) -> None:
        """Take the output folder lock and build the episode manager (call after ``self.rec``).

        Raises:
            OutputBusyError: another recorder writes to the same folder.
            ValueError: a bad ``expected_streams`` entry.
        """
        p = self._p
        self._output_lock = OutputLock(self.rec.output_dir, owner=self.get_fully_qualified_name())
        from robot_capture.floor.contract import streams_from_params

        # the station contract (floor.graph sets it): the manager gates on it, names its streams, and
        # sets the recorder's expected_hz (the cheap verdict at stop and the bag judge the same streams)
        expected = streams_from_params(p("expected_streams"), p("optional_streams") or ())
        self.manager = EpisodeManager(
            self.rec, expected, robot=str(p("robot")), logger=self.get_logger(),
            config=ManagerConfig(stream_lost_s=float(p("stream_lost_s")), silent_after_s=float(p("silent_after_s")),
                                 min_rate_fraction=float(p("min_rate_fraction")),
                                 optional=tuple(p("optional_streams") or ())))
        import os
        import socket
        import time

        # who started first wins: (started_ns, host, pid), published latched on ~/owner
        self._owner_id = [time.time_ns(), socket.gethostname(), os.getpid()]
        self._newer_than = None

    def setup_console(self) -> None:
        """Services, ~/console_state, the Joy subscription and the console timer."""
        p = self._p
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._state_pub = self.create_publisher(String, "~/console_state", latched)
        self._owner_pub = self.create_publisher(String, "~/owner", latched)
        self.create_subscription(String, "~/owner", self._on_owner, latched)
        self._owner_pub.publish(String(data=json.dumps(self._owner_id)))
        for cmd, srv in SERVICES.items():
            self.create_service(Trigger, f"~/{srv}", lambda _q, r, _c=cmd: self._reply(r, lambda: self.command(_c)))
        self.create_service(Trigger, "~/split", self._srv_split)
        self._joy = None
        joy_map = str(p("joy_map"))
        if joy_map.lower() not in ("none", "off", "false"):
            from sensor_msgs.msg import Joy

            try:
                self._joy = JoyMapper(load_joy_map(joy_map or None))
            except (OSError, ValueError) as e:  # a bad map (ConfigError) turns the buttons off, not the recorder
                self.get_logger().error(f"Joy buttons off: {e}")
            else:
                self._joy_problem = ""
                self.create_subscription(Joy, self._joy.map.topic, self._on_joy, 10)
        self.create_timer(1.0 / max(0.5, float(p("console_rate_hz"))), self.console_tick)
        self._start_local_socket()

    # ------------------------------------------------------------------ local socket
    def _start_local_socket(self) -> None:
        """Serve the console commands on the local socket too (a warning, never a failure, if not)."""
        from robot_capture.console.local_socket import LocalCommandServer, socket_path

        self._local_queue: deque = deque()  # (Request, Future) from the socket's threads
        self._local_gc = self.create_guard_condition(self._serve_local)
        try:
            domain = self.context.get_domain_id()
        except Exception:  # noqa: BLE001 - older rclpy: the environment, as rcl reads it
            domain = None
        path = socket_path(self.get_fully_qualified_name(), domain)
        self._local = LocalCommandServer(path, self._submit_local)
        try:
            self._local.start()
        except OSError as exc:
            self._local = None
            self.get_logger().warning(f"console commands on the services only, no local socket: {exc}")
            return
        self.get_logger().info(f"console commands also on {path}")

    def _submit_local(self, req) -> tuple[bool, str, str]:
        """In a socket thread: hand ``req`` to the executor, wait for its answer (``req.timeout_s``)."""
        fut: Future = Future()
        self._local_queue.append((req, fut))
        self._local_gc.trigger()
        try:
            return fut.result(timeout=req.timeout_s)
        except FutureTimeout:
            if fut.cancel():  # not started: it never runs
                return False, f"not run: the recorder was busy for {req.timeout_s:g} s", "command"
            return fut.result()  # started meanwhile: its answer

    def _serve_local(self) -> None:
        """In the executor: run the queued socket requests, one by one, as the services would."""
        while self._local_queue:
            req, fut = self._local_queue.popleft()
            if fut.set_running_or_notify_cancel():
                fut.set_result(self._run_local(req))

    def _run_local(self, req) -> tuple[bool, str, str]:
        if req.set:
            try:
                results = self.set_parameters([Parameter(k, value=v) for k, v in req.set.items()])
            except Exception as exc:  # noqa: BLE001 - undeclared or wrongly typed: the reply says so
                return False, f"recorder rejected parameters: {exc}", "set"
            bad = [(k, r.reason) for k, r in zip(req.set, results) if not r.successful]
            if bad:
                return False, f"recorder rejected parameters: {bad}", "set"
        try:
            return True, str(self.command(check_command(req.command))), "command"
        except Exception as exc:  # noqa: BLE001 - as the services: errors are replies, never raised
            return False, str(exc), "command"

    def destroy_node(self) -> None:
        """Close the local socket (queued requests are answered "shutting down"), then the node."""
        local, self._local = getattr(self, "_local", None), None
        if local is not None:
            local.close()
        while getattr(self, "_local_queue", None):
            _req, fut = self._local_queue.popleft()
            if fut.set_running_or_notify_cancel():
                fut.set_result((False, "not run: the recorder is shutting down", "command"))
        super().destroy_node()

    def command(self, cmd: str) -> str:
        """Run one console command (``robot_capture.console.commands``); returns the reply.

        Raises:
            CommandError: unknown command, or it does not fit the state (the text is the reply).
        """
        m = self.manager
        if cmd == "status":
                return json.dumps(self.status())
        if cmd == "next_task":
            task = next_task(self._p("tasks"), str(self._p("task")))
            self.set_parameters([Parameter("task", value=task)])
            return f"task: {task}"
        if cmd == "relabel":
            keys = ("success", "task", "operator", "scene", "notes")
            labels = {k: str(self._p(f"relabel_{k}") or "") for k in keys}
            self.set_parameters([Parameter(f"relabel_{k}", value="") for k in keys])
            return m.relabel(**labels)
        if cmd in ("start", "start_forced") or (cmd == "toggle" and not m.recording):
            self._check_owner()
        was_recording = m.recording
        if getattr(self, "_polled", None):  # what waits in the readers was received before this command:
            self.take_all()  # the closing episode's at a stop; at a start, counted but not written (before it)
        if cmd == "stop":
            reply = m.stop(_label(self._p("episode_success")))
        else:
            reply = m.run(cmd, info=self._episode_info())
        if was_recording and not m.recording:  # a label never leaks into the next episode
            self.set_parameters([Parameter("episode_success", value="unknown")])
        self.publish_state()
        return reply

    def _check_owner(self) -> None:
        """Set the manager's owner problem from the ROS graph (another node with this name)."""
        n = duplicates(self.get_node_names_and_namespaces(), self.get_name(), self.get_namespace())
        self.manager.owner_problem = (f"another node named {self.get_fully_qualified_name()} is live ({n}); "
                                      "one station has one recorder: stop the other one" if n else "")

    def _on_joy(self, msg) -> None:
        for cmd in self._joy.on_buttons(msg.buttons):
            try:
                reply = self.command(cmd)
                self.get_logger().info(f"joy {cmd}: {reply.splitlines()[0]}")
            except (CommandError, ValueError) as exc:
                self.get_logger().warning(f"joy {cmd}: {exc}")
        if self._joy.problem and self._joy.problem != self._joy_problem:
            self._joy_problem = self._joy.problem
            self.get_logger().warning(self._joy.problem)

    def _on_owner(self, msg) -> None:
        """Another node with this name announced itself: the one that started later exits."""
        try:
            other = json.loads(msg.data)
        except ValueError:
            return
        if other != self._owner_id and other[:1] and list(other) < self._owner_id:
            self._newer_than = other

    def console_tick(self) -> None:
        """Sample the streams (auto-stop on a lost one), check the owner, publish ``~/console_state``."""
        self._check_owner()
        if self.manager.owner_problem:  # a duplicate is in the graph: say who we are (again)
            self._owner_pub.publish(String(data=json.dumps(self._owner_id)))
        if self._newer_than is not None and not self.manager.recording:
            _t, host, pid = self._newer_than
            msg = (f"another node named {self.get_fully_qualified_name()} is live (pid {pid} on {host}, started "
                   "earlier); one station has one recorder: this one exits")
            self.get_logger().error(msg)
            print(f"recorder: error: {msg}", file=sys.stderr)
            raise SystemExit(3)
        was_recording = self.manager.recording
        self.manager.tick()
        if was_recording and not self.manager.recording:
            self.set_parameters([Parameter("episode_success", value="unknown")])
        self.publish_state()

    def status(self) -> dict:
        s = self.manager.status()
        s.update(node=self.get_fully_qualified_name(), task=str(self._p("task")),
                 operator=str(self._p("operator")), scene=str(self._p("scene")), notes=str(self._p("notes")),
                 tasks=list(self._p("tasks") or []))
        return s

    def publish_state(self) -> None:
        self._state_pub.publish(String(data=json.dumps(self.status())))

