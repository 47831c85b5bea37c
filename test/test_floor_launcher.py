"""robot_capture.floor.launcher: spawning, output prefixes, ordered shutdown, deaths.

Children here are a small dummy node module (no ROS) started through the real
``python .../robot_capture/floor/_child.py <module> --ros-args ...`` path, so the command
line, params file and signal handling are the ones ``robot-capture up`` uses.
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from robot_capture.floor import graph, launcher
from robot_capture.floor.graph import NodeSpec

DUMMY = textwrap.dedent('''
    """Dummy node: records its name, params and shutdown time; behaviour from params."""
    import json, os, signal, sys, time
    import yaml

    def main():
        argv = sys.argv[1:]
        assert argv[0] == "--ros-args", argv
        name = next(a.split(":=", 1)[1] for a in argv if a.startswith("__node:="))
        pfile = argv[argv.index("--params-file") + 1]
        params = yaml.safe_load(open(pfile))["/**"]["ros__parameters"]
        log = params["log"]
        def record(event, **kw):
            with open(log, "a") as f:
                f.write(json.dumps({"name": name, "event": event, "t": time.time_ns(), **kw}) + "\\n")
        behaviour = params.get("behaviour", "ok")
        stop = []
        def on_sig(signum, frame):
            record("signal", sig=signum)
            if behaviour == "ignore_sigint" and signum == signal.SIGINT:
                return
            stop.append(signum)
        signal.signal(signal.SIGINT, on_sig)
        signal.signal(signal.SIGTERM, on_sig)
        import robot_capture
        lock = None
        if params.get("output_dir"):  # as the recorder: hold the output folder lock until the episode is closed
            import fcntl
            os.makedirs(params["output_dir"], exist_ok=True)
            lock = os.open(os.path.join(params["output_dir"], ".recorder.lock"), os.O_RDWR | os.O_CREAT)
            fcntl.flock(lock, fcntl.LOCK_EX)
        record("start", pid=os.getpid(), ppid=os.getppid(), params=params, pkg=robot_capture.__file__,
               nice=os.getpriority(os.PRIO_PROCESS, 0), transport=os.environ.get("FASTDDS_BUILTIN_TRANSPORTS"))
        print(f"hello from {name}", flush=True)
        t0 = time.monotonic()
        while not stop:
            time.sleep(0.02)
            if behaviour == "die" and time.monotonic() - t0 > params.get("die_after_s", 0.5):
                print("dying on purpose", flush=True)
                return 3
        time.sleep(params.get("close_s", 0.0))  # e.g. the recorder closing its episode
        if lock is not None:
            os.close(lock)
            record("closed")
        time.sleep(params.get("qa_s", 0.0))  # e.g. the recorder finishing the QA of its episode
        record("stopped")
        return 0
''')


@pytest.fixture
def dummy_env(tmp_path, monkeypatch):
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    (mod_dir / "dummy_node.py").write_text(DUMMY)
    pp = os.pathsep.join(p for p in [str(mod_dir), os.environ.get("PYTHONPATH", "")] if p)  # no '' (= cwd)
    monkeypatch.setenv("PYTHONPATH", pp)
    return tmp_path / "events.jsonl"


def _spec(role, name, log, timeout=5.0, **params):
    return NodeSpec(role=role, name=name, executable=name, module="dummy_node",
                    parameters={"log": str(log), **params}, shutdown_timeout_s=timeout)


def _events(log: Path):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _wait_started(log, names, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = {e["name"] for e in _events(log) if e["event"] == "start"}
        if set(names) <= started:
            return True
        time.sleep(0.05)
    return False


def test_ordered_shutdown_recorder_episode_first(dummy_env, tmp_path):
    """Issue 18: the recorder is signalled first and closes its episode (releases its output folder
    lock) before any source is signalled; the supervisor then waits for it (its QA) to exit."""
    log = dummy_env
    specs = [_spec("recorder", "recorder", log, close_s=0.5, qa_s=0.5, output_dir=str(tmp_path / "out")),
             _spec("robot_sim", "robot_sim", log),
             _spec("retarget", "retarget", log),
             _spec("mocap_replay", "mocap_replay", log)]
    out = io.StringIO()
    sup = launcher.Supervisor(specs, out=out)
    sup.start()
    try:
        assert _wait_started(log, [s.name for s in specs])
        assert sup.check() == []
    finally:
        codes = sup.shutdown()
    assert codes == {s.name: 0 for s in specs}
    ev = _events(log)
    stopped = {e["name"]: e["t"] for e in ev if e["event"] == "stopped"}
    assert set(stopped) == {s.name for s in specs}
    signals = [e for e in ev if e["event"] == "signal"]
    closed = next(e["t"] for e in ev if e["event"] == "closed" and e["name"] == "recorder")
    # the recorder first, once; every source only after the recorder closed its episode
    assert signals[0]["name"] == "recorder" and sum(e["name"] == "recorder" for e in signals) == 1
    assert min(e["t"] for e in signals if e["name"] != "recorder") > closed
    assert stopped["recorder"] > closed
    assert all(e["sig"] == signal.SIGINT for e in signals)
    # params reached each child through its params file
    start = {e["name"]: e for e in ev if e["event"] == "start"}
    assert start["recorder"]["params"]["close_s"] == 0.5
    text = out.getvalue()
    for s in specs:
        assert f"[{s.name}] hello from {s.name}" in text
    assert not sup.workdir.exists()  # its temp params dir is removed
    # the supervisor cannot know whether an episode is open: it must not claim one is
    assert "closing the open episode" not in text and "if there is one" in text
    assert "stopping recorder first" in text


def test_children_import_the_installed_package_not_the_cwd(dummy_env, tmp_path, monkeypatch):
    """A source checkout in the working directory must not shadow the package the supervisor runs."""
    import robot_capture

    log = dummy_env
    shadow = tmp_path / "cwd"
    (shadow / "robot_capture").mkdir(parents=True)
    (shadow / "robot_capture" / "__init__.py").write_text("raise ImportError('shadow checkout imported')\n")
    monkeypatch.chdir(shadow)
    sup = launcher.Supervisor([_spec("recorder", "recorder", log)], out=io.StringIO())
    sup.start()
    try:
        assert _wait_started(log, ["recorder"])
    finally:
        sup.shutdown()
    start = next(e for e in _events(log) if e["event"] == "start")
    assert start["pkg"] == robot_capture.__file__


def _start_events(log, adjust) -> dict:
    """Run a recorder + retarget graph of dummies, ``adjust(specs)`` first; return name -> start event."""
    specs = [_spec("recorder", "recorder", log), _spec("retarget", "retarget", log)]
    adjust(specs)
    sup = launcher.Supervisor(specs, out=io.StringIO())
    sup.start()
    try:
        assert _wait_started(log, ["recorder", "retarget"])
    finally:
        sup.shutdown()
    return {e["name"]: e for e in _events(log) if e["event"] == "start"}


def test_children_get_the_configured_niceness(dummy_env):
    base = os.getpriority(os.PRIO_PROCESS, 0)

    def adjust(specs):
        specs[1].nice = 3  # raising niceness is always permitted

    started = _start_events(dummy_env, adjust)
    assert {n: e["nice"] for n, e in started.items()} == {"recorder": base, "retarget": min(19, base + 3)}


def test_children_get_the_spec_environment(dummy_env, monkeypatch):
    monkeypatch.delenv("FASTDDS_BUILTIN_TRANSPORTS", raising=False)

    def adjust(specs):
        specs[0].env = graph.dds_environment("large_data")

    started = _start_events(dummy_env, adjust)
    assert {n: e["transport"] for n, e in started.items()} == {"recorder": "LARGE_DATA", "retarget": None}


def test_child_death_is_reported_and_graph_stops(dummy_env):
    log = dummy_env
    specs = [_spec("recorder", "recorder", log), _spec("retarget", "retarget", log, behaviour="die", die_after_s=0.3)]
    out = io.StringIO()
    sup = launcher.Supervisor(specs, out=out)
    stop = threading.Event()
    sup.start()
    t0 = time.monotonic()
    try:
        rc = sup.spin(stop)
        detected = time.monotonic() - t0
    finally:
        codes = sup.shutdown()
    assert rc == 1
    assert detected < 15.0
    assert codes["retarget"] == 3 and codes["recorder"] == 0
    assert "[up] node retarget exited unexpectedly with code 3" in out.getvalue()
    assert "[retarget] dying on purpose" in out.getvalue()


def test_optional_camera_death_is_reported_and_graph_keeps_running(dummy_env):
    log = dummy_env
    specs = [_spec("recorder", "recorder", log), _spec("camera", "camera_head", log, behaviour="die", die_after_s=0.2)]
    specs[1].required = False
    out = io.StringIO()
    sup = launcher.Supervisor(specs, out=out)
    stop = threading.Event()
    sup.start()
    try:
        assert _wait_started(log, ["recorder", "camera_head"])
        deadline = time.monotonic() + 15
        while "exited unexpectedly" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        threading.Timer(1.0, stop.set).start()
        rc = sup.spin(stop)
        assert rc == 0 and sup.alive() == ["recorder"]
    finally:
        codes = sup.shutdown()
    assert codes == {"camera_head": 3, "recorder": 0}
    text = out.getvalue()
    assert "node camera_head exited unexpectedly with code 3" in text and "optional node(s) gone" in text


def test_graph_marks_cameras_optional():
    specs = graph.build(None, sim=True)
    assert {s.role for s in specs if not s.required} == {"camera"}


def test_sigint_ignoring_node_is_escalated(dummy_env):
    log = dummy_env
    specs = [_spec("recorder", "recorder", log), _spec("camera", "camera_x", log, timeout=0.5, behaviour="ignore_sigint")]
    out = io.StringIO()
    sup = launcher.Supervisor(specs, out=out)
    sup.start()
    assert _wait_started(log, ["recorder", "camera_x"])
    t0 = time.monotonic()
    codes = sup.shutdown()
    assert time.monotonic() - t0 < 10.0
    sigs = [e["sig"] for e in _events(log) if e["event"] == "signal" and e["name"] == "camera_x"]
    assert sigs[:2] == [signal.SIGINT, signal.SIGTERM]
    assert codes["camera_x"] == 0 and codes["recorder"] == 0
    assert "sending SIGTERM" in out.getvalue()


def test_duplicate_names_rejected(tmp_path):
    with pytest.raises(ValueError, match="duplicate"):
        launcher.Supervisor([_spec("camera", "c", tmp_path), _spec("camera", "c", tmp_path)])


RUNNER = textwrap.dedent('''
    import sys
    from robot_capture.floor import launcher
    from robot_capture.floor.graph import NodeSpec
    log = sys.argv[1]
    specs = [NodeSpec(role=r, name=r, executable=r, module="dummy_node",
                      parameters={"log": log, "close_s": 0.3}) for r in ("recorder", "retarget")]
    sys.exit(launcher.run(specs))
''')


def _start_runner(tmp_path, log):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    return subprocess.Popen([sys.executable, str(script), str(log)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_shuts_down_cleanly_on_signal(dummy_env, tmp_path, sig):
    log = dummy_env
    proc = _start_runner(tmp_path, log)
    try:
        assert _wait_started(log, ["recorder", "retarget"])
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert f"got {signal.Signals(sig).name}: shutting down" in out
    assert "all nodes stopped cleanly" in out
    assert {e["name"] for e in _events(log) if e["event"] == "stopped"} == {"recorder", "retarget"}


def test_children_die_with_a_killed_supervisor(dummy_env, tmp_path):
    log = dummy_env
    proc = _start_runner(tmp_path, log)
    try:
        assert _wait_started(log, ["recorder", "retarget"])
        pids = [e["pid"] for e in _events(log) if e["event"] == "start"]
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids), "children orphaned after the supervisor was SIGKILLed"
        # they got SIGTERM (PR_SET_PDEATHSIG) and still ran their clean stop path
        assert {e["name"] for e in _events(log) if e["event"] == "stopped"} == {"recorder", "retarget"}
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
