"""Video in the bag: Recorder + VideoStage write foxglove_msgs/msg/CompressedVideo that our reader,
mcap, rosbags and Foxglove's own decoders read; each split file decodes on its own; stop drains."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from _video_frames import frame, image_msg, psnr
from robot_capture.bag import BagReader, WriterOptions
from robot_capture.record.episode import EpisodeInfo
from robot_capture.record.recorder import Recorder
from robot_capture.video.decode import VideoDecoder, decode_frames, is_keyframe
from robot_capture.video.encode import EncoderSettings
from robot_capture.video.msgdef import COMPRESSED_VIDEO, VENDORED, parse_compressed_video
from robot_capture.video.stage import VideoStage

CAM = "/camera/head/image_raw"
# sensor_msgs/JointState CDR: stamp 0, frame_id "", four empty sequences
EMPTY_JOINT_STATE = b"\x00\x01\x00\x00" + b"\x00" * 8 + b"\x01\x00\x00\x00\x00" + b"\x00" * 3 + b"\x00" * 16
FOXGLOVE_TOOL = Path(os.environ.get("ROBOT_CAPTURE_FOXGLOVE_CHECK",
                                    Path(__file__).resolve().parents[2] / "shared" / "tools" / "foxglove"))


def _record(tmp_path, n_before_split=45, n_after=40, settings=None, stage_kw=None):
    rec = Recorder(tmp_path, WriterOptions(), disk_min_free_bytes=0)
    # a queue for every frame: the test submits faster than real time (what overruns do is tested below)
    stage = VideoStage(rec, {CAM: settings or EncoderSettings(hardware="off")}, **(stage_kw or {"queue_frames": 256}))
    assert stage.add_topic(CAM)
    rec.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    bag = rec.start_episode(EpisodeInfo(task="video"))
    t = 0
    for i in range(n_before_split + n_after):
        if i == n_before_split:
            stage.drain()
            rec.split()
        t += 33_000_000
        stage.submit(CAM, image_msg(i), 1_700_000_000_000_000_000 + t, None, i + 1, b"p" * 16)
        rec.on_message("/joint_states", "sensor_msgs/msg/JointState", EMPTY_JOINT_STATE,
                       1_700_000_000_000_000_000 + t)
    rec.stop_episode(True)   # drains the encoder queue first (before_close)
    stage.close()
    return rec, bag


def test_every_frame_is_in_the_bag_as_compressed_video(tmp_path):
    rec, bag = _record(tmp_path)
    r = BagReader(bag)
    assert r.topics[CAM].type == COMPRESSED_VIDEO
    msgs = list(r.messages(topics=[CAM]))
    assert len(msgs) == 85  # stop waited for the queue: nothing received before the stop is missing
    out = list(decode_frames(msgs))
    assert len(out) == 85 and min(psnr(img, frame(i)) for i, (_s, img) in enumerate(out)) >= 30.0
    assert rec.stats[CAM].drops == 0


def test_each_split_file_starts_with_a_keyframe_and_decodes_alone(tmp_path):
    from mcap.reader import make_reader

    _rec, bag = _record(tmp_path)
    files = sorted(bag.glob("*.mcap"))
    assert len(files) == 2
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            data = [m.data for _s, ch, m in make_reader(fh).iter_messages() if ch.topic == CAM]
        assert is_keyframe(parse_compressed_video(data[0])[2]), f.name
        dec = VideoDecoder()
        total += len(list(decode_frames(data, dec)))
        assert dec.skipped == 0 and dec.errors == 0
    assert total == 85


def test_mcap_and_rosbags_decode_without_a_ros_package(tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.highlevel import AnyReader

    _rec, bag = _record(tmp_path, 20, 0)
    f = sorted(bag.glob("*.mcap"))[0]
    with open(f, "rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        schema = next(s for s in reader.get_summary().schemas.values() if s.name == COMPRESSED_VIDEO)
        assert schema.encoding == "ros2msg" and schema.data.decode() == VENDORED[COMPRESSED_VIDEO]
        decoded = [m for _s, ch, _r, m in reader.iter_decoded_messages(topics=[CAM])]
    assert len(decoded) == 20 and decoded[0].format == "h264" and decoded[0].frame_id == "head_optical"
    assert decoded[1].timestamp.sec == 1_700_000_000 and len(decoded[0].data) > 0
    with AnyReader([bag]) as ar:
        conns = [c for c in ar.connections if c.topic == CAM]
        msgs = [ar.deserialize(raw, c.msgtype) for c, _t, raw in ar.messages(connections=conns)]
    assert len(msgs) == 20 and msgs[0].format == "h264"
    assert bytes(msgs[0].data) == bytes(decoded[0].data)


def _foxglove_tool() -> Path:
    """A folder holding test/foxglove_video_check.mjs next to the npm packages of the shared Foxglove
    check (linked when the shared folder has them, else installed once into the cache; the shared
    folder is read-only)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "robot_capture" / "foxglove_check"
    cache.mkdir(parents=True, exist_ok=True)
    for src in (FOXGLOVE_TOOL / "package.json", FOXGLOVE_TOOL / "yaml_min.cjs",
                Path(__file__).with_name("foxglove_video_check.mjs")):
        (cache / src.name).unlink(missing_ok=True)  # the shared files are read-only: never copy their mode
        shutil.copyfile(src, cache / src.name)
    mods = cache / "node_modules"
    if mods.is_symlink() and not mods.exists():  # a link to a shared folder that is gone
        mods.unlink()
    if not mods.exists():
        if (FOXGLOVE_TOOL / "node_modules").is_dir():
            mods.symlink_to(FOXGLOVE_TOOL / "node_modules")
        elif not shutil.which("node") or not shutil.which("npm"):
            pytest.skip("node/npm not installed: the Foxglove decoder check cannot run")
        else:
            subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=cache, check=True, capture_output=True,
                           timeout=600)
    return cache


def test_foxglove_decoders_accept_every_message(tmp_path):
    _rec, bag = _record(tmp_path, 30, 15)
    tool = _foxglove_tool()
    p = subprocess.run(["node", str(tool / "foxglove_video_check.mjs"), str(bag)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0 and "RESULT: all OK" in p.stdout, p.stdout[-3000:] + p.stderr[-2000:]
    line = next(x for x in p.stdout.splitlines() if CAM in x and COMPRESSED_VIDEO in x)
    assert "decoded=45 err=0" in line, line
    assert p.stdout.count("is an IDR with SPS") == 2  # both split files start with a keyframe


def test_idle_frames_are_not_encoded_and_bad_frames_are_counted(tmp_path):
    rec = Recorder(tmp_path, WriterOptions(), disk_min_free_bytes=0)
    stage = VideoStage(rec, {CAM: EncoderSettings(hardware="off")})
    stage.add_topic(CAM)
    stage.submit(CAM, image_msg(0), 1)   # idle: statistics only
    assert stage.cameras[CAM].encoder.frames == 0 and rec.stats[CAM].received == 1
    bag = rec.start_episode(EpisodeInfo(task="bad"))
    stage.submit(CAM, image_msg(1).replace(b"rgb8\x00", b"rgbX\x00"), 2)
    for i in range(2, 5):
        stage.submit(CAM, image_msg(i), 3 + i)
    for i in range(5, 8):
        stage.submit(CAM, image_msg(i, h=480, w=640), 3 + i)
    rec.stop_episode(None)
    stage.close()
    problems = BagReader(bag).metadata_records()["recorder_problems"]
    assert problems[f"problems/{CAM}/pixel_format"] == "1"
    assert problems[f"problems/{CAM}/resolution_change"] == "1"
    out = list(decode_frames(BagReader(bag).messages(topics=[CAM])))
    assert [img.shape[:2] for _s, img in out] == [(240, 320)] * 3 + [(480, 640)] * 3


def test_a_camera_whose_encoder_fails_is_refused_not_recorded_raw(tmp_path, monkeypatch):
    from robot_capture.video import encode as enc_mod

    monkeypatch.setattr(enc_mod, "_open", lambda name, *a, **k: (_ for _ in ()).throw(ValueError(name)))
    rec = Recorder(tmp_path, WriterOptions(), disk_min_free_bytes=0)
    stage = VideoStage(rec, {CAM: EncoderSettings(hardware="off")})
    assert CAM in stage.errors and "not usable" in stage.errors[CAM]
    stage.add_topic(CAM)
    bag = rec.start_episode(EpisodeInfo(task="noenc"))
    stage.submit(CAM, image_msg(0), 1)
    rec.stop_episode(None)
    r = BagReader(bag)
    assert list(r.messages(topics=[CAM])) == []
    assert r.metadata_records()["recorder_problems"][f"problems/{CAM}/encoder_unavailable"] == "1"


def test_qa_reads_the_frame_stamps_of_a_video_topic(tmp_path):
    from robot_capture.qa.bagdata import BagData

    _rec, bag = _record(tmp_path, 12, 0)
    with BagData(bag) as d:
        assert d.has_header(CAM)
        stamps = d.stamps(CAM)
    assert stamps is not None and list(stamps) == [1_700_000_000_000_000_000 + int(i * 1e9 / 30) for i in range(12)]


def test_report_thumbnails_decode_a_video_camera(tmp_path):
    import types

    import cv2

    from robot_capture.qa.bagdata import BagData
    from robot_capture.qa.plots import thumbnail_strip

    _rec, bag = _record(tmp_path, 40, 0)
    with BagData(bag) as d:
        png = thumbnail_strip(types.SimpleNamespace(data=d), CAM, n=6, height=72)
    assert png is not None
    strip = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert strip.shape[0] == 72 and strip.shape[1] == 6 * 96 + 5 * 3  # six 320x240 frames at 72 px high
    first = cv2.resize(frame(0), (96, 72), interpolation=cv2.INTER_AREA)
    assert psnr(strip[:, :96, ::-1], first) >= 30.0


@pytest.mark.parametrize("opts", [{"max_bag_duration_s": 0.5}, {"max_bag_size": 150_000}])
def test_splits_by_duration_or_size_start_each_file_with_a_keyframe(tmp_path, opts):
    from mcap.reader import make_reader

    rec = Recorder(tmp_path, WriterOptions(**opts), disk_min_free_bytes=0)
    stage = VideoStage(rec, {CAM: EncoderSettings(hardware="off")}, queue_frames=256)
    stage.add_topic(CAM)
    rec.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    bag = rec.start_episode(EpisodeInfo(task="autosplit"))
    t0 = 1_700_000_000_000_000_000
    for i in range(90):
        for j in range(10):  # 300 Hz joints between frames: they, too, can be the write that splits
            rec.on_message("/joint_states", "sensor_msgs/msg/JointState", EMPTY_JOINT_STATE + b"\0" * 400,
                           t0 + i * 33_000_000 + j * 3_300_000)
        stage.submit(CAM, image_msg(i), t0 + i * 33_000_000 + 1)
    rec.stop_episode(True)
    stage.close()
    files = sorted(bag.glob("*.mcap"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    assert len(files) >= 3
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            data = [m.data for _s, ch, m in make_reader(fh).iter_messages(log_time_order=True) if ch.topic == CAM]
        if not data:
            continue
        assert is_keyframe(parse_compressed_video(data[0])[2]), f.name
        dec = VideoDecoder()
        total += len(list(decode_frames(data, dec)))
        assert dec.skipped == 0 and dec.errors == 0, f.name
    stamps = [parse_compressed_video(m.data)[0] for m in BagReader(bag).messages(topics=[CAM])]
    assert total == len(stamps) == 90 and len(set(stamps)) == 90  # every picture once: none lost, none twice


def test_qa_video_checks_decode_sampled_frames_of_a_video_camera(tmp_path):
    import cv2

    from robot_capture.qa import frames as F
    from robot_capture.qa.bagdata import BagData

    _rec, bag = _record(tmp_path, 40, 0)
    with BagData(bag) as d:
        idx = F.sample_indices(d.count(CAM), 30.0, 10.0)
        got = list(F.sampled_frames(d, CAM, idx, d.log_times(CAM), max_width=160))
    assert [f.index for f in got] == list(range(0, 40, 3)) and not [f.error for f in got if f.error]
    for f in got:  # luma at half size (max_width 160 of 320)
        want = cv2.cvtColor(cv2.resize(frame(f.index), (160, 120), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        assert f.luma.shape == (120, 160) and psnr(f.luma, want) >= 30.0
    # a stream that starts mid-GOP: frames before the first keyframe are decode errors, named
    dec = F.DECODERS[COMPRESSED_VIDEO].factory(0)
    msgs = [m.data for m in BagReader(bag).messages(topics=[CAM])]
    with pytest.raises(F.FrameError, match="before the first keyframe"):
        dec(msgs[5])
