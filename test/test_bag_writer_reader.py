"""BagWriter -> files on disk -> BagReader, mcap, mcap_ros2, rclpy and rosbags agree."""
from __future__ import annotations

import time

import pytest
import yaml
from mcap.reader import make_reader

from bag_msgs import g1_joint_names, image, joint_state, pose, ser
from robot_capture.bag import BagReader, BagWriter, WriterOptions
from robot_capture.bag.errors import BagClosedError, NotABagError
from robot_capture.bag.metadata import parse_metadata, read_metadata
from robot_capture.bag.msgdefs import definition_for, type_hash_for
from robot_capture.bag.qos import load_qos_list, qos_profile

T0 = 1_763_700_000_000_000_000
JS, IMG, POSE = "sensor_msgs/msg/JointState", "sensor_msgs/msg/Image", "geometry_msgs/msg/PoseStamped"


def _record(bag_dir, data_dir, opts=None, n_js=300, n_img=6, n_pose=50, custom=None):
    """Write a mixed bag; return the list of (topic, bytes, log_ns, pub_ns) written, in write order."""
    names = g1_joint_names(data_dir)
    written = []
    w = BagWriter(bag_dir, opts or WriterOptions(background_flush=False), custom_data=custom or {"task": "pick"})
    w.add_topic("/joint_states", JS, [qos_profile()])
    w.add_topic("/camera/head/image_raw", IMG, [qos_profile(reliability="best_effort")])
    w.add_topic("/vr/head", POSE)
    events = [(T0 + i * 1_000_000, "/joint_states", i) for i in range(n_js)]
    events += [(T0 + i * 33_333_333 + 17, "/camera/head/image_raw", i) for i in range(n_img)]
    events += [(T0 + i * 11_111_111 + 3, "/vr/head", i) for i in range(n_pose)]
    events.sort()
    w.add_metadata("episode", {"task": "pick", "operator": "op1", "success": "true"})
    w.attach("g1.urdf", (data_dir / "robots" / "unitree_g1" / "g1_29dof_rev_1_0.urdf").read_bytes())
    for t, topic, i in events:
        msg = {"/joint_states": lambda: joint_state(names, i, t - 500, effort=(i % 2 == 0)),
               "/camera/head/image_raw": lambda: image(i, t - 900),
               "/vr/head": lambda: pose(i, t - 100)}[topic]()
        data = ser(msg)
        pub = t - 500 if topic == "/joint_states" else None
        w.write(topic, data, t, pub)
        written.append((topic, data, t, t if pub is None else pub))
    meta = w.close()
    return written, meta


@pytest.fixture(scope="module")
def mixed_bag(tmp_path_factory, data_dir):
    d = tmp_path_factory.mktemp("bags") / "mixed"
    written, meta = _record(d, data_dir)
    return d, written, meta


def test_round_trip_equal_bytes_and_times(mixed_bag):
    d, written, _ = mixed_bag
    r = BagReader(d)
    got = [(m.topic, m.data, m.log_time_ns, m.publish_time_ns) for m in r.messages()]
    assert len(got) == len(written)
    assert got == sorted(written, key=lambda x: x[2])
    assert [m.type for m in r.messages(topics=["/vr/head"])] == [POSE] * 50


def test_decoding_mcap_ros2_and_rclpy_equal(mixed_bag, data_dir):
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import JointState

    d, written, _ = mixed_bag
    names = g1_joint_names(data_dir)
    js = [m for m in BagReader(d).messages(topics=["/joint_states"], decode=True)]
    assert len(js) == 300
    for i, m in enumerate(js):
        ref = joint_state(names, i, m.log_time_ns - 500, effort=(i % 2 == 0))
        assert list(m.message.name) == ref.name
        assert list(m.message.position) == list(ref.position)
        assert list(m.message.effort) == list(ref.effort)
        assert (m.message.header.stamp.sec, m.message.header.stamp.nanosec) == (ref.header.stamp.sec,
                                                                                ref.header.stamp.nanosec)
        assert deserialize_message(m.data, JointState) == ref
    img = next(BagReader(d).messages(topics=["/camera/head/image_raw"], decode=True)).message
    assert (img.width, img.height, img.encoding) == (640, 480, "rgb8")
    assert bytes(img.data) == bytes(image(0, 0).data)


def test_rosbags_reader_lists_same_topics_types_counts(mixed_bag):
    from rosbags.rosbag2 import Reader

    d, written, meta = mixed_bag
    with Reader(d) as r:
        assert r.message_count == len(written)
        conns = {c.topic: (c.msgtype, c.msgcount) for c in r.connections}
        assert conns == {"/joint_states": (JS, 300), "/camera/head/image_raw": (IMG, 6), "/vr/head": (POSE, 50)}
        n = sum(1 for _ in r.messages())
        assert n == len(written)


def test_mcap_records_are_ros2_profile(mixed_bag):
    d, _, meta = mixed_bag
    with open(d / "mixed_0.mcap", "rb") as f:
        r = make_reader(f)
        assert r.get_header().profile == "ros2"
        s = r.get_summary()
        schemas = {sc.name: sc for sc in s.schemas.values()}
        assert set(schemas) == {JS, IMG, POSE}
        for name, sc in schemas.items():
            assert sc.encoding == "ros2msg" and sc.data.decode() == definition_for(name).text
        for ch in s.channels.values():
            assert ch.message_encoding == "cdr"
            assert ch.metadata["topic_type_hash"] == type_hash_for(s.schemas[ch.schema_id].name)
            assert isinstance(load_qos_list(ch.metadata["offered_qos_profiles"]), list)
        cam = next(c for c in s.channels.values() if c.topic == "/camera/head/image_raw")
        assert load_qos_list(cam.metadata["offered_qos_profiles"])[0]["reliability"] == "best_effort"
        recs = {m.name: m.metadata for m in r.iter_metadata()}
        assert recs["episode"]["operator"] == "op1"
        assert recs["rosbag2"]["ROS_DISTRO"] == meta.ros_distro
        inner = parse_metadata(yaml.safe_load(recs["rosbag2"]["serialized_metadata"]))
        assert inner.message_count == meta.message_count and inner.version == 9
        assert [a.name for a in r.iter_attachments()] == ["g1.urdf"]


def test_metadata_yaml_matches_contents(mixed_bag):
    d, written, meta = mixed_bag
    m = read_metadata(d)
    assert m == meta
    assert m.message_count == len(written)
    assert {t.name: t.message_count for t in m.topics} == {"/joint_states": 300, "/camera/head/image_raw": 6,
                                                          "/vr/head": 50}
    assert m.starting_time_ns == min(x[2] for x in written)
    assert m.end_time_ns == max(x[2] for x in written)
    assert m.custom_data == {"task": "pick"}
    assert m.relative_file_paths == ["mixed_0.mcap"] and m.files[0].message_count == len(written)


def test_time_range_filter_inclusive(mixed_bag):
    d, written, _ = mixed_bag
    lo, hi = T0 + 100_000_000, T0 + 200_000_000
    got = [m.log_time_ns for m in BagReader(d).messages(start_ns=lo, end_ns=hi)]
    want = sorted(x[2] for x in written if lo <= x[2] <= hi)
    assert got == want and lo in got and hi in got


@pytest.mark.parametrize("compression,level", [("none", None), ("lz4", None), ("lz4", 9), ("zstd", None), ("zstd", 1),
                                               ("zstd", 19)])
def test_compression_variants(tmp_path, data_dir, compression, level):
    opts = WriterOptions(compression=compression, compression_level=level, chunk_size=256 * 1024,
                         background_flush=False)
    written, _ = _record(tmp_path / "b", data_dir, opts, n_js=200, n_img=3, n_pose=10)
    r = BagReader(tmp_path / "b")
    assert r.chunk_compression == {compression}
    assert [(m.topic, m.data) for m in r.messages()] == [(t, b) for t, b, *_ in sorted(written, key=lambda x: x[2])]


def test_split_by_size_reads_in_order(tmp_path, data_dir):
    opts = WriterOptions(max_bag_size=2 * 1024 * 1024, chunk_size=512 * 1024, background_flush=False)
    written, meta = _record(tmp_path / "s", data_dir, opts, n_js=400, n_img=12, n_pose=20)
    files = sorted(p.name for p in (tmp_path / "s").glob("*.mcap"))
    assert len(files) >= 3 and meta.relative_file_paths == [f"s_{i}.mcap" for i in range(len(files))]
    for p in (tmp_path / "s").glob("*.mcap"):  # each file stays near the limit (one chunk of slack)
        assert p.stat().st_size < 2 * 1024 * 1024 + 1024 * 1024
    assert sum(f.message_count for f in meta.files) == len(written)
    r = BagReader(tmp_path / "s")
    got = [(m.topic, m.data, m.log_time_ns) for m in r.messages()]
    assert got == [(t, b, lt) for t, b, lt, _ in sorted(written, key=lambda x: x[2])]
    with pytest.importorskip("rosbags.rosbag2").Reader(tmp_path / "s") as rb:
        assert rb.message_count == len(written)
    # metadata records and attachments are in every split file
    for p in (tmp_path / "s").glob("*.mcap"):
        with open(p, "rb") as f:
            r = make_reader(f)
            assert {m.name for m in r.iter_metadata()} == {"episode", "rosbag2"}
            assert [a.name for a in r.iter_attachments()] == ["g1.urdf"]


def test_split_by_duration(tmp_path):
    w = BagWriter(tmp_path / "d", WriterOptions(max_bag_duration_s=1.0, background_flush=False))
    w.add_topic("/x", "std_msgs/msg/Bool")
    from std_msgs.msg import Bool

    data = ser(Bool(data=True))
    for i in range(35):  # 3.4 s at 10 Hz -> files [0,1), [1,2), [2,3), [3,3.4]
        w.write("/x", data, T0 + i * 100_000_000)
    meta = w.close()
    assert [f.message_count for f in meta.files] == [10, 10, 10, 5]
    assert all(f.duration_ns < 1_000_000_000 for f in meta.files)
    assert [m.log_time_ns for m in BagReader(tmp_path / "d").messages()] == [T0 + i * 100_000_000 for i in range(35)]


def test_manual_split_and_stats(tmp_path):
    w = BagWriter(tmp_path / "m", WriterOptions(background_flush=False))
    w.add_topic("/a", "std_msgs/msg/String")
    w.split()  # nothing written yet: no empty file
    w.write("/a", b"\x00\x01\x00\x00\x02\x00\x00\x00x\x00", T0)
    w.split()
    w.write("/a", b"\x00\x01\x00\x00\x02\x00\x00\x00y\x00", T0 + 1)
    assert w.stats["/a"].messages == 2 and w.stats["/a"].bytes == 20
    meta = w.close()
    assert meta.relative_file_paths == ["m_0.mcap", "m_1.mcap"]
    assert [m.data[-2:-1] for m in BagReader(tmp_path / "m").messages()] == [b"x", b"y"]


def test_hostile_inputs(tmp_path):
    w = BagWriter(tmp_path / "h", WriterOptions(background_flush=False), custom_data={"k\n": "v: [1"})
    with pytest.raises(ValueError):
        w.add_topic("", JS)
    w.add_topic("/j", JS)
    w.add_topic("/j", JS)  # idempotent
    with pytest.raises(ValueError, match="already recorded"):
        w.add_topic("/j", IMG)
    with pytest.raises(KeyError):
        w.write("/not_added", b"x", T0)
    for bad in (-1, 1 << 64):
        with pytest.raises(ValueError, match="out of range"):
            w.write("/j", b"\x00\x01\x00\x00", bad)
    with pytest.raises(TypeError):
        w.write("/j", "a string", T0)
    buf = bytearray(b"\x00\x01\x00\x00abcd")
    w.write("/j", buf, 0)  # time 0 and max time are legal
    buf[4:] = b"XXXX"  # the writer must have copied it
    w.write("/j", b"", (1 << 64) - 1)
    w.add_topic("/unknown", "no_such_pkg/msg/Thing")
    w.write("/unknown", b"\x00\x01\x00\x00\xff", T0)
    with pytest.raises(ValueError):
        w.add_metadata("rosbag2", {})
    assert w.unknown_types == {"no_such_pkg/msg/Thing"}
    w.close()
    w.close()  # idempotent
    with pytest.raises(BagClosedError):
        w.write("/j", b"", T0)
    r = BagReader(tmp_path / "h")
    msgs = list(r.messages(decode=False))
    assert [m.data for m in msgs] == [b"\x00\x01\x00\x00abcd", b"\x00\x01\x00\x00\xff", b""]
    assert r.topics["/unknown"].type == "no_such_pkg/msg/Thing" and r.topics["/unknown"].count == 1
    # decoding: the unknown type yields message None instead of an error
    dec = list(r.messages(topics=["/unknown"], decode=True))
    assert dec[0].message is None and dec[0].data == b"\x00\x01\x00\x00\xff"
    assert r.metadata.custom_data == {"k\n": "v: [1"}
    with pytest.importorskip("rosbags.rosbag2").Reader(tmp_path / "h") as rb:
        assert {c.topic: c.msgcount for c in rb.connections} == {"/j": 2, "/unknown": 1}


def test_existing_nonempty_dir_refused_and_bad_options(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("data")
    with pytest.raises(FileExistsError):
        BagWriter(tmp_path / "x")
    assert (tmp_path / "x" / "keep.txt").read_text() == "data"
    for bad in (dict(compression="gzip"), dict(flush_interval_s=0), dict(chunk_size=0),
                dict(compression="zstd", compression_level=99)):
        with pytest.raises(ValueError):
            BagWriter(tmp_path / "y", WriterOptions(**bad))


def test_flush_interval_puts_data_on_disk_without_close(tmp_path):
    """With messages stopping, the background thread still writes the pending chunk out."""
    w = BagWriter(tmp_path / "f", WriterOptions(flush_interval_s=0.2, chunk_size=64 * 1024 * 1024))
    w.add_topic("/j", JS)
    f = w.current_file
    size0 = f.stat().st_size
    for i in range(50):
        w.write("/j", b"\x00\x01\x00\x00" + bytes(100), T0 + i)
    assert f.stat().st_size == size0  # still in the chunk being built
    deadline = time.monotonic() + 3.0
    while f.stat().st_size == size0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert f.stat().st_size > size0 + 50 * 100
    w.close()


def test_periodic_metadata_while_recording(tmp_path):
    w = BagWriter(tmp_path / "p", WriterOptions(flush_interval_s=0.1, metadata_interval_s=0.2))
    w.add_topic("/j", JS)
    w.write("/j", b"\x00\x01\x00\x00", T0)
    deadline = time.monotonic() + 3.0
    while not (tmp_path / "p" / "metadata.yaml").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert read_metadata(tmp_path / "p").message_count == 1
    w.write("/j", b"\x00\x01\x00\x00", T0 + 1)
    assert w.close().message_count == 2 and read_metadata(tmp_path / "p").message_count == 2


def test_reader_errors(tmp_path):
    with pytest.raises(NotABagError):
        BagReader(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotABagError):
        BagReader(tmp_path / "empty")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(NotABagError):
        BagReader(tmp_path / "f.txt")


def test_concurrent_writers_threads(tmp_path):
    """Subscription callbacks may run on several executor threads."""
    import threading

    assert WriterOptions().flush_interval_s <= 1.0  # the default bound
    w = BagWriter(tmp_path / "c", WriterOptions(chunk_size=32 * 1024, flush_interval_s=0.05))
    topics = [f"/t{k}" for k in range(4)]
    for t in topics:
        w.add_topic(t, "std_msgs/msg/String")

    def worker(k):
        for i in range(2000):
            w.write(topics[k], b"\x00\x01\x00\x00" + i.to_bytes(4, "little"), T0 + i * 1000 + k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    meta = w.close()
    assert {t.name: t.message_count for t in meta.topics} == {t: 2000 for t in topics}
    r = BagReader(tmp_path / "c")
    for k, t in enumerate(topics):
        assert [int.from_bytes(m.data[4:], "little") for m in r.messages(topics=[t])] == list(range(2000))


@pytest.mark.parametrize("chunk_size", [64 * 1024, 8 * 1024 * 1024])
def test_chunk_crcs_verify_with_and_without_the_join(tmp_path, data_dir, chunk_size, monkeypatch):
    """An uncompressed chunk of at most 1024 parts is CRC'd and written part by part (no join
    copy); a chunk of more parts is joined first. The official mcap reader validates every
    chunk CRC of both kinds, and the bytes read back equal the bytes written."""
    from robot_capture.bag import mcap_file
    from robot_capture.bag.crc import crc32, crc32_parts

    unjoined = []
    monkeypatch.setattr(mcap_file, "crc32_parts", lambda parts: unjoined.append(len(parts)) or crc32_parts(parts))
    # chunks close by size only: a chunk also seals at half the flush interval of age, and on a
    # starved machine writing the 8 MiB chunk took longer than 0.5 s (it was sealed early, unjoined)
    opts = WriterOptions(chunk_size=chunk_size, background_flush=False, flush_interval_s=3600.0)
    written, _ = _record(tmp_path / "b", data_dir, opts, n_js=1200, n_img=4, n_pose=10)
    (mcap_path,) = (tmp_path / "b").glob("*.mcap")
    with open(mcap_path, "rb") as f:
        reader = make_reader(f, validate_crcs=True)
        got = [(c.topic, m.data) for _s, c, m in reader.iter_messages(log_time_order=True)]
    assert got == [(t, b) for t, b, *_ in sorted(written, key=lambda x: x[2])]
    # 64 KiB chunks: every chunk has few parts (unjoined); one 8 MiB chunk has 2 x 1214 parts (joined)
    if chunk_size < 1024 * 1024:
        assert unjoined and max(unjoined) <= mcap_file._MAX_UNJOINED_PARTS
    else:
        assert unjoined == []
    assert crc32(b"123456789") == 0xCBF43926  # the CRC-32/ISO-HDLC check value


def test_a_finished_split_file_keeps_no_chunk_index_in_memory(tmp_path):
    """An episode keeps one writer per split file (for counts and times); once a file is
    finished its chunk indexes are freed, so a long episode's memory does not grow with its
    chunks (benchmarks/soak.py: +0.65 MB/min before). The files still read back whole."""
    w = BagWriter(tmp_path / "s", WriterOptions(max_bag_duration_s=1.0, chunk_size=1024, background_flush=False))
    w.add_topic("/x", "std_msgs/msg/String")
    data = b"\x00\x01\x00\x00\x40\x00\x00\x00" + b"x" * 63 + b"\x00"
    for i in range(600):  # 6 files of 1 s, ~100 messages each, a chunk every ~13 messages
        w.write("/x", data, T0 + i * 10_000_000)
    files = list(w._writers)
    assert len(files) == 6 and len(files[-1]._chunk_indexes) >= 1  # the open file keeps its own
    assert all(f.closed and f._chunk_indexes == [] and f._parts == [] for f in files[:-1])
    meta = w.close()
    assert [f.message_count for f in meta.files] == [100] * 6
    assert sum(1 for _ in BagReader(tmp_path / "s").messages()) == 600
