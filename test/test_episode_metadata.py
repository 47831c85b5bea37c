"""Episode metadata in the bag is exact: one `episode` record (first-found = last-found, with
the success label), splits by duration and size counted, and `ros_distro` the real one or ""."""
from __future__ import annotations

from mcap.reader import make_reader

from robot_capture.bag import BagReader, WriterOptions
from robot_capture.record.episode import EpisodeInfo
from robot_capture.record.recorder import Recorder

JS = "sensor_msgs/msg/JointState"
QOS = [{"reliability": "reliable", "durability": "volatile", "depth": 10}]


def _cdr(i):
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState

    return serialize_message(JointState(name=["j"], position=[0.1 * i]))


def _records(bag, name):
    out = []
    for f in BagReader(bag).files:
        with open(f, "rb") as h:
            out += [dict(r.metadata) for r in make_reader(h).iter_metadata() if r.name == name]
    return out


def _record(tmp_path, opts, n=30, step_ns=100_000_000, split_service=False):
    rec = Recorder(tmp_path / "out", writer_options=opts)
    rec.add_topic("/js", JS, QOS)
    path = rec.start_episode(EpisodeInfo(task="pick", operator="ana"))
    for i in range(n):
        rec.on_message("/js", JS, _cdr(i), 1_000_000_000 + i * step_ns)
        if split_service and i == n // 2:
            rec.split()
    rec.stop_episode(success=True)
    return path


def test_first_and_last_episode_record_agree(tmp_path):
    bag = _record(tmp_path, WriterOptions(), split_service=True)
    eps = _records(bag, "episode")
    assert len(eps) == 1 and eps[0]["success"] == "true" and eps[0]["task"] == "pick"
    starts = _records(bag, "episode_start")  # the start labels, in every file (a crash keeps them)
    assert len(starts) == 2 and all(s["task"] == "pick" and "success" not in s for s in starts)
    assert eps[0]["splits"] == "1"


def test_duration_splits_are_counted(tmp_path):
    bag = _record(tmp_path, WriterOptions(max_bag_duration_s=1.0))  # 30 messages over 2.9 s
    r = BagReader(bag)
    assert len(r.files) >= 3
    assert r.metadata_records()["episode"]["splits"] == str(len(r.files) - 1)
    assert r.metadata.custom_data["episode.splits"] == str(len(r.files) - 1)


def test_size_splits_are_counted(tmp_path):
    bag = _record(tmp_path, WriterOptions(max_bag_size=4096, chunk_size=1024), n=200)
    r = BagReader(bag)
    assert len(r.files) >= 2
    assert r.metadata_records()["episode"]["splits"] == str(len(r.files) - 1)


def test_ros_distro_is_the_real_one_or_empty(tmp_path, monkeypatch):
    monkeypatch.delenv("ROS_DISTRO", raising=False)
    bag = _record(tmp_path / "a", WriterOptions())
    assert BagReader(bag).metadata.ros_distro == ""
    assert _records(bag, "rosbag2")[-1]["ROS_DISTRO"] == ""
    monkeypatch.setenv("ROS_DISTRO", "jazzy")
    bag = _record(tmp_path / "b", WriterOptions())
    assert BagReader(bag).metadata.ros_distro == "jazzy"


def test_recover_does_not_invent_a_distro(tmp_path, monkeypatch):
    from robot_capture.bag.recover import recover

    monkeypatch.delenv("ROS_DISTRO", raising=False)
    bag = _record(tmp_path, WriterOptions())
    (bag / "metadata.yaml").unlink()
    recover(bag)
    assert BagReader(bag).metadata.ros_distro == ""
