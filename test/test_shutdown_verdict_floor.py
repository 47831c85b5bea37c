"""Issue 18 W3/W4 through real DDS: a real ``robot-capture up --sim`` process.

* **One verdict, under load**: with a busy loop on the other core, an episode is stopped through
  the recorder's services; the verdict the recorder gives at stop (its console state, once its
  QA is done) is ``robot-capture qa``'s on the same bag, and ``robot-capture qa`` leaves the
  ``qa.json`` the recorder wrote byte for byte unchanged.
* **Ctrl-C with an open episode**: SIGINT on ``up`` while an episode records; the recorder stops
  the episode before any source stops (stop reason ``shutdown``), so the bag does not end in
  the sources' silence: ``robot-capture qa`` finds nothing wrong with its end (no "stopped
  1.6 s before the end", no idle tail). Whether it passes as a
  whole depends on the machine keeping the 250 Hz / 100 Hz streams (the QA says so when it
  does not; the verdict is printed): on a quiet 2-core machine it passes.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robot_capture.floor import graph

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.xdist_group("sim_floor"), pytest.mark.timeout(600)]

CLIP = "cmu_02_06_bend_scoop_up_lift_arm.bvh"  # the demo's clip: the live limits follow it (README)
EPISODE_S = 4.0
#: how long the verdict at stop may take here: a bound for a loaded CI box (load ~30 on 2 cores),
#: not a speed (the recorder's own give-up bound is robot_capture.qa.recorder.QA_GIVE_UP_S; a
#: verdict later than that is still reported, so the test waits past it)
VERDICT_BOUND_S = 300.0


def _cli() -> list[str]:
    import shutil

    from _cmd import module_command

    exe = Path(sys.executable).parent / "robot-capture"
    found = str(exe) if exe.exists() else shutil.which("robot-capture")
    return [found] if found else module_command("robot_capture.cli")


def _busy_loop() -> subprocess.Popen:
    """A process spinning on the last core (the other core of a 2-core machine)."""
    code = ("import os\ncpus = sorted(os.sched_getaffinity(0))\n"
            "os.sched_setaffinity(0, {cpus[-1]})\nwhile True:\n    pass\n")
    return subprocess.Popen([sys.executable, "-c", code])


def _start(client) -> Path:
    from robot_capture.floor.client import EpisodeClientError

    for attempt in range(6):  # a loaded machine may deliver a stream under its readiness rate for a while
        try:
            return Path(client.start_episode(force=attempt == 5))
        except EpisodeClientError as exc:
            if "not starting" not in str(exc):
                raise
            client.spin_for(2.0)
    raise AssertionError("unreachable")


def _qa_lines(log_path: Path) -> str:
    """What ``up``'s log says about the QA at stop (for a failure message)."""
    lines = log_path.read_text(errors="replace").splitlines()
    return "\n".join(x for x in lines if "QA" in x or "qa" in x or "Traceback" in x)[-3000:]


def _qa(bag: Path):
    """``robot-capture qa BAG`` (the CLI, in this process) -> the verdict it stored."""
    from robot_capture.cli import main
    from robot_capture.episodes import read_verdict

    assert main(["qa", str(bag)]) in (0, 1)
    return read_verdict(bag)


def test_verdict_at_stop_under_load_and_ctrl_c_with_an_open_episode(tmp_path):
    from sensor_msgs.msg import JointState

    from robot_capture.episodes import load_episode, read_verdict
    from robot_capture.floor.client import EpisodeClient

    out_dir = tmp_path / "episodes"
    station = tmp_path / "station.yaml"  # the shipped config; no auto-stop (the console's subject)
    station.write_text(graph.default_config_path().read_text().replace(
        "parameters: {}", "parameters: {recorder: {stream_lost_s: 600.0}}").replace(
        "joint_state_rate_hz: 500.0", "joint_state_rate_hz: 250.0"))  # a light floor for a loaded CI box
    log_path = tmp_path / "up.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([*_cli(), "up", str(station), "--sim", "--clip", CLIP, "--nice", "-5", "--cameras", "none",
                             "--output-dir", str(out_dir), "--task", "pour water", "--operator", "alice"],
                            stdout=log, stderr=subprocess.STDOUT,
                            # its own host lock folder: a launch-file test in this pytest process may hold
                            # the host's station claim (floor.station_guard); the DDS probe still runs
                            env={**os.environ, "ROBOT_CAPTURE_LOCK_DIR": str(tmp_path / "locks")})
    busy = None
    try:
        with EpisodeClient(discovery_timeout_s=90.0, timeout_s=15.0, node_name="verdict_operator") as client:
            client.watch({"/retarget/joint_command": JointState, "/joint_states": JointState})
            client.wait_for_recorder()
            client.wait_for_data(list(client.counts), min_messages=5, timeout_s=40.0)
            client.unwatch()
            client.spin_for(1.0)
            # 1. a stopped episode, with the other core busy
            busy = _busy_loop()
            first = _start(client)
            client.spin_for(EPISODE_S)
            client.set_labels(episode_success=True)
            reply = client.trigger("stop_episode")
            assert "QA running" in reply, reply

            def settled() -> bool:  # done, or an error that is final (not "not finished ...": still watched)
                qa = str((client.status().get("last") or {}).get("qa", ""))
                return qa == "done" or (qa.startswith("error") and "not finished" not in qa)
            client.spin_until(settled, VERDICT_BOUND_S)
            last = client.status()["last"]
            assert last.get("qa") == "done", (f"no verdict at stop within {VERDICT_BOUND_S:g} s: qa "
                                              f"{last.get('qa')!r} (load {os.getloadavg()[0]:.1f}); "
                                              f"last {dict(last)}\n{_qa_lines(log_path)}")
            busy.kill()
            busy.wait()
            busy = None
            # 2. an episode open at Ctrl-C
            second = _start(client)
            client.spin_for(EPISODE_S)
            client.set_labels(episode_success=True)  # the operator's label, read at the stop Ctrl-C makes
        proc.send_signal(signal.SIGINT)  # what a Ctrl-C in `up`'s terminal does
        rc = proc.wait(timeout=90)
    finally:
        for p in (busy, proc):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        log.close()
    text = log_path.read_text(errors="replace")
    assert rc == 0, text[-4000:]

    # one verdict: what the recorder said at stop is what `robot-capture qa` says, byte for byte
    at_stop = read_verdict(first)
    assert at_stop is not None and at_stop.source == "qa", text[-3000:]
    assert last["verdict"] == at_stop.summary() and Path(last["path"]) == first
    stored = (first / "qa.json").read_bytes()
    again = _qa(first)
    assert (first / "qa.json").read_bytes() == stored and again.to_dict() == at_stop.to_dict()
    print(f"verdict at stop under load: {at_stop.summary()}")

    # Ctrl-C: the open episode was stopped first, its QA done before the recorder exited
    ep = load_episode(second)
    assert ep.stop_reason == "shutdown" and ep.task == "pour water" and ep.success is True
    v = _qa(second)
    print(f"episode open at Ctrl-C: {v.summary()}")
    end = [f for f in v.findings if f.check == "presence"  # "stopped 1.6 s before the end" (the old order)
           or (f.check == "idle" and "last" in f.message)]
    assert not end, v.summary()
    # what a loaded machine can do to any episode (missed samples, late stamps) is the QA's to say, not a
    # sign of the shutdown; the verdict is printed
    assert not [f for f in v.findings if f.check in ("bag", "labels", "duration", "sources")], v.summary()
    assert text.index("stopping recorder first") < text.index("episode closed")
