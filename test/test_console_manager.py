"""Episode manager, stream tracker, key/Joy maps without DDS (a real Recorder core, a fake clock)."""
from __future__ import annotations

import pytest

from robot_capture.bag import BagReader
from robot_capture.console.commands import (CommandError, JoyMap, JoyMapper, KeyMap, check_command, load_joy_map,
                                            load_key_map)
from robot_capture.console.manager import EpisodeManager, ManagerConfig, next_task
from robot_capture.console.owner import OutputBusyError, OutputLock, duplicates
from robot_capture.console.streams import StreamTracker
from robot_capture.config_schema import ConfigError, validate
from robot_capture.episodes import load_episode
from robot_capture.record.episode import EpisodeInfo
from robot_capture.record.recorder import Recorder

JS = "sensor_msgs/msg/JointState"
S = 1_000_000_000


class Clock:
    def __init__(self):
        self.t = 1_800_000_000 * S

    def __call__(self):
        return self.t


def _feed(rec, clock, topic, rate_hz, seconds):
    """Messages on ``topic`` at ``rate_hz`` for ``seconds``, ticking the clock."""
    n = int(rate_hz * seconds)
    for _ in range(n):
        clock.t += int(S / rate_hz)
        rec.on_message(topic, JS, b"\x00\x01\x00\x00" + b"x" * 8, clock.t)


@pytest.fixture
def setup(tmp_path):
    clock = Clock()
    rec = Recorder(tmp_path / "out", disk_min_free_bytes=0)
    rec.add_topic("/a", JS)
    rec.add_topic("/b", JS)
    m = EpisodeManager(rec, {"/a": 100.0, "/b": 50.0, "/diag": None}, ManagerConfig(optional=("/diag",)),
                       robot="g1", clock=clock)
    return rec, m, clock


def _flow(rec, m, clock, seconds=2.5, b=True):
    for _ in range(int(seconds * 4)):
        _feed(rec, clock, "/a", 100.0, 0.25)
        if b:
            for _ in range(12):
                rec.on_message("/b", JS, b"\x00\x01\x00\x00", clock.t)
        m.tick()


def test_refuse_start_names_the_stream_then_ready(setup):
    rec, m, clock = setup
    _flow(rec, m, clock, b=False)
    assert m.state == "idle" and not m.ready
    with pytest.raises(CommandError) as e:
        m.run("start", info=EpisodeInfo(task="t"))
    assert "/b silent for" in str(e.value) and "/a" not in str(e.value).split("(")[0]
    assert rec.episode is None and not any((rec.output_dir).iterdir())  # changed nothing
    _flow(rec, m, clock)
    assert m.state == "ready" and m.status()["tally"] == "green"


def test_slow_stream_refused(setup):
    rec, m, clock = setup
    for _ in range(12):  # /b at 8 Hz instead of 50
        _feed(rec, clock, "/a", 100.0, 0.25)
        rec.on_message("/b", JS, b"\x00\x01\x00\x00", clock.t)
        rec.on_message("/b", JS, b"\x00\x01\x00\x00", clock.t)
        m.tick()
    with pytest.raises(CommandError, match=r"/b at \d+\.\d Hz, expected 50\.0 Hz"):
        m.start(EpisodeInfo(task="t"))


def test_force_flags_and_robot_recorded(setup):
    rec, m, clock = setup
    _flow(rec, m, clock, b=False)
    path = m.run("start_forced", info=EpisodeInfo(task="forced one", operator="op"))
    _feed(rec, clock, "/a", 100.0, 0.5)
    m.tick()
    assert m.state == "recording" and m.status()["tally"] == "red"
    assert m.run("success").splitlines()[0] == path
    ep = load_episode(path)
    assert ep.flags == ("forced",) and ep.robot == "g1" and ep.success is True
    assert "/b silent" in ep.custom_data["episode.not_ready"]
    assert m.counters()["forced"] == 1


def test_auto_stop_on_lost_stream_keeps_the_bag(setup):
    rec, m, clock = setup
    _flow(rec, m, clock)
    path = m.start(EpisodeInfo(task="t"))
    _flow(rec, m, clock, seconds=1.0)
    for _ in range(12):  # /b stops; /a keeps flowing
        _feed(rec, clock, "/a", 100.0, 0.25)
        reply = m.tick()
        if reply:
            break
    assert reply and "stream_lost" in reply and "/b silent" in reply
    assert m.state == "review"
    ep = load_episode(path)
    assert ep.stop_reason == "stream_lost" and ep.custom_data["episode.lost_streams"] == "/b"
    assert BagReader(path).topics["/a"].count > 100


def test_review_relabel_discard_last_and_counters(setup):
    rec, m, clock = setup
    _flow(rec, m, clock)
    p1 = m.start(EpisodeInfo(task="one"))
    _flow(rec, m, clock, 0.5)
    m.run("toggle")  # stop unlabelled
    assert m.state == "review"
    assert m.run("success") == p1  # no episode open: relabels the last one
    assert load_episode(p1).success is True
    m.run("relabel", task="renamed", notes="good take", success="false")
    ep = load_episode(p1)
    assert (ep.task, ep.notes, ep.success) == ("renamed", "good take", False)
    p2 = m.start(EpisodeInfo(task="two"))
    with pytest.raises(CommandError, match="recording"):
        m.discard_last()
    m.run("failure")
    moved = m.run("discard_last")
    assert (rec.output_dir / "discarded" / p2.split("/")[-1]).is_dir() and moved.endswith(p2.split("/")[-1])
    with pytest.raises(CommandError, match="no last episode"):
        m.run("discard_last")
    with pytest.raises(CommandError, match="no last episode"):
        m.run("relabel", success="true")
    c = m.counters()
    assert (c["kept"], c["discarded"], c["failure"], c["success"]) == (1, 1, 1, 0)
    p3 = m.start(EpisodeInfo(task="three"))
    m.run("discard")
    assert not (rec.output_dir / p3.split("/")[-1]).exists()
    assert load_episode(rec.output_dir / "discarded" / p3.split("/")[-1]).stop_reason == "discarded"
    assert m.counters()["discarded"] == 2


def test_bad_commands_change_nothing(setup):
    rec, m, clock = setup
    with pytest.raises(CommandError, match="unknown command 'strat'.*did you mean 'start'"):
        m.run("strat")
    for cmd in ("stop", "success", "discard", "discard_last", "relabel"):
        with pytest.raises(CommandError):
            m.run(cmd, success="true")
    with pytest.raises(CommandError, match="no task list"):
        next_task([], "x")
    assert next_task(["a", "b"], "b") == "a" and next_task(["a", "b"], "zzz") == "a"
    _flow(rec, m, clock)
    p = m.start(EpisodeInfo(task="t"))
    m.stop(True)
    with pytest.raises(CommandError, match="success label"):
        m.relabel(success="maybe")
    assert load_episode(p).success is True
    assert check_command("discard-last") == "discard_last"
    owner = m.status()
    assert owner["counters"]["kept"] == 1 and owner["last"]["name"] in p
    m.owner_problem = "another node named /recorder is live"
    with pytest.raises(CommandError, match="another node"):
        m.start(EpisodeInfo(), force=True)


def test_tracker_thresholds():
    t = StreamTracker({"/fast": 500.0, "/slow": 1.0, "/ev": None}, now_ns=0)
    c = {"/fast": (10, int(0.5 * S)), "/slow": (1, int(0.5 * S)), "/ev": (1, int(0.5 * S))}
    st = t.update(c, int(1.0 * S))
    assert all(s.status == "ok" for s in st.values())
    st = t.update(c, int(1.75 * S))  # /fast over 1 s old: seen once, not yet silent
    assert st["/fast"].status == "ok"
    st = t.update(c, int(2.0 * S))  # confirmed by a second sample
    assert st["/fast"].status == "silent" and st["/slow"].status == "ok" and st["/ev"].status == "ok"
    assert st["/fast"].reason() == "/fast silent for 1.5 s"
    c["/fast"] = (11, int(2.0 * S))
    assert t.update(c, int(2.1 * S))["/fast"].status == "ok"  # recovers at once
    st = t.update({}, int(6 * S))
    assert st["/slow"].status == "never" and "nothing received" in st["/slow"].reason()


def test_tracker_ignores_a_stall_of_its_own_process():
    t = StreamTracker({"/a": 100.0}, now_ns=0)
    t.update({"/a": (100, int(1.0 * S))}, int(1.0 * S))
    # the process was not scheduled for 1.5 s: messages wait in DDS, the sample looks silent twice
    st = t.update({"/a": (100, int(1.0 * S))}, int(2.5 * S))
    assert t.stalled and st["/a"].status == "ok"
    st = t.update({"/a": (250, int(2.55 * S))}, int(2.6 * S))  # the queue drained
    assert not t.stalled and st["/a"].status == "ok"


def test_key_and_joy_maps(tmp_path):
    km = load_key_map()
    assert km.action(" ") == "toggle" and km.action("u") == "discard_last" and km.action("q") == "quit"
    jm = load_joy_map()
    assert jm.topic == "/vr/buttons" and jm.buttons[0] == "toggle"
    bad = tmp_path / "keys.yaml"
    bad.write_text("keys:\n  s: sucess\n")
    with pytest.raises(ConfigError, match="keys.s"):
        load_key_map(bad)
    bad.write_text("key: {}\n")
    with pytest.raises(ConfigError, match="did you mean 'keys'"):
        load_key_map(bad)
    with pytest.raises(ConfigError, match="spacebar"):
        validate(KeyMap, {"keys": {"spacebar": "toggle"}}, "k.yaml")
    mapper = JoyMapper(JoyMap(buttons={0: "toggle", 3: "discard_last"}))
    assert mapper.on_buttons([1, 0, 0, 0]) == []  # baseline: held at start-up fires nothing
    assert mapper.on_buttons([0, 0, 0, 0]) == []
    assert mapper.on_buttons([1, 0, 0, 1]) == ["toggle", "discard_last"]
    assert mapper.on_buttons([1, 0, 0, 1]) == []  # held: no repeat
    assert mapper.on_buttons([0, 1]) == [] and "has 2 buttons, the map needs 4" in mapper.problem
    assert mapper.on_buttons([0, 0, 0, 0]) == [] and mapper.on_buttons([0, 0, 0, 1]) == ["discard_last"]


def test_output_lock_and_duplicates(tmp_path):
    lock = OutputLock(tmp_path, owner="/recorder")
    with pytest.raises(OutputBusyError, match=r"another recorder \(pid \d+ /recorder\) is writing"):
        OutputLock(tmp_path, owner="/other")
    lock.release()
    OutputLock(tmp_path).release()
    graph = [("recorder", "/"), ("recorder", "/"), ("recorder", "/a"), ("retarget", "/")]
    assert duplicates(graph, "recorder", "/") == 1 and duplicates(graph, "recorder", "/a") == 0


def test_tracker_bad_to_other_bad_is_immediate():
    t = StreamTracker({"/a": 100.0}, rate_window_s=1.0, now_ns=0)
    t.update({"/a": (10, int(0.1 * S))}, int(1.5 * S))
    assert t.update({"/a": (10, int(0.1 * S))}, int(1.75 * S))["/a"].status == "silent"
    # messages again, but far too few: slow at once (never "silent for 0.1 s")
    st = t.update({"/a": (12, int(1.9 * S))}, int(2.0 * S))["/a"]
    assert st.status in ("ok", "slow") and "silent" not in st.reason()
