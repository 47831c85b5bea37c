"""The retarget session's two loaded-PC warnings, ROS-free (issue 23).

* ``input_flood``: an ordinary 200 Hz input delivered as a loaded PC delivers it (a starved
  publisher sends its backlog in a burst, a starved executor takes it one step after the
  previous one, a 3 s stall) is never a flood; a real 10 kHz flood is, while it lasts.
* the stale-input warning says which it is: old already at receive (the stamps are not on
  this clock) or fresh at receive and old at use (a loaded machine).

Times are simulated (no sleeps, nothing measured).
"""
import numpy as np
import pytest

from robot_capture.retarget.input_checks import FLOOD_WINDOW_S, FloodWindow, stale_reason
from robot_capture.retarget.live import LiveRetarget
from robot_capture.retarget.mapping import RobotMapping
from robot_capture.sim.replay import ClipReplay
from robot_capture.sim.ticker import Ticker

RATE = 100.0  # command rate, Hz


@pytest.fixture(scope="module")
def replay():
    return ClipReplay("cmu_02_05_punch_strike")


@pytest.fixture(scope="module")
def g1():
    return RobotMapping.load("g1")


class _Node:
    """The node's polled path, ROS-free: at each step the messages published since the last
    take are taken; the newest is handed over (received when it was published), the others were
    replaced unread by the middleware and are counted (``note_coalesced``)."""

    def __init__(self, live, replay):
        self.live, self.replay = live, replay
        self.queue: list[tuple[float, float]] = []  # (stamp, publish = receive time) not taken yet
        self.flagged: list[float] = []

    def publish(self, stamps, at=None):
        self.queue.extend((s, s if at is None else at) for s in stamps)

    def step(self, t):
        taken = [m for m in self.queue if m[1] <= t]
        self.queue = [m for m in self.queue if m[1] > t]
        if taken:
            self.live.note_coalesced(len(taken) - 1)
            stamp, recv = taken[-1]
            k = int(round(stamp * 200)) % len(self.replay.exo_positions)
            self.live.on_exo(self.replay.exo_names, self.replay.exo_positions[k], stamp, recv=recv)
        res = self.live.step(t)
        if res is not None and "input_flood" in res[0].flags:
            self.flagged.append(t)


def _loaded_schedule(seconds):
    """(publisher wake times, step times) of a loaded 2-core PC: every 0.5 s both the 200 Hz
    publisher and the retarget node stall 120 ms; the publisher then sends its backlog (its
    Ticker's burst, 24 samples) at once, 0.5 ms before the node's first step after the stall, and
    the node's timer, late, fires again 1 ms later (rcl's next period); from 3 s the node alone
    stalls 3 s (then takes 600 messages at once)."""
    pub, steps = [], []
    t = 0.0
    while t < seconds:
        phase = t % 0.5
        if not 0.0 <= phase - 0.2 < 0.12:
            pub.append(t)
        t = round(t + 0.005, 6)
    t = 0.0
    while t < seconds:
        phase = t % 0.5
        stalled = 0.0 <= phase - 0.2 < 0.12 or 3.0 <= t < 6.0
        if not stalled:
            steps.append(t)
            if abs(phase - 0.32) < 1e-9 or abs(t - 6.0) < 1e-9:
                steps.append(t + 0.001)  # the late timer's next period comes right after
        t = round(t + 1.0 / RATE, 6)
    return pub, sorted(steps)


def _run(live, replay, pub_wakes, steps, ticker):
    """Publisher wakes send every sample their Ticker has due (stamped on its grid), steps take."""
    node = _Node(live, replay)
    for t, kind in sorted([(w, 0) for w in pub_wakes] + [(s, 1) for s in steps]):
        if kind == 0:
            node.publish([s * 1e-9 for _k, s in ticker.due(int(round(t * 1e9)))], at=t)
        else:
            node.step(t)
    return node


def test_bursty_but_ordinary_200_hz_input_is_no_flood(g1, replay):
    live = LiveRetarget(g1, "exo", rate_hz=RATE)
    pub, steps = _loaded_schedule(10.0)
    # the publisher's burst after a stall lands between the node's two bunched steps
    pub = [w if abs(w % 0.5 - 0.32) > 1e-9 else w + 0.0005 for w in pub]
    ticker = Ticker(200.0, 0)
    node = _run(live, replay, pub, steps, ticker)
    n_inputs = live.diagnostics()[2]["inputs"]
    assert n_inputs > 1000, n_inputs  # the input did flow: ~200 Hz over 10 s, bursts and stalls included
    assert node.flagged == [], f"input_flood at t = {node.flagged[:5]} (an ordinary 200 Hz input)"


def test_a_real_flood_is_flagged_while_it_lasts(g1, replay):
    live = LiveRetarget(g1, "exo", rate_hz=RATE)
    node = _Node(live, replay)
    t = 0.0
    flagged_in, flagged_after = [], []
    for i in range(300):  # 3 s of steps at 100 Hz
        t = i / RATE
        if 1.0 <= t < 1.5:  # 10 kHz for 0.5 s: 100 messages per step
            node.publish([t - k * 1e-4 for k in range(99, -1, -1)])
        else:
            node.publish([t - 0.005, t])  # 200 Hz
        node.step(t + 0.0001)
        if node.flagged and node.flagged[-1] == t + 0.0001:
            (flagged_in if 1.0 <= t < 1.5 + FLOOD_WINDOW_S else flagged_after).append(t)
    assert flagged_in, "a 10 kHz flood was not flagged"
    assert min(flagged_in) < 1.2, f"flagged only from t = {min(flagged_in)} (the flood began at 1.0 s)"
    assert all(t < 1.0 + 0.5 + FLOOD_WINDOW_S for t in node.flagged), node.flagged[-3:]
    assert not flagged_after
    assert all(1.0 <= t for t in node.flagged), node.flagged[:3]


def test_clock_problem_old_at_receive(g1, replay):
    """Stamps 0.3 s behind this clock: the input is old when it is received."""
    live = LiveRetarget(g1, "exo", rate_hz=RATE)
    for i in range(20):
        t = 1.0 + i / RATE
        live.on_exo(replay.exo_names, replay.exo_positions[i], t - 0.3, recv=t)
        out = live.step(t + 0.001)[0]
    assert "stale" in out.flags
    reason = live.stale_reason(t + 0.001)
    assert "0.300 s old when received" in reason and "clock" in reason and "loaded" not in reason, reason


def test_loaded_machine_fresh_at_receive_old_at_use(g1, replay):
    """Fresh inputs, then the step runs 0.2 s late with nothing newer: a loaded machine, not the clock."""
    live = LiveRetarget(g1, "exo", rate_hz=RATE)
    for i in range(20):
        t = 1.0 + i / RATE
        live.on_exo(replay.exo_names, replay.exo_positions[i], t - 0.002, recv=t)
        out = live.step(t + 0.001)[0]
    assert "stale" not in out.flags
    t_late = t + 0.2
    out = live.step(t_late)[0]
    assert "stale" in out.flags
    reason = live.stale_reason(t_late)
    assert "0.002 s old when received but 0.202 s at use" in reason, reason
    assert "loaded machine" in reason and "not a clock problem" in reason, reason


def test_vr_stale_reason_judges_the_oldest_tracker(g1):
    live = LiveRetarget(g1, "vr", rate_hz=RATE)
    T = np.eye(4)
    T[2, 3] = 1.6
    for i in range(5):
        t = 1.0 + i / RATE
        for name in ("head", "left_wrist", "right_wrist"):
            live.on_vr(name, T, t - (0.4 if name == "left_wrist" else 0.001), recv=t)
        live.step(t + 0.001)
    reason = live.stale_reason(t + 0.001)
    assert "0.400 s old when received" in reason and "clock" in reason, reason


def test_flood_window_counts_whole_step_intervals():
    w = FloodWindow(2000.0)
    assert not w.step(0.0, 0)
    assert not w.step(0.001, 25), "a burst of 25 inputs 1 ms after a step is no flood"
    assert not w.step(3.0, 600), "a 3 s stall's 600 inputs are 200 Hz"
    flagged = [w.step(3.0 + k / 100, 100) for k in range(1, 20)]  # 10 kHz
    assert flagged[-1] and flagged.index(True) <= 10, flagged
    assert not w.step(1.0, 5000), "a clock that steps back starts a new window"
    with pytest.raises(ValueError):
        FloodWindow(float("nan"))


def test_stale_reason_lines():
    assert "when received" in stale_reason(9.5, 10.0, 10.01, 0.1) and "clock" in stale_reason(9.5, 10.0, 10.01, 0.1)
    loaded = stale_reason(9.999, 10.0, 10.2, 0.1)
    assert "0.001 s old when received but 0.201 s at use" in loaded and "not a clock problem" in loaded
    assert stale_reason(9.0, None, 10.0, 0.1) == "holding: input is 1.000 s old (limit 0.100 s)"
    assert stale_reason(None, None, 10.0, 0.1).startswith("holding: no usable input")
