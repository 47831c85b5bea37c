"""A real, non-sim floor through DDS with stand-in drivers (issue 18, "Must show").

`robot-capture up --cameras none` (recorder + retarget, no simulator) serves the module; the
robot and the exoskeleton are stand-in driver processes (test/_standin.py) started per test:

* the robot's /joint_states missing: a start is refused, naming the robot joint state;
* the exoskeleton missing: refused, naming the exoskeleton (not the retarget command it feeds);
* every declared stream present: an episode records and the QA does not fail it;
* `robot-capture station check` exits 1 on each missing required stream and on a stand-in whose
  header stamps are 200 ms off, 0 with every stream present; `up` printed the same check at start.
Rates of the test station are low (robot 100 Hz, exo 50 Hz) so a loaded 2-core machine keeps them.
"""
from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ros_util import wait_until

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.xdist_group("sim_floor"), pytest.mark.timeout(600)]

HERE = Path(__file__).resolve().parent


def _exe() -> str:
    return str(Path(sys.executable).parent / "robot-capture")


@contextlib.contextmanager
def standins(*kinds, offset_s: dict | None = None):
    """Stand-in driver processes (``robot``, ``exo``) for the duration of the block."""
    rates = {"robot": 100.0, "exo": 50.0}
    procs = []
    try:
        for k in kinds:
            procs.append(subprocess.Popen([sys.executable, str(HERE / "_standin.py"), k, str(rates[k]),
                                           str((offset_s or {}).get(k, 0.0))],
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        for p in procs:
            line = p.stdout.readline()
            assert line.startswith("STANDIN"), line + p.stdout.read()
        yield procs
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def floor(tmp_path_factory):
    from robot_capture.floor import graph
    from robot_capture.floor.client import EpisodeClient

    d = tmp_path_factory.mktemp("station_floor")
    cfg = yaml.safe_load(graph.default_config_path().read_text())
    for s in cfg["streams"]:
        if s["topic"] == "/joint_states":
            s["rate_hz"] = 100.0
        if s["topic"] == "/exo/joint_states":
            s["rate_hz"] = 50.0
    # one command per exo input: command stamps on the exo's sample grid (as test/_qa_floor.py), so the QA
    # judges the floor's data, not how a starved retarget timer kept its own clock
    cfg["retarget"]["rate_hz"] = 0.0
    cfg["check"]["sample_s"] = 2.0
    path = d / "station.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = d / "episodes"
    log = d / "up.log"
    fh = open(log, "wb")
    up = subprocess.Popen([_exe(), "up", str(path), "--cameras", "none", "--output-dir", str(out)],
                          stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    client = EpisodeClient(discovery_timeout_s=60.0, timeout_s=20.0, node_name="station_test_operator")
    try:
        client.wait_for_recorder()
        yield {"config": path, "out": out, "log": log, "client": client, "up": up}
    finally:
        client.close()
        up.send_signal(signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        fh.close()


def _reasons_become(client, predicate, timeout=60.0) -> list[str]:
    """Poll the recorder's status until ``predicate(reasons)``; returns the last reasons."""
    last = []

    def check():
        nonlocal last
        last = client.status()["reasons"]
        return predicate(last)

    wait_until(check, timeout=timeout, step=0.5)
    return last


def _check(floor, seconds=2.0):
    r = subprocess.run([_exe(), "station", "check", str(floor["config"]), "--cameras", "none", "--output-dir",
                        str(floor["out"]), "--seconds", str(seconds)], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def test_up_prints_its_config_and_the_station_check(floor):
    assert wait_until(lambda: "station check:" in floor["log"].read_text(errors="replace"), timeout=90.0)
    text = floor["log"].read_text(errors="replace")
    assert f"[up] config: {floor['config'].resolve()}" in text
    # no driver runs yet: the check fails on the robot and the exoskeleton
    assert "[up] station check: FAIL" in text
    assert "[up]   - robot joint state (/joint_states, robot driver): no message" in text


def test_no_robot_joint_state_refuses_the_start_naming_it(floor):
    from robot_capture.floor.client import EpisodeClientError

    client = floor["client"]
    with standins("exo"):
        reasons = _reasons_become(client, lambda r: len(r) == 1 and "/joint_states" in r[0])
        assert reasons and reasons[0].startswith("robot joint state (/joint_states, robot driver) silent for"), reasons
        with pytest.raises(EpisodeClientError) as e:
            client.start_episode(task="t", operator="o")
        assert "failed: not starting: robot joint state (/joint_states, robot driver) silent" in str(e.value)
        rc, out = _check(floor)
        assert rc == 1 and "robot joint state (/joint_states, robot driver): no message" in out, out


def test_no_exoskeleton_refuses_the_start_naming_it(floor):
    from robot_capture.floor.client import EpisodeClientError

    client = floor["client"]
    with standins("robot"):
        reasons = _reasons_become(client, lambda r: len(r) == 1 and "exo" in r[0])
        assert reasons and reasons[0].startswith("exoskeleton (/exo/joint_states, exoskeleton driver) silent"), \
            reasons
        with pytest.raises(EpisodeClientError) as e:
            client.start_episode(task="t", operator="o")
        msg = str(e.value)
        assert "failed: not starting: exoskeleton (/exo/joint_states, exoskeleton driver) silent" in msg
        assert "/retarget/joint_command" not in msg  # derived from the exoskeleton: not a root cause
        rc, out = _check(floor)
        assert rc == 1 and "exoskeleton (/exo/joint_states, exoskeleton driver): no message" in out, out


def test_a_200_ms_clock_offset_fails_the_station_check(floor):
    with standins("robot", "exo", offset_s={"exo": 0.2}):
        # both drivers flow (the retarget node holds inputs stamped in its future: no command then)
        _reasons_become(floor["client"], lambda r: not any(x.startswith(("robot joint", "exoskeleton")) for x in r))
        rc, out = _check(floor)
    print(out)
    assert rc == 1, out
    assert "exoskeleton (/exo/joint_states, exoskeleton driver): header stamps -" in out
    assert "ms off the station clock (limit 100 ms)" in out


def test_every_declared_stream_present_records_an_episode_the_qa_passes(floor):
    from robot_capture.qa.run import qa_episode

    client = floor["client"]
    with standins("robot", "exo"):
        reasons = _reasons_become(client, lambda r: not r)
        assert not reasons, reasons
        rc, out = _check(floor)
        print(out)
        assert rc == 0, out
        assert "robot joints: " in out and "disk: " in out
        client.start_episode(task="reach", operator="alice", scene="lab")
        client.spin_for(4.0)
        bag = client.stop_episode(success=True)
    v = qa_episode(bag)
    print(v.verdict, v.reasons)
    assert v.verdict != "fail", v.reasons
    assert not [f for f in v.findings if f.check == "presence"], v.reasons
    assert v.metrics["streams"]["/joint_states"] == {"name": "robot joint state", "role": "robot",
                                                     "source": "robot driver"}
    meta = yaml.safe_load((Path(bag) / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["custom_data"]["stream//exo/joint_states"] == "exoskeleton | operator | exoskeleton driver"
