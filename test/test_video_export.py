"""Export (LeRobot v3.0) of a bag whose camera was recorded as H.264 CompressedVideo: the camera is
found, every frame decoded and the chosen ones re-encoded; the frames match those of the same
episode recorded raw."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
from export_bags import write_episode  # noqa: E402

from _video_frames import psnr  # noqa: E402
from robot_capture.bag import BagReader  # noqa: E402
from robot_capture.bag.writer import BagWriter, WriterOptions  # noqa: E402
from robot_capture.export.lerobot import ExportOptions, export_episodes  # noqa: E402
from robot_capture.export.video import decode_frames as mp4_frames  # noqa: E402
from robot_capture.video.encode import EncoderSettings, FrameEncoder  # noqa: E402
from robot_capture.video.msgdef import COMPRESSED_VIDEO, serialize_compressed_video  # noqa: E402

CAM = "/camera/head/image_raw"


def _as_video_bag(raw: Path, out: Path) -> Path:
    """The same episode with the camera as the recorder's VideoStage writes it (same log times)."""
    r = BagReader(raw)
    w = BagWriter(out, WriterOptions(compression="none"), custom_data=dict(r.metadata.custom_data))
    for t, info in r.topics.items():
        w.add_topic(t, COMPRESSED_VIDEO if t == CAM else info.type)
    enc = FrameEncoder(EncoderSettings(hardware="off", crf=18), "head")
    for m in r.messages():
        if m.topic != CAM:
            w.write(m.topic, m.data, m.log_time_ns, m.publish_time_ns)
            continue
        for f in enc.encode_message(m.data):
            w.write(CAM, serialize_compressed_video(f.stamp_ns, f.frame_id, f.data), m.log_time_ns,
                    m.publish_time_ns)
    w.close()
    return out


def test_export_decodes_and_reencodes_a_video_camera(tmp_path):
    raw = write_episode(tmp_path / "raw" / "a", seconds=2.0, cameras=("head",))
    vid = _as_video_bag(raw, tmp_path / "video" / "a")
    assert BagReader(vid).topics[CAM].type == COMPRESSED_VIDEO
    s_raw = export_episodes([tmp_path / "raw"], tmp_path / "ds_raw", ExportOptions(run_qa=False), progress=False)
    s_vid = export_episodes([tmp_path / "video"], tmp_path / "ds_vid", ExportOptions(run_qa=False), progress=False)
    assert [r.status for r in s_vid.results] == ["exported"], s_vid.lines()
    assert [r.status for r in s_raw.results] == ["exported"], s_raw.lines()
    (a,) = sorted((tmp_path / "ds_raw" / "videos" / "observation.images.head").rglob("*.mp4"))
    (b,) = sorted((tmp_path / "ds_vid" / "videos" / "observation.images.head").rglob("*.mp4"))
    fa, fb = mp4_frames(a), mp4_frames(b)
    assert len(fa) == len(fb) > 50
    assert [t for t, _ in fa] == [t for t, _ in fb]
    worst = min(psnr(x, y) for (_t, x), (_u, y) in zip(fa, fb))
    assert worst >= 30.0, worst
    assert np.asarray(fb[0][1]).shape == (64, 96, 3)
