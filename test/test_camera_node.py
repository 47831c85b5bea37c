"""camera node through real DDS: synthetic frames follow /joint_states; Image, JPEG and CameraInfo."""

import numpy as np
import pytest

from ros_util import spin_until, start_node, stop_node

pytestmark = pytest.mark.ros




def _frame(msg):
    import cv2

    if hasattr(msg, "format"):
        return cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)


@pytest.mark.parametrize("compressed", [False, True])
def test_synthetic_frames_follow_joint_states(ros_node, g1_urdf, compressed):
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState

    proc = start_node("robot_capture.nodes.camera_node",
                      {"name": "test", "source": "synthetic", "urdf": str(g1_urdf), "width": 320, "height": 240,
                       "rate_hz": 30.0, "compressed": compressed})
    try:
        node, ex = ros_node
        frames, infos = [], []
        topic = "/camera/test/image_raw" + ("/compressed" if compressed else "")
        node.create_subscription(CompressedImage if compressed else Image, topic, frames.append, 10)
        node.create_subscription(CameraInfo, "/camera/test/camera_info", infos.append, 10)
        pub = node.create_publisher(JointState, "/joint_states", 10)
        assert spin_until(ex, lambda: len(frames) > 5 and pub.get_subscription_count() > 0), "no frames"
        m = frames[-1]
        assert m.header.frame_id == "test_optical_frame"
        if compressed:
            assert "jpeg" in m.format
        else:
            assert (m.encoding, m.width, m.height, m.step) == ("rgb8", 320, 240, 960)
        assert infos and infos[-1].width == 320 and infos[-1].k[0] > 0
        spin_until(ex, lambda: False, timeout=0.2)
        info_stamps = {(i.header.stamp.sec, i.header.stamp.nanosec) for i in infos}
        assert (m.header.stamp.sec, m.header.stamp.nanosec) in info_stamps, "camera_info shares the image stamp"
        # (the achieved frame rate is benchmarks/sim_bench.py's figure, not a test: a loaded machine delays timers)

        def settle(state):
            pub.publish(state)
            spin_until(ex, lambda: False, timeout=0.3)
            frames.clear()
            spin_until(ex, lambda: len(frames) >= 2)
            return _frame(frames[-1])

        names = ["left_shoulder_pitch_joint", "right_shoulder_pitch_joint", "left_elbow_joint", "right_elbow_joint"]
        a = settle(JointState(name=names, position=[0.0, 0.0, 0.0, 0.0]))
        a2 = settle(JointState(name=names, position=[0.0, 0.0, 0.0, 0.0]))
        b = settle(JointState(name=names, position=[-1.2, -0.6, 1.0, 0.4]))
        same = np.abs(a.astype(int) - a2.astype(int)).max(axis=2) > 40
        diff = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 40
        assert same.mean() < 0.001, "the same joint state renders the same frame"
        assert diff.mean() > 0.003, f"only {diff.mean():.3%} of pixels changed with the arms"
        # bad input does not crash the node
        pub.publish(JointState(name=["nope", "left_elbow_joint"], position=[float("nan"), float("nan")]))
        n = len(frames)
        assert spin_until(ex, lambda: len(frames) > n + 3)
    finally:
        code, out = stop_node(proc)
    assert code == 0 and "Traceback" not in out, out


def test_missing_video_source_fails_cleanly(tmp_path):
    proc = start_node("robot_capture.nodes.camera_node", {"source": str(tmp_path / "none.mp4")})
    try:
        proc.wait(timeout=30)
    finally:
        code, out = stop_node(proc)
    assert code == 1, out
    assert "failed to open" in out


def test_video_file_source(ros_node, tmp_path):
    import cv2
    from sensor_msgs.msg import Image

    path = str(tmp_path / "clip.avi")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    for i in range(10):
        img = np.zeros((120, 160, 3), np.uint8)
        img[:, :, 2] = 25 * i  # red ramp (BGR)
        w.write(img)
    w.release()
    proc = start_node("robot_capture.nodes.camera_node",
                      {"name": "vid", "source": path, "width": 160, "height": 120, "rate_hz": 30.0})
    try:
        node, ex = ros_node
        frames = []
        node.create_subscription(Image, "/camera/vid/image_raw", frames.append, 50)
        assert spin_until(ex, lambda: len(frames) > 15), "video frames (looped) expected"
        reds = [_frame(f)[:, :, 0].mean() for f in frames]  # rgb8: red is channel 0
        assert max(reds) - min(reds) > 100
    finally:
        code, out = stop_node(proc)
    assert code == 0, out


@pytest.mark.parametrize("params, message", [
    ({"source": 7}, "failed to open"),            # an int from YAML/CLI is a device index, not a type error
    ({"width": "wide"}, "parameter 'width'"),      # a clear error for a value that is no int
])
def test_parameter_types_are_forgiving_and_errors_clear(params, message):
    proc = start_node("robot_capture.nodes.camera_node", params)
    try:
        proc.wait(timeout=30)
    finally:
        code, out = stop_node(proc)
    assert code == 1, out
    assert message in out and "Traceback" not in out, out


def test_helper_node_is_not_renamed_by_the_node_remap(ros_node, g1_urdf):
    """`-r __node:=camera_head` (how the floor names it) names the camera node only: one
    /camera_head in the graph, the joint-state helper under its own name."""
    proc = start_node("robot_capture.nodes.camera_node",
                      {"name": "head", "source": "synthetic", "urdf": str(g1_urdf), "width": 64, "height": 48},
                      "-r", "__node:=camera_head")
    try:
        node, ex = ros_node
        names = []

        def seen():
            names[:] = node.get_node_names()
            return "_camera_head_joint_states" in names or names.count("camera_head") > 1
        assert spin_until(ex, seen, timeout=60.0), names
        assert names.count("camera_head") == 1 and "_camera_head_joint_states" in names, names
    finally:
        code, out = stop_node(proc)
    assert code == 0 and "already registered" not in out, out


def test_a_starved_simulated_camera_catches_up_on_its_frame_grid(g1_urdf):
    """A timer that fires late (the node starved) publishes every frame that came due since,
    each on the grid t0 + k / rate, up to MAX_CATCHUP; a longer stall is counted and warned.
    (A plain ROS timer skips the missed periods: gaps in the recording of a loaded floor.)
    The node's clock is replaced by a controlled one, so machine load cannot change the test."""
    import types

    import rclpy
    from rclpy.parameter import Parameter

    from robot_capture.nodes.camera_node import MAX_CATCHUP, CameraNode
    from robot_capture.sim.ticker import Ticker

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        cam = CameraNode(context=ctx, parameter_overrides=[
            Parameter("urdf", value=str(g1_urdf)), Parameter("width", value=64), Parameter("height", value=48),
            Parameter("rate_hz", value=30.0)])
        try:
            now = [1_800_000_000_000_000_000]
            cam.get_clock = lambda: types.SimpleNamespace(now=lambda: types.SimpleNamespace(nanoseconds=now[0]))
            cam._ticker = Ticker(30.0, now[0], MAX_CATCHUP)
            stamps, infos = [], []
            cam.pub.publish = lambda m: stamps.append(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)
            cam.info_pub.publish = lambda m: infos.append(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)
            period = cam._ticker.period_ns
            cam._tick()
            assert stamps == [now[0]]
            now[0] += int(3.2 * period)  # starved for 3 periods: the timer could not fire
            cam._tick()
            assert len(stamps) == 4, stamps  # frames 1, 2, 3 at once
            assert np.all(np.abs(np.diff(stamps) - period) <= 1), np.diff(stamps)  # on the grid, no gap
            assert infos == stamps and cam._ticker.skipped == 0
            now[0] += int((MAX_CATCHUP + 3) * period)  # a longer stall: the oldest are dropped, counted
            cam._tick()
            assert len(stamps) == 4 + MAX_CATCHUP and cam._ticker.skipped == 3
            assert np.all(np.abs(np.diff(stamps[4:]) - period) <= 1)
        finally:
            cam.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
