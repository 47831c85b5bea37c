"""A thread that owns one :class:`~robot_capture.floor.client.EpisodeClient` for a console.

``console --keys`` and ``console --web`` talk to the recorder only through its services
and its ``<recorder>/console_state`` topic (std_msgs/String JSON, transient local), never
by importing recorder internals. rclpy is not thread-safe per node, so one thread spins
the client and runs every call; other threads (the key loop, the web server) submit work
and get a ``concurrent.futures.Future``.
"""
from __future__ import annotations

import concurrent.futures
import json
import queue
import threading
import time

__all__ = ["RecorderBridge", "STALE_AFTER_S", "RENEW_AFTER_S", "recorder_alive_here"]

#: the recorder publishes its state at 4 Hz; older than this, the console says it is gone
#: (generous: a loaded robot PC may not schedule the recorder for a second or two)
STALE_AFTER_S = 5.0
#: no state over DDS for this long while the recorder answers on its local socket (so it is alive
#: on this host): the bridge starts a fresh DDS participant. A long-lived participant can be left
#: deaf for good by a peer SIGKILLed in its start (eProsima/Fast-DDS#5469; DESIGN.md "SIGKILL"),
#: while a fresh one hears the recorder at once. Far above any start-up or load pause.
RENEW_AFTER_S = 30.0


def recorder_alive_here(recorder: str) -> bool:
    """True when ``recorder`` answers ``status`` on its local socket (it runs on this host)."""
    from robot_capture.console import local_socket as ls

    try:
        ok, _msg, _stage = ls.call(ls.socket_path(recorder), "status", timeout_s=2.0)
    except (ls.LocalSocketUnavailable, ls.LocalSocketError, OSError, ValueError):
        return False
    return bool(ok)


def _dds_client(recorder: str, timeout_s: float, node_name: str):
    from robot_capture.floor.client import EpisodeClient

    return EpisodeClient(recorder, timeout_s=timeout_s, discovery_timeout_s=timeout_s, node_name=node_name)


class RecorderBridge:
    """Run ``EpisodeClient(recorder)`` in a thread; :meth:`latest` is the recorder's last state.

    Raises (from the constructor): whatever the client raises when rclpy cannot start.
    """

    def __init__(self, recorder: str = "/recorder", timeout_s: float = 10.0, node_name: str = "console",
                 renew_after_s: float = RENEW_AFTER_S, client_factory=None, alive=None):
        """``client_factory(recorder, timeout_s, node_name)`` makes the DDS client (default
        EpisodeClient); ``alive()`` says whether the recorder runs here (default: its local socket
        answers). ``renew_after_s``: see ``RENEW_AFTER_S`` (0: never renew)."""
        self.recorder = "/" + recorder.strip("/")
        self.timeout_s = timeout_s
        self._node_name = node_name
        self.renew_after_s = float(renew_after_s)
        self._factory = client_factory or _dds_client
        self._alive = alive or (lambda: recorder_alive_here(self.recorder))
        self.renewals = 0
        self._q: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._state: dict | None = None
        self._state_t = 0.0
        self.version = 0
        self._thread = threading.Thread(target=self._run, name="recorder-bridge", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error

    def _connect(self):
        from rclpy.qos import DurabilityPolicy, QoSProfile
        from std_msgs.msg import String

        client = self._factory(self.recorder, self.timeout_s, self._node_name)
        client.node.create_subscription(String, f"{self.recorder}/console_state", self._on_state,
                                        QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        return client

    def _deaf(self, since: float) -> bool:
        """No state for ``renew_after_s`` since ``since`` while the recorder is alive here."""
        if not self.renew_after_s or time.monotonic() - max(since, self._state_t) < self.renew_after_s:
            return False
        return self._alive()

    def _run(self) -> None:
        try:
            client = self._connect()
        except BaseException as exc:  # noqa: BLE001 - handed to the constructor
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        since = time.monotonic()  # when the current participant started listening
        try:
            while not self._stop.is_set():
                client.executor.spin_once(timeout_sec=0.05)
                if self._deaf(since):
                    import logging

                    logging.getLogger(__name__).warning(
                        "console: no state from %s over DDS for %.0f s although it answers on its local "
                        "socket: starting a fresh DDS participant", self.recorder, self.renew_after_s)
                    try:
                        fresh = self._connect()
                    except Exception as exc:  # noqa: BLE001 - keep the old one, try again later
                        logging.getLogger(__name__).warning("console: fresh DDS participant failed: %s", exc)
                    else:
                        client.close()
                        client = fresh
                        self.renewals += 1
                    since = time.monotonic()
                while True:
                    try:
                        fn, fut = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if fut.set_running_or_notify_cancel():
                        try:
                            fut.set_result(fn(client))
                        except BaseException as exc:  # noqa: BLE001 - the caller gets it
                            fut.set_exception(exc)
        finally:
            client.close()

    def _on_state(self, msg) -> None:
        try:
            self._state = json.loads(msg.data)
        except ValueError:
            return
        self._state_t = time.monotonic()
        self.version += 1

    def submit(self, fn) -> concurrent.futures.Future:
        """Run ``fn(client)`` in the bridge thread."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._q.put((fn, fut))
        return fut

    def command(self, name: str, **labels) -> concurrent.futures.Future:
        """``client.command(name, **labels)`` -> Future of the reply (EpisodeClientError on refusal)."""
        return self.submit(lambda c: c.command(name, **labels))

    def set_labels(self, **labels) -> concurrent.futures.Future:
        return self.submit(lambda c: c.set_labels(**labels))

    def latest(self) -> dict:
        """The recorder's last published state; when it is missing or older than ``STALE_AFTER_S``,
        an ``offline`` state (amber, ``stale: true``) that says so: its streams keep their topics
        and names but have no rate or age (``rate_hz``/``age_s`` None, status ``unknown``), and the
        counters are the recorder's last known ones. Nothing of a gone recorder is shown as ``ok``."""
        age = time.monotonic() - self._state_t if self._state_t else None
        if self._state is not None and age is not None and age <= STALE_AFTER_S:
            return self._state
        base = dict(self._state or {})
        why = (f"no state from {self.recorder} for {age:.1f} s (recorder stopped?)" if age is not None
               else f"waiting for {self.recorder} (is the recorder running?)")
        base.update(state="offline", ready=False, tally="amber", reasons=[why], episode="", elapsed_s=0.0,
                    stale=True, reviewable=False,
                    streams=[dict(x, rate_hz=None, age_s=None, status="unknown") for x in base.get("streams") or []
                             if isinstance(x, dict)])
        base.setdefault("counters", {})
        return base

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
