"""Re-retarget a recorded bag's human topics onto another robot into a new bag."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from robot_capture.retarget.bvh import load_bvh  # noqa: E402
from robot_capture.retarget.offline import exo_replay_messages, retarget_clip  # noqa: E402

T0 = 1_700_000_000  # s, epoch of the fake recording
N = 150


def _js(names, pos, stamp_ns, frame=""):
    from sensor_msgs.msg import JointState

    m = JointState()
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    m.header.frame_id = frame
    m.name = list(names)
    m.position = [float(x) for x in pos]
    return m


@pytest.fixture(scope="module")
def recorded_bag(tmp_path_factory, data_dir):
    """A bag as the recorder writes it from a live session: exo input, a G1 command, robot state."""
    from rclpy.serialization import serialize_message

    from robot_capture.bag.writer import BagWriter

    clip = load_bvh(data_dir / "motion" / "cmu_02_05_punch_strike.bvh")
    names, readings = exo_replay_messages(clip)
    path = tmp_path_factory.mktemp("bags") / "episode_g1"
    w = BagWriter(path, custom_data={"task": "punch", "episode.task": "punch", "episode.operator": "ana",
                                     "episode.success": "true", "episode.robot": "g1"})
    w.add_metadata("episode", {"task": "punch", "operator": "ana", "success": "true", "robot": "g1"})
    w.add_topic("/exo/joint_states", "sensor_msgs/msg/JointState")
    w.add_topic("/retarget/joint_command", "sensor_msgs/msg/JointState")
    w.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    w.add_topic("/camera/head/camera_info", "sensor_msgs/msg/JointState")  # a camera showing the G1 (type irrelevant)
    for i in range(N):
        ns = T0 * 1_000_000_000 + int(round(i * clip.frame_time * 1e9))
        w.write("/exo/joint_states", serialize_message(_js(names, readings[i], ns)), ns)
        w.write("/retarget/joint_command", serialize_message(_js(["left_elbow_joint"], [0.1], ns)), ns + 1000)
        w.write("/joint_states", serialize_message(_js(["left_elbow_joint"], [0.1], ns, "pelvis")), ns + 2000)
        w.write("/camera/head/camera_info", serialize_message(_js([], [], ns)), ns + 3000)
    w.close()
    return path, clip


def test_bag_onto_another_robot(recorded_bag, tmp_path):
    from robot_capture.bag.reader import BagReader
    from robot_capture.offline.bag_retarget import retarget_bag

    src, clip = recorded_bag
    out = tmp_path / "episode_kuavo"
    rep = retarget_bag(src, out, robot="kuavo")
    assert rep["source"] == "exo" and rep["inputs"] == N and rep["held"] == 0
    r = BagReader(out)
    topics = r.topics
    assert topics["/exo/joint_states"].count == N  # the human input, copied
    # no topic of the source robot: its state and the camera that showed it are gone
    assert set(topics) == {"/exo/joint_states", "/retarget/joint_command", "/retarget/targets"}, sorted(topics)
    assert sorted(rep["dropped"]) == ["/camera/head/camera_info", "/joint_states", "/retarget/joint_command"]
    assert topics["/retarget/joint_command"].count == N  # replaced, not appended
    assert topics["/retarget/targets"].count == N
    cmds = [m for m in r.messages(topics=["/retarget/joint_command"], decode=True)]
    assert list(cmds[0].message.name)[0].startswith("zarm_")  # Kuavo joints now
    q = np.array([m.message.position for m in cmds])
    ref = retarget_clip(clip, "kuavo", source="exo")  # same pipeline, same stamps up to the epoch offset
    np.testing.assert_allclose(q, ref.q[:N], atol=1e-5)
    # the command carries the stamp of the input it came from
    ins = [m for m in r.messages(topics=["/exo/joint_states"], decode=True)]
    assert [(c.message.header.stamp.sec, c.message.header.stamp.nanosec) for c in cmds] == \
           [(i.message.header.stamp.sec, i.message.header.stamp.nanosec) for i in ins]
    cd = r.metadata.custom_data
    assert cd["retarget.robot"] == "kuavo" and cd["task"] == "punch"
    # episode labels kept, robot now the new one, the source robot recorded
    assert cd["episode.operator"] == "ana" and cd["episode.success"] == "true" and cd["episode.robot"] == "kuavo"
    assert cd["retarget.source_robot"] == "g1" and rep["source_robot"] == "g1"
    assert r.metadata_records()["episode"]["robot"] == "kuavo"
    from robot_capture.episodes import load_episode

    ep = load_episode(out)
    assert ep.operator == "ana" and ep.success is True and ep.robot == "kuavo"
    assert "retarget_mapping.yaml" in r.attachments()
    targets = next(iter(r.messages(topics=["/retarget/targets"], decode=True))).message
    assert len(targets.poses) == 5 and targets.header.frame_id == "base_link"


def test_bag_cli_and_errors(recorded_bag, tmp_path, capsys):
    from robot_capture.cli import main

    src, _ = recorded_bag
    out = tmp_path / "episode_h1"
    assert main(["retarget", str(src), "--robot", "h1", "--out", str(out), "--quiet"]) == 0
    assert "150 exo inputs -> 150 commands for h1" in capsys.readouterr().out
    assert main(["retarget", str(src), "--robot", "h1", "--out", str(out), "--quiet"]) == 2  # exists
    assert "exists" in capsys.readouterr().err
    assert main(["retarget", str(src), "--robot", "h1", "--bag-source", "vr", "--out",
                 str(tmp_path / "x"), "--quiet"]) == 2
    assert "/vr/head" in capsys.readouterr().err


def test_vr_bag_onto_g1(tmp_path, data_dir):
    from geometry_msgs.msg import PoseStamped
    from rclpy.serialization import serialize_message
    from scipy.spatial.transform import Rotation

    from robot_capture.bag.reader import BagReader
    from robot_capture.bag.writer import BagWriter
    from robot_capture.offline.bag_retarget import retarget_bag
    from robot_capture.retarget.offline import vr_replay_messages

    clip = load_bvh(data_dir / "motion" / "cmu_06_02_basketball_forward_dribble.bvh")
    msgs = vr_replay_messages(clip)
    src = tmp_path / "vr_episode"
    w = BagWriter(src)
    names = {"head": "/vr/head", "left_wrist": "/vr/left_wrist", "right_wrist": "/vr/right_wrist"}
    for t in names.values():
        w.add_topic(t, "geometry_msgs/msg/PoseStamped")
    n = 100
    for i in range(n):
        ns = T0 * 1_000_000_000 + int(round(i * clip.frame_time * 1e9))
        for k, topic in names.items():
            T = msgs[k][i]
            m = PoseStamped()
            m.header.stamp.sec, m.header.stamp.nanosec = divmod(ns, 1_000_000_000)
            m.header.frame_id = "vr_world"
            m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in T[:3, 3])
            q = Rotation.from_matrix(T[:3, :3]).as_quat()
            m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w = (float(v) for v in q)
            w.write(topic, serialize_message(m), ns + 10)
    w.close()
    rep = retarget_bag(src, tmp_path / "vr_g1", robot="g1")
    assert rep["source"] == "vr" and rep["inputs"] == n
    q = np.array([m.message.position for m in BagReader(tmp_path / "vr_g1").messages(
        topics=["/retarget/joint_command"], decode=True)])
    ref = retarget_clip(clip, "g1", source="vr")
    np.testing.assert_allclose(q, ref.q[:n], atol=1e-5)
