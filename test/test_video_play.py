"""`robot-capture play` of a bag with an H.264 camera: ROS consumers get sensor_msgs/Image back
(decoded, rgb8, the recorded stamps and frame_id); re-recorded raw, every frame is there."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from _cmd import module_command
from _recorder_harness import NodeProc
from _video_frames import frame, image_msg, psnr
from robot_capture.bag import BagReader, BagWriter, WriterOptions
from robot_capture.video.encode import EncoderSettings, FrameEncoder
from robot_capture.video.msgdef import COMPRESSED_VIDEO, parse_image, serialize_compressed_video

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]
CAM = "/cam/image_raw"
T0 = 1_700_000_000_000_000_000
N = 30


def _video_bag(path: Path) -> Path:
    w = BagWriter(path, WriterOptions())
    w.add_topic(CAM, COMPRESSED_VIDEO)
    enc = FrameEncoder(EncoderSettings(hardware="off"), "cam")
    for i in range(N):
        t = T0 + int(i * 1e9 / 30)
        for f in enc.encode_message(image_msg(i, t0_ns=T0)):
            w.write(CAM, serialize_compressed_video(f.stamp_ns, f.frame_id, f.data), t, t)
    w.close()
    return path


def test_play_decodes_video_back_to_images(tmp_path):
    src = _video_bag(tmp_path / "src")
    out = tmp_path / "out"
    rec = NodeProc(tmp_path, output_dir=str(out), topics=[CAM], auto_start=True, disk_min_free_mb=0.0,
                   discovery_interval_s=0.2)
    try:
        with open(tmp_path / "play.log", "wb") as log:
            player = subprocess.Popen([*module_command("robot_capture.cli"), "play", str(src),
                                       "--wait-for-subscribers", "1", "--delay", "1.0"], stdout=log,
                                      stderr=subprocess.STDOUT)
            assert player.wait(90) == 0, (tmp_path / "play.log").read_text()
        time.sleep(1.0)
    finally:
        assert rec.stop() == 0, rec.output()
    (bag,) = [p for p in out.iterdir() if p.is_dir()]
    r = BagReader(bag)
    assert r.topics[CAM].type == "sensor_msgs/msg/Image"
    imgs = [parse_image(m.data) for m in r.messages(topics=[CAM])]
    assert len(imgs) == N, (tmp_path / "play.log").read_text()
    for i, im in enumerate(imgs):
        assert (im.stamp_ns, im.frame_id, im.encoding) == (T0 + int(i * 1e9 / 30), "head_optical", "rgb8")
        rgb = np.frombuffer(im.pixels, np.uint8).reshape(im.height, im.width, 3)
        assert psnr(rgb, frame(i)) >= 30.0
