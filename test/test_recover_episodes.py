"""`robot-capture recover` on crashed episodes: the recovered episode says so (`recovered`,
stop reason `crash`, labels from the start record), a folder of bags is recovered in one call
with a percentage progress bar, and a live bag is named as live, not as one to recover."""
from __future__ import annotations

import shutil

import pytest
import yaml

from robot_capture.bag import BagReader, WriterOptions
from robot_capture.bag.errors import IncompleteBagFileError
from robot_capture.bag.lock import LOCK_NAME
from robot_capture.cli import main
from robot_capture.record.episode import EpisodeInfo
from robot_capture.record.recorder import Recorder

JS = "sensor_msgs/msg/JointState"


def _cdr(i):
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState

    return serialize_message(JointState(name=["j"], position=[0.1 * i]))


def _crashed(out, task, n=50):
    """A copy of a live episode taken mid-recording (what a SIGKILL leaves): no footer, no stop."""
    rec = Recorder(out / "live", writer_options=WriterOptions(flush_interval_s=0.05, chunk_size=512,
                                                             background_flush=False, async_io=False))
    rec.add_topic("/js", JS, [])
    path = rec.start_episode(EpisodeInfo(task=task, operator="ana"))
    for i in range(n):
        rec.on_message("/js", JS, _cdr(i), 1_000_000_000 + i * 10_000_000)
    dst = out / "crashed" / path.name
    shutil.copytree(path, dst, ignore=shutil.ignore_patterns(LOCK_NAME, "metadata.yaml"))
    return rec, dst


def _custom(bag):
    return yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["custom_data"]


def test_recovered_episode_is_marked_with_stop_reason_and_labels(tmp_path, capsys):
    rec, bag = _crashed(tmp_path, "pour water")
    try:
        with pytest.raises(IncompleteBagFileError):
            BagReader(bag)
        assert main(["recover", str(bag), "-q"]) == 0
        c = _custom(bag)
        assert c["episode.recovered"] == "true" and c["episode.stop_reason"] == "crash"
        assert c["episode.task"] == "pour water" and c["episode.operator"] == "ana"
        assert BagReader(bag).topics["/js"].count > 0
    finally:
        rec.close()


def test_a_cleanly_stopped_bag_is_not_marked(tmp_path):
    rec = Recorder(tmp_path / "out")
    rec.add_topic("/js", JS, [])
    path = rec.start_episode(EpisodeInfo(task="t"))
    rec.on_message("/js", JS, _cdr(0), 1_000_000_000)
    rec.stop_episode(success=True)
    assert main(["recover", str(path), "-q"]) == 0
    c = _custom(path)
    assert "episode.recovered" not in c and c["episode.stop_reason"] == "stopped"


def test_a_folder_of_bags_in_one_call_with_a_percentage(tmp_path, capsys):
    recs = []
    try:
        for task in ("a", "b"):
            rec, _bag = _crashed(tmp_path / task, task)
            recs.append(rec)
        folder = tmp_path
        capsys.readouterr()
        assert main(["recover", str(folder / "a" / "crashed"), str(folder / "b" / "crashed")]) == 0
        io = capsys.readouterr()
        assert "%" in io.err and "2 of 2 bags" in io.err, io.err
        assert io.out.count("recovered bag") == 2
        for task in ("a", "b"):
            (bag,) = list((folder / task / "crashed").iterdir())
            assert _custom(bag)["episode.recovered"] == "true"
        assert main(["recover", str(tmp_path / "nothing_here")]) == 2
    finally:
        for r in recs:
            r.close()


def test_a_live_bag_is_called_live_not_one_to_recover(tmp_path):
    rec = Recorder(tmp_path / "out")
    rec.add_topic("/js", JS, [])
    path = rec.start_episode(EpisodeInfo(task="t"))
    rec.on_message("/js", JS, _cdr(0), 1_000_000_000)
    try:
        with pytest.raises(IncompleteBagFileError) as exc:
            BagReader(path)
        assert "being recorded" in str(exc.value) and "recover" not in str(exc.value)
    finally:
        rec.close()
