"""An operator-side rclpy client for the recorder's episode services.

Used by ``robot-capture demo`` and the end-to-end tests. Services (DESIGN.md):
``<recorder>/start_episode``, ``<recorder>/stop_episode``, ``<recorder>/discard_episode``,
``<recorder>/split`` (std_srvs/Trigger). Episode labels (task, operator, scene, notes)
and the success label (``episode_success``, read at stop) are recorder parameters,
set through the standard ``<recorder>/set_parameters`` service.

rclpy is imported when a client is created, not at module import.
"""
from __future__ import annotations

import time
from typing import Iterable


class EpisodeClientError(RuntimeError):
    """A recorder service is unavailable, timed out, or answered ``success: false``."""


class EpisodeClient:
    """Drive the recorder node's episodes from a private rclpy context.

    Args:
        recorder: the recorder node's fully qualified name (default ``/recorder``).
        timeout_s: per-call timeout; discovery waits use ``discovery_timeout_s``.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, recorder: str = "/recorder", timeout_s: float = 10.0, discovery_timeout_s: float = 20.0,
                 node_name: str = "floor_operator"):
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
        self._trigger = {name: self.node.create_client(Trigger, f"{self.recorder}/{name}")
                         for name in ("start_episode", "stop_episode", "discard_episode", "split")}
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

    def _call(self, client, request, what: str):
        if not client.wait_for_service(timeout_sec=0.0) and not self.spin_until(
                lambda: client.service_is_ready(), self.discovery_timeout_s):
            raise EpisodeClientError(f"{what}: service {client.srv_name} not available after "
                                     f"{self.discovery_timeout_s:.0f} s (is the recorder running?)")
        future = client.call_async(request)
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

    def start_episode(self, **labels) -> str:
        if labels:
            self.set_labels(**labels)
        return self.trigger("start_episode")

    def stop_episode(self, success: bool | None = None) -> str:
        if success is not None:
            self.set_labels(episode_success=bool(success))
        return self.trigger("stop_episode")

    def discard_episode(self) -> str:
        return self.trigger("discard_episode")

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
