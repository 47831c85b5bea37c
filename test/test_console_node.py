"""The episode manager in the recorder node, through real DDS (issue 8, "Must show").

* start is refused while a required stream is dead, the reply names it; auto-stop when a
  stream is lost mid-episode, and the bag is complete;
* discard-last moves the bag; relabel (through the CLI verb) changes what `robot-capture info`
  and the episode model (what QA reads) see;
* a second recorder with the same node name, or on the same output folder, is refused;
* the Joy mapping drives an episode; a Joy message with too few buttons changes nothing.
"""
from __future__ import annotations

import json
import time
import subprocess
import sys
from pathlib import Path

import pytest

from console_util import StreamPump, recorder, wait_state
from ros_util import wait_until

pytestmark = [pytest.mark.ros, pytest.mark.timeout(150)]


def _exe(*args, timeout=60):
    """The installed `robot-capture` executable, as a user runs it."""
    exe = Path(sys.executable).parent / "robot-capture"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout)


def _cli(*args):
    """`robot-capture ...` in this process (argv parsing, the verb, its exit code and output): the
    same code path without an interpreter start-up per call; _exe covers the executable."""
    import contextlib
    import io

    from robot_capture.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


@pytest.fixture
def client():
    from robot_capture.floor.client import EpisodeClient

    with EpisodeClient(node_name="console_test", discovery_timeout_s=30.0, timeout_s=15.0) as c:
        yield c


def test_refuse_start_then_auto_stop_on_lost_stream(tmp_path, client):
    from robot_capture.bag import BagReader
    from robot_capture.episodes import load_episode
    from robot_capture.floor.client import EpisodeClientError

    pump = StreamPump(["/a", "/b"])
    pump.active.discard("/b")  # /b dead from the start
    rec = recorder(tmp_path, ["/a", "/b"])
    try:
        s = wait_state(client, lambda s: s["streams"][0]["status"] == "ok")
        assert s["state"] == "idle" and s["tally"] == "amber", s
        with pytest.raises(EpisodeClientError, match=r"not starting: /b silent for \d+\.\d s"):
            client.command("start")
        assert not any((tmp_path / "out").glob("2*")), "a refused start created a bag"
        pump.active.add("/b")
        s = wait_state(client, lambda s: s["ready"])
        assert s["state"] == "ready" and s["tally"] == "green", s
        bag = Path(client.command("start"))
        client.spin_for(1.5)
        pump.active.discard("/b")  # lost mid-episode
        s = wait_state(client, lambda s: s["state"] != "recording", timeout=15)
        assert s["state"] == "review" and s["last"]["stop_reason"] == "stream_lost", s
        assert "stream_lost" in s["message"] and "/b silent" in s["message"]
        ep = load_episode(bag)
        assert ep.stop_reason == "stream_lost" and ep.custom_data["episode.lost_streams"] == "/b"
        r = BagReader(bag)  # complete: metadata.yaml and the files agree, nothing to recover
        counts = {t: sum(1 for _ in r.messages(topics=[t])) for t in ("/a", "/b")}
        assert counts["/a"] >= 30 and counts["/b"] >= 30, counts
        assert {t: r.topics[t].count for t in counts} == counts
        assert not rec.output().count("recording /a"), "logged 'recording <topic>' while no episode was open"
    finally:
        pump.close()
        assert rec.stop() == 0, rec.output()


def test_discard_last_and_relabel_through_the_cli(tmp_path, client):
    from robot_capture.episodes import load_episode

    pump = StreamPump(["/a"])
    rec = recorder(tmp_path, ["/a"])
    try:
        wait_state(client, lambda s: s["ready"])
        r = _exe("episode", "start", "--task", "pour water", "--operator", "ana")
        assert r.returncode == 0, r.stderr
        bag = Path(r.stdout.strip())
        client.spin_for(0.8)
        r = _cli("episode", "success")
        assert r.returncode == 0 and r.stdout.splitlines()[0] == str(bag), r.stderr
        assert "success: true" in _cli("info", str(bag)).stdout
        r = _exe("episode", "relabel", "--success", "false", "--notes", "cup slipped", "--task", "pour tea")
        assert r.returncode == 0, r.stderr
        info = _cli("info", str(bag)).stdout
        assert "success: false" in info and "cup slipped" in info and "task: pour tea" in info, info
        ep_json = json.loads(_cli("info", "--json", str(bag)).stdout)["episode"]
        assert (ep_json["success"], ep_json["task"], ep_json["notes"]) == (False, "pour tea", "cup slipped")
        ep = load_episode(bag)  # what QA, export and batch read
        assert (ep.success, ep.task, ep.notes) == (False, "pour tea", "cup slipped")
        # QA reads the same labels: an unlabelled stop is flagged, a relabel clears it
        r = _cli("episode", "start", "--task", "wipe table")
        assert r.returncode == 0, r.stderr
        bag2 = Path(r.stdout.strip())
        client.spin_for(0.8)
        assert _cli("episode", "stop").returncode == 0

        def qa_reasons(b):
            r = _cli("qa", "--json", "--no-write", str(b))
            return " ".join(json.loads(r.stdout.splitlines()[0])["reasons"])

        assert "success" in qa_reasons(bag2)
        assert _cli("episode", "relabel", "--success", "true").returncode == 0
        assert "success" not in qa_reasons(bag2), qa_reasons(bag2)
        r = _cli("episode", "status")
        assert r.returncode == 0 and "REVIEW" in r.stdout and "kept 2" in r.stdout, r.stdout
        r = _cli("episode", "discard-last")
        assert r.returncode == 0, r.stderr
        moved = tmp_path / "out" / "discarded" / bag2.name
        assert moved.is_dir() and not bag2.exists() and load_episode(moved).success is True
        assert bag.is_dir()  # only the last one moved
        # bad input: a clear one-line error, exit 1, nothing changed
        r = _exe("episode", "relabel", "--success", "true")
        assert r.returncode == 1 and "no last episode" in r.stderr and "Traceback" not in r.stderr
        assert load_episode(moved).success is True
        r = _cli("episode", "discard-last")
        assert r.returncode == 1 and "no last episode" in r.stderr
        r = _cli("episode", "purge", "--output-dir", str(tmp_path / "out"))
        assert r.returncode == 0 and "would delete" in r.stdout and moved.is_dir()
        r = _cli("episode", "purge", "--output-dir", str(tmp_path / "out"), "--yes")
        assert r.returncode == 0 and not moved.exists()
    finally:
        pump.close()
        assert rec.stop() == 0, rec.output()


def test_second_recorder_refused(tmp_path, client):
    pump = StreamPump(["/a"])
    first = recorder(tmp_path, ["/a"])
    others = []
    try:
        wait_state(client, lambda s: s["ready"])
        same_dir = recorder(tmp_path, ["/a"], name="recorder_b")  # another name, same output folder
        others.append(same_dir)
        assert same_dir.proc.wait(60) != 0
        assert "another recorder" in same_dir.output() and "is writing to" in same_dir.output()
        (tmp_path / "other").mkdir()
        same_name = recorder(tmp_path / "other", ["/a"])  # same node name, other folder
        others.append(same_name)
        assert same_name.proc.wait(60) == 3, same_name.output()
        assert "another node named /recorder is live" in same_name.output()
        s = wait_state(client, lambda s: s["ready"] and not s["owner_problem"])
        bag = Path(client.command("start"))  # the first one still serves, alone
        client.spin_for(0.5)
        assert client.command("success").splitlines()[0] == str(bag)
        assert bag.parent == (tmp_path / "out").resolve() and s["node"] == "/recorder"
    finally:
        for o in others:
            o.close()
        pump.close()
        assert first.stop() == 0, first.output()


def test_joy_buttons_drive_an_episode(tmp_path, client):
    from robot_capture.episodes import load_episode

    pump = StreamPump(["/a"])
    rec = recorder(tmp_path, ["/a"])
    try:
        wait_state(client, lambda s: s["ready"])
        assert wait_until(lambda: pump.joy_pub.get_subscription_count() >= 1, 20)
        pump.joy([0, 0, 0, 0])  # baseline
        client.spin_for(0.3)
        pump.joy([1, 0, 0, 0])  # button 0: toggle -> start
        s = wait_state(client, lambda s: s["state"] == "recording", timeout=10)
        assert s["state"] == "recording", rec.output()
        pump.joy([0, 0, 0, 0])
        client.spin_for(0.8)
        pump.joy([0, 1, 0, 0])  # button 1: success
        s = wait_state(client, lambda s: s["state"] == "review", timeout=10)
        bag = Path(s["last"]["path"])
        assert load_episode(bag).success is True
        pump.joy([0, 0, 0, 0])
        pump.joy([1, 1])  # too few buttons for the map (needs 4): ignored, logged once
        client.spin_for(1.0)
        s = client.status()
        assert s["state"] == "review" and s["counters"]["kept"] == 1
        assert "has 2 buttons, the map needs 4" in rec.output()
        pump.joy([0, 0, 0, 0])
        client.spin_for(0.2)
        pump.joy([0, 0, 0, 1])  # button 3: discard_last
        s = wait_state(client, lambda s: s["counters"]["discarded"] == 1, timeout=10)
        assert (tmp_path / "out" / "discarded" / bag.name).is_dir()
        with pytest.raises(Exception, match="unknown command 'strat'.*did you mean 'start'"):
            client.command("strat")
    finally:
        pump.close()
        assert rec.stop() == 0, rec.output()


def test_station_namespace_separates_two_recorders(tmp_path, client):
    """Station a's recorder (/a/recorder) and a root /recorder are two owners, not duplicates;
    `episode --station a` drives only station a's."""
    from console_util import NodeProc

    pump = StreamPump(["/a"])
    root = recorder(tmp_path, ["/a"])
    (tmp_path / "sta").mkdir()
    station = NodeProc(tmp_path / "sta", extra_args=("-r", "__ns:=/a"), output_dir=str(tmp_path / "sta" / "out"),
                       topics=["/a"], expected_streams=["/a=20"], disk_min_free_mb=0.0, discovery_interval_s=0.3)
    try:
        wait_state(client, lambda s: s["ready"])
        deadline = time.monotonic() + 60  # station a's recorder sees /a on its own discovery
        while time.monotonic() < deadline:
            st = _cli("episode", "status", "--station", "a", "--json")
            if st.returncode == 0 and json.loads(st.stdout).get("ready"):
                break
            time.sleep(0.5)
        r = _cli("episode", "start", "--station", "a", "--task", "station a", "--timeout", "30")
        assert r.returncode == 0, (r.stderr, station.output())
        bag = Path(r.stdout.strip())
        assert bag.parent == (tmp_path / "sta" / "out").resolve()
        s = _cli("episode", "status", "--station", "a", "--json")
        assert json.loads(s.stdout)["node"] == "/a/recorder" and json.loads(s.stdout)["state"] == "recording"
        assert client.status()["state"] == "ready"  # the root station is untouched
        assert _cli("episode", "success", "--station", "a").returncode == 0
        assert root.alive() and station.alive()
    finally:
        pump.close()
        station.stop()
        assert root.stop() == 0, root.output()
