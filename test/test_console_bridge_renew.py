"""A console whose DDS participant went deaf (eProsima/Fast-DDS#5469: a peer SIGKILLed in its start
can leave a long-lived participant deaf for good) starts a fresh one while the recorder answers on
its local socket, and never while the recorder is gone (DESIGN.md "SIGKILL")."""
from __future__ import annotations

import json
import threading
import types

from ros_util import wait_until

from robot_capture.console.bridge import RecorderBridge


class _FakeClient:
    """An EpisodeClient stand-in: ``deaf`` never delivers the recorder's state."""

    def __init__(self, deaf: bool):
        self.deaf, self.closed, self._cb = deaf, False, None
        self.node = types.SimpleNamespace(create_subscription=self._sub)
        self.executor = types.SimpleNamespace(spin_once=self._spin)

    def _sub(self, _type, _topic, cb, _qos):
        self._cb = cb

    def _spin(self, timeout_sec):
        threading.Event().wait(timeout_sec)
        if not self.deaf and self._cb is not None:
            self._cb(types.SimpleNamespace(data=json.dumps({"state": "ready", "tally": "green"})))

    def close(self):
        self.closed = True


def _bridge(alive: bool, made: list):
    def factory(_recorder, _timeout_s, _node_name):
        made.append(_FakeClient(deaf=not made))  # the first participant is the deaf one
        return made[-1]

    return RecorderBridge("/rec", renew_after_s=0.3, client_factory=factory, alive=lambda: alive)


def test_a_deaf_participant_is_renewed_while_the_recorder_answers_locally():
    made: list = []
    bridge = _bridge(True, made)
    try:
        assert wait_until(lambda: bridge.latest()["state"] == "ready", 60)
        assert bridge.renewals >= 1 and made[0].closed and not made[-1].deaf
        renewals = bridge.renewals
        assert wait_until(lambda: bridge.latest()["state"] == "ready" and bridge.version > 20, 60)
        assert bridge.renewals == renewals  # state flows: no more renewals
    finally:
        bridge.close()


def test_no_renewal_when_the_recorder_is_not_alive_here():
    made: list = []
    bridge = _bridge(False, made)
    try:
        # spin well past renew_after_s: the stale state stays "offline" and the participant is kept
        assert wait_until(lambda: bridge.latest()["state"] == "offline" and bridge._state_t == 0.0
                          and len(made) == 1 and _spun(made[0]), 30)
        threading.Event().wait(1.0)  # 3x renew_after_s with nothing to renew (a quiet check, not a timing)
        assert len(made) == 1 and bridge.renewals == 0 and not made[0].closed
    finally:
        bridge.close()


def _spun(client) -> bool:
    return client._cb is not None
