"""Units of robot_capture.export: CDR parsing against rclpy, the frame grid, the mapping
schema, the stats layout, and the video appender's frame times."""
from __future__ import annotations


import numpy as np
import pytest

from robot_capture.config_schema import ConfigError
from robot_capture.export import cdr, grid as gr
from robot_capture.export import stats as st
from robot_capture.export.mapping import load_mapping, resolve, MissingStreamError

pytestmark = pytest.mark.timeout(60)


def _ser(msg):
    from rclpy.serialization import serialize_message

    return serialize_message(msg)


def test_cdr_matches_rclpy_serialization():
    pytest.importorskip("rclpy")
    from geometry_msgs.msg import Pose, PoseArray, PoseStamped
    from sensor_msgs.msg import CompressedImage, Image, JointState

    js = JointState()
    js.header.stamp.sec, js.header.stamp.nanosec = 1_700_000_000, 123_456_789
    js.header.frame_id = "pelvis_odd"  # odd length: exercises alignment
    js.name = ["a", "bb", "ccc"]
    js.position, js.velocity = [0.1, -0.2, 0.3], [1.0, 2.0, 3.0]
    t, names, pos, vel, eff = cdr.joint_state(_ser(js))
    assert t == 1_700_000_000_123_456_789 and names == ["a", "bb", "ccc"]
    assert pos.tolist() == [0.1, -0.2, 0.3] and vel.tolist() == [1.0, 2.0, 3.0] and eff.size == 0
    im = Image()
    im.header.frame_id = "cam"
    im.height, im.width, im.encoding, im.step = 2, 3, "rgb8", 9
    im.data = bytes(range(18))
    t, h, w, enc, step, _big, px = cdr.image(_ser(im))
    assert (h, w, enc, step, bytes(px)) == (2, 3, "rgb8", 9, bytes(range(18)))
    ci = CompressedImage()
    ci.format, ci.data = "jpeg", b"\xff\xd8xyz"
    assert cdr.compressed_image(_ser(ci))[1:] == ("jpeg", memoryview(b"\xff\xd8xyz"))
    pa = PoseArray()
    pa.header.frame_id = "p"
    for i in range(2):
        p = Pose()
        p.position.x, p.orientation.w = float(i), 1.0
        pa.poses.append(p)
    assert cdr.pose_array(_ser(pa))[1].tolist() == [[0, 0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 1]]
    ps = PoseStamped()
    ps.pose.position.z = 1.5
    assert cdr.pose_stamped(_ser(ps))[1].tolist() == [0, 0, 1.5, 0, 0, 0, 1]  # ROS default w = 1
    with pytest.raises(ValueError, match="truncated"):
        cdr.joint_state(_ser(js)[:30])


def test_grid_starts_on_a_camera_frame_after_all_streams_and_ends_at_the_earliest_last():
    cam = np.arange(0, 31) * 33_333_333 + 5_000_000          # 30 Hz from 5 ms
    g = gr.make_grid([0, 40_000_000, int(cam[0])], [1_000_000_000, 900_000_000, int(cam[-1])], cam, 30)
    assert g.t0_ns == cam[2]                                   # first frame at/after 40 ms
    assert g.t0_ns + (g.n - 1) * 1e9 / 30 <= 900_000_000 < g.t0_ns + g.n * 1e9 / 30
    assert (g.timestamps == (np.arange(g.n) / 30).astype(np.float32)).all()
    with pytest.raises(gr.GridError, match="shorter than one frame period"):
        gr.make_grid([0, 0], [20_000_000, 20_000_000], None, 30)


def test_interpolate_hold_and_nearest_frames():
    t = np.array([0, 10, 20], dtype=np.int64)
    v = np.array([[0.0], [1.0], [3.0]])
    q = np.array([0, 5, 10, 15, 20], dtype=np.int64)
    assert gr.interpolate(t, v, q)[:, 0].tolist() == [0.0, 0.5, 1.0, 2.0, 3.0]
    assert gr.hold(t, v, q)[:, 0].tolist() == [0.0, 0.0, 1.0, 1.0, 3.0]
    stamps = np.array([0, 100, 200, 420, 500])                # frame at 300 missing
    sel, stale = gr.nearest_frames(stamps, np.array([0, 100, 200, 300, 400, 500]), 100)
    assert sel.tolist() == [0, 1, 2, 2, 3, 4] and stale == 1
    ts, vs = gr.sort_samples(np.array([20, 10, 10]), np.array([[2.0], [1.0], [1.5]]))
    assert ts.tolist() == [10, 20] and vs[:, 0].tolist() == [1.5, 2.0]


def test_default_mapping_validates_and_resolves():
    m = load_mapping()
    assert [f.key for f in m.features][:3] == ["observation.state", "action", "observation.ik_targets"]
    assert m.video.codec == "libsvtav1" and m.video.gop == 2 and m.video.crf == 30

    class T:
        def __init__(self, type_, count=10):
            self.type, self.count = type_, count

    topics = {"/joint_states": T("sensor_msgs/msg/JointState"), "/retarget/joint_command": T("sensor_msgs/msg/JointState"),
              "/camera/head/image_raw": T("sensor_msgs/msg/Image"),
              "/camera/wrist/image_raw/compressed": T("sensor_msgs/msg/CompressedImage")}
    r = resolve(m, topics)
    assert [s.key for s in r.streams] == ["observation.state", "action"]
    assert [c.key for c in r.cameras] == ["observation.images.head", "observation.images.wrist"]
    with pytest.raises(MissingStreamError, match="/joint_states missing"):
        resolve(m, {k: v for k, v in topics.items() if k != "/joint_states"})
    with pytest.raises(MissingStreamError, match="camera wrist missing"):
        resolve(m, {k: v for k, v in topics.items() if "wrist" not in k},
                {"observation.state", "action", "observation.images.head", "observation.images.wrist"})


def test_mapping_errors_name_the_key(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("features:\n  - key: observation/state\n    topic: /joint_states\nvideo: {codec: vp9}\n")
    with pytest.raises(ConfigError) as exc:
        load_mapping(p)
    text = str(exc.value)
    assert "m.yaml: features.0.key" in text and "no '/'" in text
    assert "m.yaml: video.codec" in text


def test_stats_layout_and_aggregation_match_pooled_numbers():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 3)), rng.normal(2.0, 3.0, size=(80, 3))
    sa, sb = st.feature_stats(a), st.feature_stats(b)
    assert set(sa) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    assert sa["count"].tolist() == [50] and sa["mean"].shape == (3,)
    agg = st.aggregate([{"x": sa}, {"x": sb}])["x"]
    both = np.concatenate([a, b])
    np.testing.assert_allclose(agg["mean"], both.mean(0))
    np.testing.assert_allclose(agg["std"], both.std(0))
    np.testing.assert_allclose(agg["min"], both.min(0))
    assert agg["count"].tolist() == [130]
    img = st.image_stats([np.full((4, 4, 3), 51, np.uint8), np.full((4, 4, 3), 102, np.uint8)])
    assert img["mean"].shape == (3, 1, 1) and np.allclose(img["mean"], 0.3) and img["count"].tolist() == [2]
    assert st.sample_indices(50) == list(range(50)) and len(st.sample_indices(5000)) == int(5000 ** 0.75)


@pytest.mark.parametrize("fps", [30, 25, 15])
def test_appended_segments_keep_every_frame_at_k_over_fps(tmp_path, fps):
    from robot_capture.export.video import EpisodeEncoder, VideoAppender, decode_frames

    segs = []
    for e, n in enumerate((7, 5)):
        enc = EpisodeEncoder(tmp_path / f"s{e}.mp4", 64, 64, fps)
        for i in range(n):
            enc.add(np.full((64, 64, 3), 20 * i + 100 * e, np.uint8))
        assert enc.close() == n
        segs.append(tmp_path / f"s{e}.mp4")
    app = VideoAppender(tmp_path / "out.mp4", fps)
    assert app.append(segs[0]) == (0.0, 7 / fps)
    assert app.append(segs[1]) == (7 / fps, 12 / fps)
    assert app.append(segs[0], 2, 3) == (12 / fps, 15 / fps)  # a cut on a keyframe (g=2)
    app.close()
    frames = decode_frames(tmp_path / "out.mp4")
    assert len(frames) == 15
    assert max(abs(t - k / fps) for k, (t, _f) in enumerate(frames)) < 1e-4
    levels = [int(f[32, 32, 0]) for _t, f in frames]
    want = [0, 20, 40, 60, 80, 100, 120, 100, 120, 140, 160, 180, 40, 60, 80]
    assert max(abs(a - b) for a, b in zip(levels, want)) <= 3


def test_image_stats_from_histograms_equal_pixel_stats():
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8) for _ in range(4)]
    got = st.image_stats(frames)
    px = np.concatenate([f.reshape(-1, 3) for f in frames]).astype(np.float64) / 255.0
    ref = st.feature_stats(px)
    for k in ("min", "max", "mean", "std", "q01", "q10", "q50", "q90", "q99"):
        np.testing.assert_allclose(got[k].reshape(3), ref[k], atol=1e-12, err_msg=k)


def test_joint_state_parser_reuses_names_only_when_the_bytes_match():
    pytest.importorskip("rclpy")
    from sensor_msgs.msg import JointState

    p = cdr.JointStateParser()
    a = JointState(name=["j1", "j2"], position=[1.0, 2.0])
    b = JointState(name=["j2", "j1"], position=[3.0, 4.0])
    assert p(_ser(a))[1] == ["j1", "j2"]
    t, names, pos, _v, _e = p(_ser(a))
    assert names == ["j1", "j2"] and pos.tolist() == [1.0, 2.0]
    t, names, pos, _v, _e = p(_ser(b))
    assert names == ["j2", "j1"] and pos.tolist() == [3.0, 4.0]
