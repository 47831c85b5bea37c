"""An operator-side rclpy client for the recorder's episode services.

Used by ``robot-capture demo``, ``robot-capture episode``, ``robot-capture console`` and the
end-to-end tests. Services (DESIGN.md, "console"): one std_srvs/Trigger per console command
(``robot_capture.console.commands.SERVICES``: ``<recorder>/start_episode``, ``stop_episode``,
``discard_last``, ``status``, ...) and ``<recorder>/split``. Episode labels (task, operator,
scene, notes), the success label (``episode_success``, read at stop) and the relabel values
(``relabel_*``) are recorder parameters, set through the standard ``<recorder>/set_parameters``.

The first call to a recorder is preceded by ``status`` calls (idempotent), re-sent every
``first_attempt_s`` until one is answered within ``discovery_timeout_s``: a fresh recorder's
first request sometimes went unanswered (issue 14), and a re-sent *start* could open two
episodes, a re-sent *status* cannot.

rclpy is imported when a client is created, not at module import.

:class:`SocketEpisodeClient` makes the same calls over the recorder's local Unix socket
(``robot_capture.console.local_socket``: no rclpy, no DDS discovery; a verb answers in tens of
milliseconds instead of 0.9-5.5 s). ``robot-capture episode`` tries it first and falls back to
:class:`EpisodeClient` when no recorder listens there (:class:`LocalSocketUnavailable`: nothing
was sent).
"""
from __future__ import annotations

import time
from typing import Iterable


class EpisodeClientError(RuntimeError):
    """A recorder service is unavailable, timed out, or answered ``success: false``."""


class SocketEpisodeClient:
    """:class:`EpisodeClient`'s episode calls over the recorder's local socket (ROS-free).

    Args:
        recorder: the recorder node's fully qualified name (default ``/recorder``).
        timeout_s: per-call timeout (the recorder does not start a request later than this).
        path: the socket (default ``local_socket.socket_path(recorder)``, for ``ROS_DOMAIN_ID``).

    Every call raises ``local_socket.LocalSocketUnavailable`` when no recorder listens there
    (nothing was sent: the caller may use the services), and :class:`EpisodeClientError` with the
    same text as :class:`EpisodeClient` for a refusal, or when a sent request got no answer.
    """

    def __init__(self, recorder: str = "/recorder", timeout_s: float = 10.0, path=None):
        from robot_capture.console import local_socket

        self._ls = local_socket
        self.recorder = "/" + recorder.strip("/")
        self.timeout_s = timeout_s
        self.path = path if path is not None else local_socket.socket_path(self.recorder)

    def _send(self, command: str, values: dict | None = None) -> tuple[bool, str, str]:
        try:
            return self._ls.call(self.path, command, values, self.timeout_s)
        except self._ls.LocalSocketError as exc:
            raise EpisodeClientError(f"{command}: {exc}") from None

    def _bad_set(self, ok: bool, msg: str, stage: str) -> None:
        if not ok and stage in ("set", "request"):
            raise EpisodeClientError(msg)

    def set_labels(self, **labels) -> None:
        """Set recorder parameters (as :meth:`EpisodeClient.set_labels`) and read the status."""
        ok, msg, stage = self._send("status", labels)
        self._bad_set(ok, msg, stage)

    def trigger(self, service: str, labels: dict | None = None) -> str:
        """The console command of ``<recorder>/<service>``; returns its message (as :meth:`EpisodeClient.trigger`)."""
        from robot_capture.console.commands import SERVICES

        cmd = next((c for c, srv in SERVICES.items() if srv == service), None)
        if cmd is None:
            raise EpisodeClientError(f"{service}: not a console service (the socket serves {', '.join(SERVICES.values())})")
        return self._service(cmd, service, labels)

    def _service(self, cmd: str, service: str, labels: dict | None = None) -> str:
        ok, msg, stage = self._send(cmd, labels)
        self._bad_set(ok, msg, stage)
        if not ok:
            raise EpisodeClientError(f"{service} failed: {msg}")
        return msg

    def start_episode(self, force: bool = False, **labels) -> str:
        """As :meth:`EpisodeClient.start_episode`: labels and the start in one request."""
        if force:
            return self._service("start_forced", "start_episode_forced", labels)
        return self._service("start", "start_episode", labels)

    def stop_episode(self, success: bool | None = None) -> str:
        """As :meth:`EpisodeClient.stop_episode`."""
        values = {} if success is None else {"episode_success": bool(success)}
        return self._service("stop", "stop_episode", values).splitlines()[0]

    def discard_episode(self) -> str:
        return self._service("discard", "discard_episode")

    def command(self, name: str, **labels) -> str:
        """As :meth:`EpisodeClient.command` (an unknown command is answered by the recorder, with
        the same text; the command table is not imported here: it costs a verb ~0.1 s of CPU).

        Raises:
            EpisodeClientError: unknown command (with the closest), or the recorder refused (its reply).
        """
        cmd = str(name).strip().lower().replace("-", "_")
        values = None
        if cmd == "relabel":
            values = {f"relabel_{k}": ("" if v is None else (str(v).lower() if isinstance(v, bool) else str(v)))
                      for k, v in labels.items()}
            if not any(values.values()):
                raise EpisodeClientError("relabel: nothing to change (give success, task, operator, scene or notes)")
        ok, msg, stage = self._send(cmd, values)
        if not ok:
            raise EpisodeClientError(msg)
        return msg

    def status(self) -> dict:
        """The recorder's console state (as :meth:`EpisodeClient.status`)."""
        import json

        return json.loads(self.command("status"))

    def close(self) -> None:
        """Nothing to close (one connection per call)."""

    def __enter__(self) -> "SocketEpisodeClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EpisodeClient:
    """Drive the recorder node's episodes from a private rclpy context.

    Args:
        recorder: the recorder node's fully qualified name (default ``/recorder``).
        timeout_s: per-call timeout; discovery waits use ``discovery_timeout_s``.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, recorder: str = "/recorder", timeout_s: float = 10.0, discovery_timeout_s: float = 20.0,
                 node_name: str = "floor_operator", first_attempt_s: float = 2.0):
        import rclpy
        from rcl_interfaces.srv import SetParameters
        from rclpy.executors import SingleThreadedExecutor
        from std_srvs.srv import Trigger

        self.recorder = "/" + recorder.strip("/")
        self.timeout_s = timeout_s
        self.discovery_timeout_s = discovery_timeout_s
        self._ctx = rclpy.Context()
        from rclpy.signals import SignalHandlerOptions

        rclpy.init(context=self._ctx, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(node_name, context=self._ctx)
        self.executor = SingleThreadedExecutor(context=self._ctx)
        self.executor.add_node(self.node)
        from robot_capture.console.commands import SERVICES

        self._trigger = {name: self.node.create_client(Trigger, f"{self.recorder}/{name}")
                         for name in (*SERVICES.values(), "split")}
        self.first_attempt_s = first_attempt_s
        self._answered = False
        self._set_params = self.node.create_client(SetParameters, f"{self.recorder}/set_parameters")
        self._Trigger = Trigger
        self._subs = {}
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------------ plumbing
    def spin_for(self, seconds: float) -> None:
        """Spin this client's executor for ``seconds`` (keeps subscriptions counting)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, end - time.monotonic())))

    def spin_until(self, predicate, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return bool(predicate())

    def _wait_service(self, client, what: str) -> None:
        if not client.wait_for_service(timeout_sec=0.0) and not self.spin_until(
                lambda: client.service_is_ready(), self.discovery_timeout_s):
            raise EpisodeClientError(f"{what}: service {client.srv_name} not available after "
                                     f"{self.discovery_timeout_s:.0f} s (is the recorder running?)")

    def _first_contact(self) -> None:
        """Re-send ``status`` (idempotent) until the recorder answers one, within ``discovery_timeout_s``."""
        client = self._trigger["status"]
        self._wait_service(client, "status")
        end = time.monotonic() + self.discovery_timeout_s
        while time.monotonic() < end:
            future = client.call_async(self._Trigger.Request())
            if self.spin_until(future.done, min(self.first_attempt_s, max(0.1, end - time.monotonic()))):
                self._answered = True
                return
            client.remove_pending_request(future)
        raise EpisodeClientError(f"no answer from {client.srv_name} within {self.discovery_timeout_s:.0f} s")

    def _call(self, client, request, what: str):
        self._wait_service(client, what)
        if not self._answered:
            self._first_contact()
        future = client.call_async(request)
        self._answered = True
        if not self.spin_until(future.done, self.timeout_s):
            raise EpisodeClientError(f"{what}: no answer from {client.srv_name} within {self.timeout_s:.0f} s")
        if future.exception() is not None:
            raise EpisodeClientError(f"{what}: {future.exception()}")
        return future.result()

    def wait_for_recorder(self) -> None:
        """Block until every episode service is discoverable.

        Raises:
            EpisodeClientError: not within ``discovery_timeout_s``.
        """
        clients = [*self._trigger.values(), self._set_params]
        if not self.spin_until(lambda: all(c.service_is_ready() for c in clients), self.discovery_timeout_s):
            missing = [c.srv_name for c in clients if not c.service_is_ready()]
            raise EpisodeClientError(f"recorder services not available after {self.discovery_timeout_s:.0f} s: {missing}")

    def watch(self, topics: dict) -> None:
        """Count messages on ``{topic: msg_type}`` (``self.counts``), e.g. to wait for data flow."""
        from rclpy.qos import qos_profile_sensor_data

        for topic, msg_type in topics.items():
            if topic in self._subs:
                continue
            self.counts.setdefault(topic, 0)

            def cb(_msg, topic=topic):
                self.counts[topic] += 1

            self._subs[topic] = self.node.create_subscription(msg_type, topic, cb, qos_profile_sensor_data,
                                                              raw=True)

    def unwatch(self) -> None:
        """Drop the watch subscriptions (keeps ``counts``): no CPU spent on them while recording."""
        for sub in self._subs.values():
            self.node.destroy_subscription(sub)
        self._subs.clear()

    def wait_for_data(self, topics: Iterable[str], min_messages: int = 3, timeout_s: float = 30.0) -> None:
        """Block until each watched topic in ``topics`` has ``min_messages``.

        Raises:
            EpisodeClientError: listing the silent topics.
        """
        topics = list(topics)
        start = {t: self.counts.get(t, 0) for t in topics}
        ok = self.spin_until(lambda: all(self.counts[t] - start[t] >= min_messages for t in topics), timeout_s)
        if not ok:
            silent = [t for t in topics if self.counts[t] - start[t] < min_messages]
            raise EpisodeClientError(f"no data after {timeout_s:.0f} s on {silent}")

    # ------------------------------------------------------------------ episodes
    def set_labels(self, **labels) -> None:
        """Set recorder parameters (task, operator, scene, notes: str; episode_success: bool).

        Raises:
            EpisodeClientError: the recorder rejected a parameter (its reason is included).
        """
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        req = SetParameters.Request()
        for name, value in labels.items():
            if isinstance(value, bool):
                pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
            else:
                pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(value))
            req.parameters.append(Parameter(name=name, value=pv))
        res = self._call(self._set_params, req, "set_parameters")
        bad = [(p.name, r.reason) for p, r in zip(req.parameters, res.results) if not r.successful]
        if bad:
            raise EpisodeClientError(f"recorder rejected parameters: {bad}")

    def trigger(self, service: str) -> str:
        """Call ``<recorder>/<service>`` (Trigger); return its message.

        Raises:
            EpisodeClientError: unavailable, timed out, or ``success: false``.
        """
        res = self._call(self._trigger[service], self._Trigger.Request(), service)
        if not res.success:
            raise EpisodeClientError(f"{service} failed: {res.message}")
        return res.message

    def start_episode(self, force: bool = False, **labels) -> str:
        """Start an episode (labels set first); returns the bag path. ``force`` records even
        while a required stream is not fresh (the episode is flagged)."""
        if labels:
            self.set_labels(**labels)
        return self.trigger("start_episode_forced" if force else "start_episode")

    def stop_episode(self, success: bool | None = None) -> str:
        """Stop with ``success`` (None = the ``episode_success`` parameter); returns the bag path."""
        if success is not None:
            self.set_labels(episode_success=bool(success))
        return self.trigger("stop_episode").splitlines()[0]

    def discard_episode(self) -> str:
        return self.trigger("discard_episode")

    def command(self, name: str, **labels) -> str:
        """Run one console command (``robot_capture.console.commands``: ``start``, ``success``,
        ``discard_last``, ``relabel``, ...); returns the recorder's reply.

        ``labels``: for ``relabel``: success, task, operator, scene, notes (None/"" = unchanged).

        Raises:
            EpisodeClientError: unknown command (with the closest), or the recorder refused (its reply).
        """
        from robot_capture.console.commands import SERVICES, CommandError, check_command

        try:
            cmd = check_command(name)
        except CommandError as exc:
            raise EpisodeClientError(str(exc)) from None
        if cmd == "relabel":
            values = {f"relabel_{k}": ("" if v is None else (str(v).lower() if isinstance(v, bool) else str(v)))
                      for k, v in labels.items()}
            if not any(values.values()):
                raise EpisodeClientError("relabel: nothing to change (give success, task, operator, scene or notes)")
            self.set_labels(**values)
        res = self._call(self._trigger[SERVICES[cmd]], self._Trigger.Request(), SERVICES[cmd])
        if not res.success:
            raise EpisodeClientError(res.message)
        return res.message

    def wait_ready(self, timeout_s: float = 20.0, poll_s: float = 0.25) -> dict:
        """Poll :meth:`status` until the recorder is READY (every required stream fresh, or
        REVIEW with them fresh); returns the last status (``ready`` False on timeout)."""
        end = time.monotonic() + timeout_s
        s = self.status()
        while not s.get("ready") and time.monotonic() < end:
            self.spin_for(poll_s)
            s = self.status()
        return s

    def status(self) -> dict:
        """The recorder's console state (see ``robot_capture.console.manager.EpisodeManager.status``)."""
        import json

        return json.loads(self.command("status"))

    def close(self) -> None:
        import rclpy

        try:
            self.executor.shutdown()
            self.node.destroy_node()
        finally:
            rclpy.try_shutdown(context=self._ctx)

    def __enter__(self) -> "EpisodeClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
