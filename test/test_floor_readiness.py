"""`up`'s health: the "floor ready" line, --status-every lines, and a non-zero exit when a
required node died (also with --keep-going, and when it exited with code 0).

ROS-free: a fake supervisor and state for FloorWatch; dummy children (test_floor_launcher's)
through the real launcher for the exit code.
"""
from __future__ import annotations

import io

from robot_capture.floor import launcher
from robot_capture.floor.readiness import FloorWatch
from test_floor_launcher import _spec, dummy_env  # noqa: F401 - the fixture is used by name


class FakeSup:
    def __init__(self, n, alive):
        self.children = {f"n{i}": None for i in range(n)}
        self._alive = alive
        self.lines = []

    def alive(self):
        return [f"n{i}" for i in range(self._alive)]

    def log(self, msg):
        self.lines.append(msg)


def test_ready_line_once_then_status_lines():
    t = [0.0]
    state = {"state": "idle", "ready": False, "reasons": ["/joint_states silent for 3.0 s"],
             "streams": [{"topic": "/joint_states", "status": "silent"}, {"topic": "/a", "status": "ok"}],
             "counters": {"kept": 0, "discarded": 0}}
    w = FloorWatch(lambda: state, status_every_s=5.0, not_ready_after_s=10.0, clock=lambda: t[0])
    sup = FakeSup(3, 2)
    for step in range(1, 13):  # 12 s: nodes missing, then streams not fresh
        t[0] = float(step)
        if step == 8:
            sup._alive = 3
        w(sup)
    assert not any("floor ready" in x for x in sup.lines)
    assert any(x.startswith("floor not ready after 10 s: 3/3 nodes up; /joint_states silent") for x in sup.lines)
    status = [x for x in sup.lines if x.startswith("status:")]
    assert len(status) == 2 and "IDLE" in status[0] and "streams 1/2 fresh" in status[0]
    state.update(ready=True, state="ready", reasons=[], streams=[{"topic": "/a", "status": "ok"}] * 2)
    for step in range(13, 20):
        t[0] = float(step)
        w(sup)
    ready = [x for x in sup.lines if x.startswith("floor ready")]
    assert ready == ["floor ready: 3/3 nodes up, 2/2 streams flowing (13.0 s)"]
    assert "READY" in [x for x in sup.lines if x.startswith("status:")][-1]


def test_exit_code_when_a_required_node_died(dummy_env, tmp_path):
    specs = [_spec("recorder", "rec", dummy_env), _spec("retarget", "ret", dummy_env, behaviour="die", die_after_s=0.3)]
    out = io.StringIO()
    assert launcher.run(specs, out=out) == 1
    assert "required node(s) ret gone" in out.getvalue()
    # --keep-going: the floor stays up after the death, and the exit code still says so
    out = io.StringIO()
    specs[0] = _spec("recorder", "rec", dummy_env, behaviour="die", die_after_s=0.8)
    assert launcher.run(specs, keep_going=True, out=out) == 1
    assert "exiting 1: required node(s)" in out.getvalue()


def test_a_failing_watch_never_stops_the_floor(dummy_env):
    specs = [_spec("retarget", "ret", dummy_env, behaviour="die", die_after_s=0.5)]
    calls = []

    def bad_watch(sup):
        calls.append(1)
        raise RuntimeError("no DDS")

    out = io.StringIO()
    assert launcher.run(specs, out=out, watch=bad_watch) == 1
    assert calls == [1] and "status monitor failed (no DDS)" in out.getvalue()
