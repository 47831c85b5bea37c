"""SIGKILL mid-episode with an H.264 camera (Recorder + VideoStage in a child process): after
``recover`` every recovered video frame decodes, from the episode's first keyframe on, with no
gap, and the frames lost are those of the last flush interval (DESIGN.md "SIGKILL") plus the
encoder queue. Kills at 3 points, one after a split; prints each trial's loss."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from robot_capture.bag import BagReader, recover
from robot_capture.bag.errors import IncompleteBagFileError
from robot_capture.video.decode import VideoDecoder, decode_frames, is_keyframe
from robot_capture.video.msgdef import parse_compressed_video

pytestmark = pytest.mark.timeout(240)
FLUSH_S = 1.0
QUEUE_S = 8 / 30  # VideoStage's default queue at 30 Hz: frames accepted but not yet encoded
CAM = "/camera/head/image_raw"

CHILD = textwrap.dedent("""
    import struct, sys, time
    import numpy as np
    from robot_capture.bag import WriterOptions
    from robot_capture.record.episode import EpisodeInfo
    from robot_capture.record.recorder import Recorder
    from robot_capture.video.encode import EncoderSettings
    from robot_capture.video.msgdef import serialize_image
    from robot_capture.video.stage import VideoStage
    out, split_s = sys.argv[1], float(sys.argv[2])
    rec = Recorder(out, WriterOptions(max_bag_duration_s=split_s), disk_min_free_bytes=0)
    stage = VideoStage(rec, {"%s": EncoderSettings(hardware="off")})
    stage.add_topic("%s")
    rec.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    y, x = np.mgrid[0:240, 0:320]
    bag = rec.start_episode(EpisodeInfo(task="sigkill_video"))
    print("STARTED", time.time_ns(), flush=True)
    t0 = time.monotonic()
    i = 0
    while True:  # 500 Hz joints + 30 Hz frames, paced on the wall clock
        target = t0 + i * 0.002
        while time.monotonic() < target:
            time.sleep(0.0002)
        now = time.time_ns()
        rec.on_message("/joint_states", "sensor_msgs/msg/JointState", struct.pack("<Q", i) + b"j" * 300, now)
        if i %% 17 == 0:
            img = np.stack([(x + i) %% 256, (y * 2) %% 256, np.full_like(x, 128)], -1).astype(np.uint8)
            stage.submit("%s", serialize_image(now, "head", img.tobytes(), 240, 320, "rgb8"), now)
            print("FRAME", now, flush=True)
        i += 1
""" % (CAM, CAM, CAM))


def _trial(tmp_path, name, split_s, kill_after_s):
    out = tmp_path / name
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out), str(split_s)], stdout=subprocess.PIPE,
                            text=True, cwd=str(tmp_path))
    last = started = None
    try:
        for line in proc.stdout:
            kind, ns = line.split()
            if kind == "STARTED":
                started = time.monotonic()
            elif kind == "FRAME":
                last = int(ns)
            if started is not None and time.monotonic() - started >= kill_after_s:
                proc.send_signal(signal.SIGKILL)
                break
        for line in proc.stdout.read().splitlines():
            kind, ns = line.split()
            if kind == "FRAME":
                last = max(last or 0, int(ns))
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    (bag,) = [p for p in out.iterdir() if p.is_dir()]
    try:
        BagReader(bag)
    except IncompleteBagFileError:
        pass
    recover(bag)
    return bag, last


@pytest.mark.parametrize("name,split_s,kill_after_s", [("mid_2.5", 0.0, 2.5), ("mid_4.0", 0.0, 4.0),
                                                       ("after_split", 1.5, 2.6)])
def test_sigkill_recovers_decodable_video(tmp_path, name, split_s, kill_after_s):
    bag, last_submitted = _trial(tmp_path, name, split_s, kill_after_s)
    msgs = list(BagReader(bag).messages(topics=[CAM]))
    assert msgs, f"{name}: no video frame recovered"
    assert is_keyframe(parse_compressed_video(msgs[0].data)[2])
    dec = VideoDecoder()
    frames = list(decode_frames(msgs, dec))
    # every recovered frame decodes: nothing after a flushed keyframe is missing its references
    assert len(frames) == len(msgs) and dec.skipped == 0 and dec.errors == 0
    stamps = [s for s, _ in frames]
    assert stamps == sorted(stamps)
    lost_s = (last_submitted - stamps[-1]) / 1e9
    print(f"{name}: {len(frames)} frames recovered and decoded, {lost_s:.3f} s of video lost")
    assert lost_s <= FLUSH_S + QUEUE_S, f"{name}: lost {lost_s:.3f} s"
