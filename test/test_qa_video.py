"""Video QA units (no DDS): frame structure and decoders, the checks on small written bags
(motion rules, static camera, overexposure, depth frames), thresholds, error causes."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from robot_capture.bag.writer import BagWriter, WriterOptions
from robot_capture.config_schema import ConfigError
from robot_capture.episodes import Finding, Verdict, read_verdict
from robot_capture.qa import frames as F
from robot_capture.qa.config import load_config
from robot_capture.qa.run import qa_episode

from export_bags import T0, _image, _js, frame_image

pytestmark = pytest.mark.timeout(120)
CAM = "/camera/head/image_raw"
VIDEO = {"decode", "exposure", "frozen", "blur", "static"}


def _bag(path, frame=lambda k, t: frame_image(t), still=False, seconds=3.0, encoding=None, video_topic=False):
    """A 3 s episode: /joint_states at 100 Hz (2 joints; sinusoids, or still) and a 30 Hz rgb8
    camera drawing ``frame(k, t)``; ``encoding`` replaces the camera's with raw 16UC1 frames."""
    from rclpy.serialization import serialize_message as ser
    from sensor_msgs.msg import Image

    msgs = []
    for i in range(int(seconds * 100) + 1):
        t = i / 100
        ns = T0 + int(round(t * 1e9))
        q = [0.1, -0.2] if still else [0.5 * np.sin(2 * np.pi * 0.5 * t), 0.3 * np.cos(2 * np.pi * 0.4 * t)]
        msgs.append((ns, "/joint_states", ser(_js(["a", "b"], q, ns))))
    for k in range(int(seconds * 30) + 1):
        t = k / 30
        ns = T0 + int(round(t * 1e9)) + 2_000_000
        if encoding:
            m = Image()
            m.header.stamp.sec, m.header.stamp.nanosec = divmod(ns, 1_000_000_000)
            m.height, m.width, m.encoding, m.step = 48, 64, encoding, 128
            m.data = (np.full((48, 64), 1000 + k, np.uint16)).tobytes()
        else:
            m = _image(frame(k, t), ns)
        msgs.append((ns + 3_000_000, CAM, ser(m)))
    w = BagWriter(path, WriterOptions(compression="none"),
                  custom_data={"episode.task": "t", "episode.operator": "o", "episode.success": "true",
                               "episode.start_time_ns": str(T0), "episode.stop_time_ns": str(T0 + int(seconds * 1e9))})
    w.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    w.add_topic(CAM, "sensor_msgs/msg/Image")
    if video_topic:  # a video type the QA has no frame decoder for (foxglove's has one: robot_capture.video)
        w.add_topic("/camera/wrist/video", "vendor_msgs/msg/CompressedVideo")
        for k in range(10):
            ns = T0 + k * 100_000_000
            msgs.append((ns, "/camera/wrist/video", b"\x00\x01\x00\x00" + struct.pack("<iI", 1, k) + bytes(20)))
    for ns, topic, data in sorted(msgs, key=lambda x: x[0]):
        w.write(topic, data, ns, ns)
    w.close()
    return path


def _video(v):
    return sorted((f.check, f.severity) for f in v.findings if f.check in VIDEO)


def _qa(path):
    return qa_episode(path, expected={"/joint_states": 100.0, CAM: 30.0})


def test_written_clean_bag_passes_the_video_checks(tmp_path):
    v = _qa(_bag(tmp_path / "b"))
    assert _video(v) == [] and v.metrics["video"][CAM] == {"frames": 91, "sampled": 31, "bad": 0}


def test_frozen_needs_the_robot_to_move(tmp_path):
    """The same picture for 1.5 s: frozen while the joints move; nothing while the robot is still
    (a still scene seen by a noise-free camera repeats)."""
    freeze = lambda k, t: frame_image(min(t, 1.0))  # noqa: E731
    moving = _qa(_bag(tmp_path / "moving", freeze))
    assert _video(moving) == [("frozen", "fail")], moving.summary()
    f = next(f for f in moving.findings if f.check == "frozen")
    assert 1.8 <= f.figures["longest_s"] <= 2.1 and f.error_cause == "camera frozen", f.figures
    still = _qa(_bag(tmp_path / "still", freeze, still=True))
    assert _video(still) == [], still.summary()


def test_static_camera_warns_and_a_whole_frozen_camera_is_frozens(tmp_path):
    """One scene plus sensor noise (sigma 2 levels) all episode while the joints move 1 rad: static
    (warn), not frozen (no two frames are identical), not blur or dark."""
    rng = np.random.default_rng(0)
    scene = frame_image(0.5).astype(np.float64)
    noisy = lambda k, t: np.clip(scene + rng.normal(0, 2.0, scene.shape), 0, 255).astype(np.uint8)  # noqa: E731
    v = _qa(_bag(tmp_path / "static", noisy))
    assert _video(v) == [("static", "warn")], v.summary()
    assert v.error_cause == "camera frozen" and "does not change while the robot" in v.reasons[0]
    same = _qa(_bag(tmp_path / "same", lambda k, t: scene.astype(np.uint8)))
    assert _video(same) == [("frozen", "fail")], same.summary()


def test_overexposed_stretch_and_a_single_black_frame(tmp_path, capsys):
    from robot_capture.cli import main

    white = lambda k, t: np.full_like(frame_image(t), 255) if 1.0 <= t < 1.4 else frame_image(t)  # noqa: E731
    v = _qa(_bag(tmp_path / "white", white))
    assert _video(v) == [("exposure", "warn")] and "overexposed frames" in v.reasons[0], v.summary()
    assert v.error_cause == "camera overexposed"
    main(["qa", str(tmp_path / "white")])  # the CLI line names the cause
    assert "WARN white (camera overexposed)" in capsys.readouterr().out
    one = lambda k, t: np.zeros_like(frame_image(t)) if k == 30 else frame_image(t)  # noqa: E731
    v = _qa(_bag(tmp_path / "one", one))  # one sampled frame (0.1 s) is under video.stretch_warn_s
    assert _video(v) == [], v.summary()


def test_depth_frames_are_checked_for_length_not_judged_as_pictures(tmp_path):
    v = _qa(_bag(tmp_path / "depth", encoding="16UC1"))
    assert _video(v) == [], v.summary()
    assert v.metrics["video"][CAM]["pictures"] == "not judged (encoding)"


def test_a_camera_codec_without_a_decoder_is_said_not_judged(tmp_path):
    v = _qa(_bag(tmp_path / "video", video_topic=True))
    assert _video(v) == [], v.summary()
    assert v.metrics["video"]["/camera/wrist/video"] == {
        "frames": 10, "pictures": "not judged (no frame decoder for vendor_msgs/msg/CompressedVideo)"}


def _raw(h=4, w=5, enc="rgb8", step=None, n=None, frame_id="cam"):
    step = w * 3 if step is None else step
    n = h * step if n is None else n
    fid = frame_id.encode() + b"\0"
    b = bytearray(b"\x00\x01\x00\x00" + struct.pack("<iI", 1, 2) + struct.pack("<I", len(fid)) + fid)
    b += b"\0" * ((-(len(b) - 4)) % 4) + struct.pack("<II", h, w)
    e = enc.encode() + b"\0"
    b += struct.pack("<I", len(e)) + e + b"\0"
    b += b"\0" * ((-(len(b) - 4)) % 4) + struct.pack("<II", step, n) + bytes(range(256)) * (n // 256) + bytes(n % 256)
    return bytes(b)


def _jpeg_msg(data: bytes):
    fid, fmt = b"cam\0", b"jpeg\0"
    b = bytearray(b"\x00\x01\x00\x00" + struct.pack("<iI", 1, 2) + struct.pack("<I", len(fid)) + fid)
    b += struct.pack("<I", len(fmt)) + fmt
    b += b"\0" * ((-(len(b) - 4)) % 4) + struct.pack("<I", len(data)) + data
    return bytes(b)


@pytest.mark.parametrize("msg,problem", [
    (_raw(), ""),
    (_raw(n=4 * 15 - 15), "45 bytes of pixels where 4 rows of 15 bytes (60) are due for rgb8 5x4"),
    (_raw(step=12), "step 12 bytes is less than width 5 x 3 bytes of rgb8"),
    (_raw(enc="rgb9"), "unknown image encoding 'rgb9'"),
    (_raw(h=0), "empty image 5x0"),
    (_raw(enc="16UC1", step=10), ""),
])
def test_raw_frame_structure(msg, problem):
    assert F.structure_problem("sensor_msgs/msg/Image", msg[:160], len(msg), lambda: msg) == problem


def test_raw_frame_truncated_and_compressed_structure():
    import cv2

    full = _raw(h=20, w=20)
    cut = full[:-7]
    assert "truncated message" in F.structure_problem("sensor_msgs/msg/Image", cut[:160], len(cut), lambda: cut)
    jpg = cv2.imencode(".jpg", frame_image(0.3))[1].tobytes()
    png = cv2.imencode(".png", frame_image(0.3))[1].tobytes()
    typ = "sensor_msgs/msg/CompressedImage"
    for data, problem in ((jpg, ""), (png, ""), (jpg[:len(jpg) // 2], "JPEG without its end marker (truncated)"),
                          (png[:-12], "PNG without its IEND chunk (truncated)"), (b"hello world",
                          "11 bytes that are neither JPEG nor PNG"), (b"", "empty compressed image")):
        m = _jpeg_msg(data)
        assert F.structure_problem(typ, m[:160], len(m), lambda m=m: m) == problem
    # a JPEG with intact markers but garbage inside is caught by the full decode of a sampled frame
    bad = jpg[:2] + b"\x00" * (len(jpg) - 4) + jpg[-2:]
    with pytest.raises(F.FrameError, match="does not decode"):
        F.DECODERS[typ].factory(0)(_jpeg_msg(bad))
    assert F.DECODERS[typ].factory(0)(_jpeg_msg(jpg)).shape == (64, 96)


def test_a_sequential_decoder_plugs_in_by_message_type():
    """An inter-frame codec (H.264 CompressedVideo) gets every frame in order up to the last
    sampled one; only the sampled frames come out; its own exception is a bad frame, not a crash."""
    fed = []

    def factory(max_width):
        def decode(b):
            fed.append(b)
            if b == b"bad":
                raise RuntimeError("decoder error")
            return np.full((2, 2), len(fed), np.uint8)
        return decode

    class Data:
        topics = {"/v": "test_msgs/msg/Video"}

        def payloads(self, topic, idx):
            return [b"bad" if i == 4 else bytes([i]) for i in idx]

    F.register_decoder("test_msgs/msg/Video", factory, sequential=True)
    try:
        out = list(F.sampled_frames(Data(), "/v", F.sample_indices(9, 30.0, 10.0), np.arange(9) * 10))
    finally:
        del F.DECODERS["test_msgs/msg/Video"]
    assert [fr.index for fr in out] == [0, 3, 6] and len(fed) == 7
    assert [int(fr.luma[0, 0]) for fr in out] == [1, 4, 7]
    assert F.sample_indices(10, 0.0, 10.0).tolist() == list(range(10))


def test_video_thresholds_are_validated(tmp_path):
    cfg = load_config()
    assert cfg.video.flat_fraction == 0.98 and cfg.video.dark_luma == 16 and cfg.video.sample_hz == 10.0
    for text, words in (("video: {blur_fraction: .nan}\n", "blur_fraction"),
                        ("video: {dark_luma: 300}\n", "dark_luma"),
                        ("video: {sample_hz: 0}\n", "sample_hz"),
                        ("video: {sampel_hz: 5}\n", "did you mean")):
        p = tmp_path / "qa.yaml"
        p.write_text(text)
        with pytest.raises(ConfigError) as e:
            load_config(p)
        assert words in str(e.value) and len(str(e.value).splitlines()) == 1, str(e.value)


def test_error_cause_is_derived_and_old_qa_json_loads(tmp_path):
    from robot_capture.qa.causes import cause_of, rank

    old = {"format": "robot_capture.qa/1", "verdict": "fail", "source": "qa", "qa_version": "1",
           "findings": [{"check": "gaps", "severity": "warn", "message": "m", "topic": "/camera/x/image_raw"},
                        {"check": "exposure", "severity": "fail", "message": "m", "topic": "/camera/x/image_raw"},
                        {"check": "labels", "severity": "fail", "message": "m"}]}
    (tmp_path / "qa.json").write_text(json.dumps(old))
    v = read_verdict(tmp_path)
    assert v.error_cause == "camera dark" and v.to_dict()["error_cause"] == "camera dark"  # priority over labels
    assert Verdict().error_cause == "" and Verdict([Finding("x", "warn", "m")]).error_cause == "other"
    assert cause_of(Finding("presence", "fail", "m", "/vr/left_wrist")) == "tracking lost"
    assert cause_of(Finding("gaps", "fail", "m", "/exo/joint_states")) == "tracking lost"
    assert cause_of(Finding("gaps", "fail", "m", "/joint_states")) == "stream lost"
    assert cause_of(Finding("retarget", "warn", "m", "/c", {"joint": "j", "duration_s": 0.3})) == "robot fault"
    assert cause_of(Finding("retarget", "warn", "m", "/c", {"wrist_error_p95_m": 0.07})) == "retarget error"
    assert cause_of(Finding("presence", "fail", "m", "/joint_states"), stop_reason="discarded") == "operator abort"
    assert rank(["camera dark", "", "stream lost", "camera dark", "decode error"]) == [
        ("camera dark", 2), ("stream lost", 1), ("decode error", 1)]
