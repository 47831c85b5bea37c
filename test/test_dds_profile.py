"""The shipped Fast DDS profile (config/fastdds.xml, every floor process's default) interoperates
with participants on Fast DDS's defaults (the robot's own driver, a shell's `ros2 topic echo`),
both ways, with raw 640x480 camera frames. Loss figures under load: benchmarks/recorder_throughput.py."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robot_capture.floor import graph

PEER = Path(__file__).with_name("_dds_peer.py")
N = 20


def _env(profile: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in graph.DDS_ENV_VARS}
    if profile:
        env.update(graph.dds_environment(""))
    return env


@pytest.mark.ros
@pytest.mark.timeout(200)
@pytest.mark.parametrize("pub_profile,sub_profile", [(False, True), (True, False), (True, True)],
                         ids=["default-pub_to_profile-sub", "profile-pub_to_default-sub", "profile_both"])
def test_raw_frames_flow_between_profile_and_default_participants(pub_profile, sub_profile):
    sub = subprocess.Popen([sys.executable, str(PEER), "sub", str(N)], env=_env(sub_profile),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert sub.stdout.readline().strip() == "READY"
        pub = subprocess.run([sys.executable, str(PEER), "pub", str(N)], env=_env(pub_profile),
                             capture_output=True, text=True, timeout=150)
        out, _ = sub.communicate(timeout=100)
    finally:
        if sub.poll() is None:
            sub.kill()
    assert f"SUB {N}" in out, (out, pub.stdout, pub.stderr)
    assert f"PUB {N} acked=True" in pub.stdout, (pub.stdout, pub.stderr)
    assert "Error" not in pub.stderr and "XMLPARSER" not in pub.stderr, pub.stderr  # the profile parses


def test_record_and_play_get_the_shipped_profile_unless_the_user_chose(monkeypatch, tmp_path):
    """`record` and `play` run their node in-process: they set the shipped profile before
    rclpy.init, as the floor does for its processes; a FASTDDS_*/FASTRTPS_* choice already in
    the environment is left alone; a bad --dds is a one-line error (exit 2)."""
    import robot_capture.cli as cli
    from robot_capture.nodes import player_node, recorder_node

    saved = dict(os.environ)  # the verbs write os.environ itself: restore all of it, whatever they set
    try:
        _record_and_play_env(monkeypatch, tmp_path, cli, player_node, recorder_node)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _record_and_play_env(monkeypatch, tmp_path, cli, player_node, recorder_node):
    seen = {}
    monkeypatch.setattr(recorder_node, "run", lambda *a, **k: seen.update(rec=dict(os.environ)) or 0)
    monkeypatch.setattr(player_node, "run", lambda *a, **k: seen.update(play=dict(os.environ)) or 0)
    for v in graph.DDS_USER_VARIABLES:
        os.environ.pop(v, None)
    profile = str(graph.dds_profile_path())
    assert cli.main(["record", "-a", "-o", str(tmp_path)]) == 0
    assert any(seen["rec"].get(v) == profile for v in graph.profiles_file_variables()), seen["rec"]
    for v in graph.DDS_USER_VARIABLES:
        os.environ.pop(v, None)
    from robot_capture.bag.writer import BagWriter, WriterOptions

    bag = tmp_path / "bag"  # play refuses anything but a whole bag before its node starts
    w = BagWriter(bag, WriterOptions(background_flush=False))
    w.add_topic("/x", "std_msgs/msg/String")
    w.write("/x", b"\x00\x01\x00\x00\x02\x00\x00\x00x\x00", 1)
    w.close()
    assert cli.main(["play", str(bag), "--dds", "LARGE_DATA"]) == 0
    assert seen["play"].get("FASTDDS_BUILTIN_TRANSPORTS") == "LARGE_DATA"
    assert not any(seen["play"].get(v) for v in graph.profiles_file_variables())
    # the user's own choice wins
    os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"
    for v in graph.profiles_file_variables():
        os.environ.pop(v, None)
    assert cli.main(["record", "-a", "-o", str(tmp_path)]) == 0
    assert seen["rec"]["FASTDDS_BUILTIN_TRANSPORTS"] == "UDPv4"
    assert not any(seen["rec"].get(v) for v in graph.profiles_file_variables())


def test_bad_dds_choice_is_one_line(capsys, tmp_path):
    import robot_capture.cli as cli

    saved = dict(os.environ)
    try:
        assert cli.main(["record", "-a", "-o", str(tmp_path), "--dds", "carrier_pigeon"]) == 2
    finally:
        os.environ.clear()
        os.environ.update(saved)
    out = capsys.readouterr()
    text = (out.out + out.err).strip()
    assert text.startswith("error: --dds:") and "carrier_pigeon" in text and "\n" not in text, text


def test_the_verbs_leave_this_process_environment_as_it_was(tmp_path):
    """Regression: the record/play test once leaked FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA into
    the test worker, so every node a later test started could not talk to the worker."""
    assert os.environ.get("FASTDDS_BUILTIN_TRANSPORTS") != "LARGE_DATA"
    assert os.environ.get("FASTDDS_BUILTIN_TRANSPORTS") != "UDPv4"
