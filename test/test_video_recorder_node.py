"""The recorder node over real DDS with a station contract camera at ``codec: h264``: the raw
Image topic is recorded as foxglove_msgs/msg/CompressedVideo under its own name, every frame
published while recording is in the bag, and each split file starts with a keyframe."""
from __future__ import annotations

from pathlib import Path

import pytest

from _recorder_harness import NodeProc, TestRos
from _video_frames import frame, psnr
from robot_capture.floor.contract import Stream

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]
CAM = "/cam/image_raw"
N = 40


@pytest.fixture
def ros():
    t = TestRos()
    yield t
    t.close()


def _image(i: int):
    from sensor_msgs.msg import Image

    img = frame(i)
    m = Image(height=img.shape[0], width=img.shape[1], encoding="rgb8", step=img.shape[1] * 3, data=img.tobytes())
    m.header.stamp.sec, m.header.stamp.nanosec = 5000 + i // 30, (i % 30) * 33_000_000
    m.header.frame_id = "cam_optical"
    return m


def test_recorder_node_encodes_a_contract_camera(tmp_path, ros):
    from sensor_msgs.msg import Image

    from robot_capture.bag import BagReader
    from robot_capture.video.decode import VideoDecoder, decode_frames, is_keyframe
    from robot_capture.video.msgdef import COMPRESSED_VIDEO, parse_compressed_video

    out = tmp_path / "out"
    cam = Stream(topic=CAM, type="sensor_msgs/msg/Image", name="test camera", role="camera", rate_hz=30.0,
                 required=False, codec="h264")
    rec = NodeProc(tmp_path, output_dir=str(out), topics=[CAM], expected_streams=[cam.to_param()],
                   discovery_interval_s=0.3, disk_min_free_mb=0.0)
    try:
        pub = ros.publisher(Image, CAM)
        assert ros.wait_subscribed(pub), rec.output()
        res = ros.call("/recorder/start_episode")
        assert res.success, res.message
        bag = Path(res.message)
        for i in range(N):
            if i == N // 2:
                ros.spin_for(0.3)
                assert ros.call("/recorder/split").success
            pub.publish(_image(i))
            ros.spin_for(0.03)
        ros.spin_for(0.5)
        res = ros.call("/recorder/stop_episode_success")
        assert res.success, res.message
    finally:
        rec.stop()
    log = rec.output()
    assert "as h264 (libx264)" in log, log[-3000:]
    r = BagReader(bag)
    assert r.topics[CAM].type == COMPRESSED_VIDEO
    msgs = list(r.messages(topics=[CAM]))
    assert len(msgs) == N, log[-3000:]
    assert parse_compressed_video(msgs[0].data)[:2] == (5000 * 10**9, "cam_optical")
    out_frames = list(decode_frames(msgs))
    assert len(out_frames) == N and min(psnr(img, frame(i)) for i, (_s, img) in enumerate(out_frames)) >= 30.0
    from mcap.reader import make_reader

    files = sorted(bag.glob("*.mcap"))
    assert len(files) == 2
    for f in files:
        with open(f, "rb") as fh:
            data = [m.data for _s, ch, m in make_reader(fh).iter_messages() if ch.topic == CAM]
        assert is_keyframe(parse_compressed_video(data[0])[2]), f.name
        dec = VideoDecoder()
        assert len(list(decode_frames(data, dec))) == len(data) and dec.skipped == 0
