"""The station side of headset connections, ROS-free: one driver at a time, checked frames out, drops flagged.

``XrHub(sink, ...)`` holds the driving connection; the server calls :meth:`XrHub.connect` per
WebSocket and hands every text message to :meth:`XrConnection.handle`, which returns the replies
to send. A valid frame becomes an :class:`XrSample` (``vr_world``, station-time stamp) passed to
``sink``; a bad one gets an ``error`` reply and nothing reaches ``sink``: with no new input the
retarget node's stale-input hold keeps the robot still (DESIGN.md "Staleness").

* **One driver**: a second headset is refused (:class:`Refused`) while one is connected, unless the
  hub was made with ``takeover=True`` (``robot-capture xr --takeover``): the old one is then closed.
  A driver silent for :data:`SILENT_DRIVER_S` is gone (a drop, flagged as below) and a new one takes its place.
* **Clock**: frames are held (``clock sync pending``) until the first ping round trip
  (:class:`~robot_capture.xr.clock.ClockSync`); a stamp is never later than its receive time
  (an offset error must not make a stamp from the future, which the retarget node rejects).
* **Drops**: the driver's connection ending while the station records (``state()["state"] ==
  "recording"``) is an ``error`` event (``on_event``) naming the episode; the recorder's own
  stream-lost check then stops the episode with reason ``stream_lost`` (DESIGN.md "console").
"""
from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from robot_capture.xr.clock import ClockSync
from robot_capture.xr.convert import hand_to_vr_world, head_to_vr_world, wrist_to_vr_world
from robot_capture.xr.latency import LatencyWindow
from robot_capture.xr.protocol import Frame, Pong, ProtocolError, parse_message

__all__ = ["JOY_AXES_PER_SIDE", "JOY_BUTTONS_PER_SIDE", "Refused", "XrConnection", "XrHub", "XrSample"]

#: Joy layout (``/vr/buttons``): right controller's first 6 ``xr-standard`` buttons (trigger, squeeze,
#: touchpad, thumbstick, A, B), then the left's (trigger, squeeze, touchpad, thumbstick, X, Y);
#: axes: right (touchpad x, y, thumbstick x, y), then left. Missing entries are 0.
JOY_BUTTONS_PER_SIDE = 6
JOY_AXES_PER_SIDE = 4
_MAX_PENDING_PINGS = 16
#: a driver silent this long (no frame, no pong; the page sends ~72-90 frames/s and answers a ping
#: every 1 s) is gone even if its socket is not closed yet (Wi-Fi lost: TCP notices after tens of
#: seconds): a new headset then replaces it instead of being refused
SILENT_DRIVER_S = 3.0
#: messages per second a headset may send: WebXR runs at most 120 Hz (Quest 3's top refresh rate) plus
#: a pong per second; above ``MAX_MESSAGE_HZ`` sustained (bursts of ``MAX_BURST``) messages are dropped
#: unread, counted, and answered with one ``error`` a second, so a flood never reaches DDS
MAX_MESSAGE_HZ = 250.0
MAX_BURST = 50


class Refused(Exception):
    """A connection the hub does not take; ``str()`` is the reply in words."""


@dataclass
class XrSample:
    """One published XR frame. Poses (4,4) / hands (26,4,4) in ``vr_world``; times int ns, station clock."""

    seq: int
    stamp_ns: int
    receive_ns: int
    head: np.ndarray
    wrists: dict = field(default_factory=dict)
    hands: dict = field(default_factory=dict)
    buttons: tuple | None = None
    axes: tuple | None = None


def _joy(frame: Frame):
    if not frame.controllers:
        return None, None
    buttons, axes = [], []
    for side in ("right", "left"):
        c = frame.controllers.get(side)
        b = list(c.buttons[:JOY_BUTTONS_PER_SIDE]) if c else []
        a = list(c.axes[:JOY_AXES_PER_SIDE]) if c else []
        buttons += b + [0] * (JOY_BUTTONS_PER_SIDE - len(b))
        axes += a + [0.0] * (JOY_AXES_PER_SIDE - len(a))
    return tuple(buttons), tuple(axes)


class XrConnection:
    """One headset WebSocket. ``closed``: the hub ended it (taken over); the server then closes the socket."""

    def __init__(self, hub: "XrHub", peer: str):
        self.hub, self.peer = hub, peer
        self.clock = ClockSync()
        self.closed = ""
        self.connected_ns = self.last_rx_ns = hub.now_ns()
        self._ping_ids = itertools.count()
        self._pings: dict[int, int] = {}
        self._last_seq: int | None = None
        self._tracked: set = set()
        self.frames = self.errors = self.unsynced = self.out_of_order = self.flooded = 0
        self._tokens, self._tokens_ns, self._flood_said_ns = float(MAX_BURST), self.connected_ns, 0

    def ping(self) -> dict:
        """The next ``ping`` message to send (its send time is noted now)."""
        i = next(self._ping_ids)
        t0 = self.hub.now_ns()
        self._pings[i] = t0
        if len(self._pings) > _MAX_PENDING_PINGS:
            self._pings.pop(min(self._pings))
        c = self.clock
        return {"type": "ping", "id": i, "t0": t0 / 1e6,  # + the last estimate, for the page's latency line
                "delay_ms": None if c.delay_s is None else round(c.delay_s * 1e3, 2),
                "offset_ms": None if c.offset_s is None else round(c.offset_s * 1e3, 2)}

    def handle(self, text, receive_ns: int | None = None) -> list[dict]:
        """One message from the page -> replies to send (possibly none). Never raises for bad input."""
        receive_ns = self.hub.now_ns() if receive_ns is None else receive_ns
        self.last_rx_ns = receive_ns
        self._tokens = min(float(MAX_BURST), self._tokens + (receive_ns - self._tokens_ns) * 1e-9 * MAX_MESSAGE_HZ)
        self._tokens_ns = receive_ns
        if self._tokens < 1.0:
            self.flooded += 1
            if receive_ns - self._flood_said_ns >= 1_000_000_000:
                self._flood_said_ns = receive_ns
                return [{"type": "error", "reason": f"more than {MAX_MESSAGE_HZ:g} messages/s: dropped unread "
                                                    f"({self.flooded} so far), the robot holds on the last frame"}]
            return []
        self._tokens -= 1.0
        if self.closed:
            return [{"type": "error", "reason": self.closed}]
        try:
            msg = parse_message(text)
            if isinstance(msg, Pong):
                return self._pong(msg, receive_ns)
            return self._frame(msg, receive_ns)
        except (ProtocolError, ValueError, KeyError) as exc:
            self.errors += 1
            self.hub.latency.refused()
            return [{"type": "error", "reason": f"{exc}: frame dropped, nothing published, the robot holds"}]

    def _pong(self, pong: Pong, receive_ns: int) -> list[dict]:
        t0 = self._pings.pop(pong.id, None)
        if t0 is None:
            raise ProtocolError(f"pong {pong.id}: no such ping outstanding")
        if self.clock.add(t0 / 1e9, pong.t1_ms / 1e3, pong.t2_ms / 1e3, receive_ns / 1e9):
            self.hub.offset_s, self.hub.delay_s = self.clock.offset_s, self.clock.delay_s
        return []

    def _tracking(self, wrists: dict) -> None:
        """A side that had a wrist (hand or controller) and has none now is lost: warn once, and once
        when it is back (its /vr/<side>_wrist stops, so the retarget node's stale hold keeps it still)."""
        for side in ("left", "right"):
            had, has = side in self._tracked, side in wrists
            if had and not has:
                self.hub.say("warn", f"{side} hand/controller tracking lost: its wrist input stops, the robot holds")
            elif has and not had and self.frames:
                self.hub.say("info", f"{side} hand/controller tracked again")
        self._tracked = set(wrists)

    def _frame(self, frame: Frame, receive_ns: int) -> list[dict]:
        if not self.clock.synced:
            self.unsynced += 1
            return [{"type": "error", "reason": "clock sync pending (no ping round trip yet): frame held"}] \
                if self.unsynced == 1 else []
        if self._last_seq is not None and frame.seq <= self._last_seq:
            self.out_of_order += 1
            return []
        if self.hub.driver is not self:
            return [{"type": "error", "reason": "not the driving headset"}]
        wrists, hands = {}, {}
        for side, joints in frame.hands.items():
            wrists[side], hands[side] = hand_to_vr_world(joints, side)
        for side, ctrl in frame.controllers.items():
            if side not in wrists:
                wrists[side] = wrist_to_vr_world(ctrl.pose, side)
        stamp_ns = min(int(round(self.clock.to_station(frame.t_ms / 1e3) * 1e9)), receive_ns)
        buttons, axes = _joy(frame)
        sample = XrSample(frame.seq, stamp_ns, receive_ns, head_to_vr_world(frame.head), wrists, hands, buttons, axes)
        self._tracking(wrists)
        self._last_seq = frame.seq
        self.frames += 1
        self.hub.latency.frame(frame.seq, stamp_ns / 1e9, (receive_ns - stamp_ns) / 1e9)
        self.hub.sink(sample)
        return []


class XrHub:
    """Headset connections of one station.

    Args:
        sink: called with each valid :class:`XrSample` (the node publishes it).
        now_ns: station clock, int ns (default ``time.time_ns``: ROS system time).
        takeover: a new headset replaces the driving one instead of being refused.
        state: () -> the station state dict (``RecorderBridge.latest()``: ``state``, ``episode``, ...).
        on_event: (level "info"|"warn"|"error", text) for logs and ``/diagnostics``.
    """

    def __init__(self, sink, now_ns=time.time_ns, takeover: bool = False, state=None, on_event=None):
        self.sink, self.now_ns, self.takeover = sink, now_ns, takeover
        self.state = state or (lambda: {})
        self.on_event = on_event or (lambda level, text: None)
        self.driver: XrConnection | None = None
        self.latency = LatencyWindow()
        self.offset_s: float | None = None
        self.delay_s: float | None = None
        self.drops: list[dict] = []

    def say(self, level: str, text: str) -> None:
        """``on_event``, which must never break the pose path: its own failure is printed, not raised."""
        try:
            self.on_event(level, text)
        except Exception as exc:  # noqa: BLE001 - a logging/diagnostics failure is not a drop
            print(f"xr: event not delivered ({type(exc).__name__}: {exc}): {level}: {text}", file=sys.stderr)

    def connect(self, peer: str) -> XrConnection:
        """A new headset. Raises :class:`Refused` while another one drives (unless ``takeover``)."""
        old = self.driver
        if old is not None and not old.closed:
            silent_s = (self.now_ns() - old.last_rx_ns) / 1e9
            if silent_s > SILENT_DRIVER_S:
                self.disconnect(old, f"silent for {silent_s:.1f} s, replaced by the headset at {peer}")
                old.closed = old.closed or "replaced"
            elif not self.takeover:
                raise Refused(f"another headset ({old.peer}) is driving this station; close it first, or start "
                              "`robot-capture xr --takeover` to let a new headset take over")
            else:
                old.closed = f"taken over by the headset at {peer}"
                self.say("warn", f"headset {peer} took over from {old.peer}")
        conn = XrConnection(self, peer)
        self.driver = conn
        self.latency.restart_sequence()
        self.say("info", f"headset {peer} connected")
        return conn

    def disconnect(self, conn: XrConnection, why: str = "connection closed") -> None:
        """The socket of ``conn`` ended. A driver lost while recording is flagged (``drops``, an error event)."""
        if conn is not self.driver:
            return
        self.driver = None
        if conn.closed:  # taken over: the new driver carries on
            return
        conn.closed = why
        st = self.state() or {}
        if st.get("state") == "recording":
            drop = {"t_ns": self.now_ns(), "peer": conn.peer, "episode": st.get("episode", ""), "why": why}
            self.drops.append(drop)
            self.say("error", f"headset connection lost during episode {drop['episode'] or '?'} ({why}): "
                                   "no pose input, the robot holds")
        else:
            self.say("info", f"headset {conn.peer} disconnected ({why})")
