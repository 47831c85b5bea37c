#!/usr/bin/env python3
"""Video at record time (issue 21): disk per camera-hour raw vs H.264, PSNR, frames lost, CPU.

What runs: the recorder core as the node uses it (``Recorder`` + ``VideoStage``, the same
per-camera encoder threads, libx264 ``ultrafast``/``zerolatency``, crf 23, keyframe every 1 s)
in a child process, fed on the wall clock with N cameras of 640x480 rgb8 at 30 Hz plus a
30-joint JointState at 1 kHz. DDS is not in the loop (``benchmarks/recorder_throughput.py``
measures the DDS receive path); the feed sends pre-serialized frames from a pool, so the
child's CPU is the recorder's (receive bookkeeping, encoding, bag writing) plus a small pacing loop.

Sources:
* ``synthetic``: the floor's synthetic camera (``robot_capture.sim.synthetic_camera.RobotView``,
  the G1's front view, joints swinging) plus Gaussian sensor noise (sigma 2 levels), a pool of
  90 frames (3 s) per camera;
* ``real``: a real photograph (matplotlib's sample ``grace_hopper.jpg``, a US Navy photo in the
  public domain) panned and zoomed as a hand-held camera would, sigma 2 noise. No licensed real
  video clip is available offline here; the key ``psnr_db_real_clip`` reports this pan.

Figures per run: GB per camera-hour (camera message bytes in the bag per frame x 30 Hz x 3600 s), recorder
CPU % of one core (child user+sys over the recording window, the stop excluded, /proc), frames lost (fed - in the
bag, encoder overruns included), PSNR (dB) of every decoded frame against the frame fed; and
the remux figure: the recorded H.264 packets muxed into an MP4 without re-encoding (the step a
LeRobot export by remux does; the ``export`` verb itself still decodes and re-encodes) in
recorded seconds per wall second.

    python benchmarks/video_bench.py                 # 60 s per run: 3 and 6 cameras, raw and h264
    python benchmarks/video_bench.py --duration 10

The last line is one JSON object with the keys gb_per_camera_hour_raw,
gb_per_camera_hour_encoded, psnr_db_real_clip, frames_lost, recorder_cpu_pct_3cam,
recorder_cpu_pct_6cam, export_x_realtime_remux (null = not measured; "notes" says why).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from _installed import require_installed

W, H, FPS, POOL = 640, 480, 30.0, 90

CHILD = r"""
import json, os, struct, sys, time
import numpy as np
from robot_capture.bag import WriterOptions
from robot_capture.record.episode import EpisodeInfo
from robot_capture.record.recorder import Recorder
from robot_capture.video.encode import EncoderSettings
from robot_capture.video.msgdef import serialize_image
from robot_capture.video.stage import VideoStage
out, pool_path, ncam, codec, duration = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
crf, preset = int(sys.argv[6]), sys.argv[7]
pool = np.load(pool_path)
cams = [f"/camera/cam{k}/image_raw" for k in range(ncam)]
rec = Recorder(out, WriterOptions(), disk_min_free_bytes=0)
stage = VideoStage(rec, {t: EncoderSettings(codec=codec, fps=30.0, hardware="off", crf=crf, preset=preset) for t in cams}) \
    if codec != "raw" else None
for t in cams:
    stage.add_topic(t) if stage else rec.add_topic(t, "sensor_msgs/msg/Image")
rec.add_topic("/joint_states", "sensor_msgs/msg/JointState")
js = b"\x00\x01\x00\x00" + b"\x00" * 8 + b"\x01\x00\x00\x00\x00\x00\x00\x00" + b"\x00" * 1400
bag = rec.start_episode(EpisodeInfo(task="video_bench"))
def cpu():
    with open(f"/proc/{os.getpid()}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
c0, w0 = cpu(), time.monotonic()
fed = 0
i = 0
last_k = -1
period = 0.001
while True:
    target = w0 + i * period
    if target - w0 >= duration:
        break
    while time.monotonic() < target:
        time.sleep(0.0002)
    now = time.time_ns()
    rec.on_message("/joint_states", "sensor_msgs/msg/JointState", js, now)
    k = int(i * period * 30.0)
    if k != last_k:
        last_k = k
        for c, t in enumerate(cams):
            img = pool[(k + 7 * c) % len(pool)]
            msg = serialize_image(k * 33_333_333 + c, "cam", img.tobytes(), img.shape[0], img.shape[1], "rgb8")
            if stage:
                stage.submit(t, msg, now, None, k + 1, b"pub" + bytes([c]) * 13)
            else:
                rec.on_message(t, "sensor_msgs/msg/Image", msg, now, None, k + 1, b"pub" + bytes([c]) * 13)
            fed += 1
    i += 1
c1, w1 = cpu(), time.monotonic()  # the recording window; the stop (drain, last chunks) is not in it
rec.stop_episode(True)
if stage:
    stage.close()
print(json.dumps({"bag": str(bag), "fed": fed, "cpu_pct": 100.0 * (c1 - c0) / (w1 - w0), "wall_s": w1 - w0}))
"""


def _synthetic_pool(rng):
    import numpy as np

    from robot_capture.sim.robots import load_robot
    from robot_capture.sim.synthetic_camera import RobotView

    model, _locked = load_robot("g1", "")
    view = RobotView(model, W, H, 90.0, view="front")
    names = list(model.joint_names)
    frames = []
    for k in range(POOL):
        ph = 2 * np.pi * k / POOL
        q = [0.6 * np.sin(ph + j) if ("shoulder" in n or "elbow" in n or "hip" in n) else 0.0
             for j, n in enumerate(names)]
        view.set_joint_positions(names, q)
        frames.append(view.render().copy())
    return _noisy(np.stack(frames), rng)


def _real_pool(rng):
    import cv2
    import matplotlib.cbook as cbook
    import numpy as np

    img = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))[:, :, ::-1]
    big = cv2.resize(img, (int(img.shape[1] * 1.6), int(img.shape[0] * 1.6)), interpolation=cv2.INTER_CUBIC)
    frames = []
    for k in range(POOL):  # a slow pan with a little zoom and hand shake
        s = 1.0 + 0.1 * np.sin(2 * np.pi * k / POOL)
        cw, ch = int(W / s), int(H / s)
        x = int((big.shape[1] - cw) * (0.5 + 0.45 * np.sin(2 * np.pi * k / POOL))) + int(rng.integers(-2, 3))
        y = int((big.shape[0] - ch) * (0.5 + 0.4 * np.cos(2 * np.pi * k / POOL)))
        x, y = min(max(x, 0), big.shape[1] - cw), min(max(y, 0), big.shape[0] - ch)
        frames.append(cv2.resize(big[y:y + ch, x:x + cw], (W, H), interpolation=cv2.INTER_LINEAR))
    return _noisy(np.stack(frames), rng)


def _noisy(frames, rng):
    import numpy as np

    return np.clip(frames.astype(np.int16) + rng.normal(0, 2.0, frames.shape).round().astype(np.int16), 0,
                   255).astype(np.uint8)


def _psnr_and_remux(bag: Path, pool, ncam: int) -> tuple[float, float, float]:
    """(mean PSNR dB, worst PSNR dB, recorded seconds per remux wall second) of camera 0."""
    import av
    import numpy as np

    from robot_capture.bag import BagReader
    from robot_capture.video.decode import decode_frames
    from robot_capture.video.msgdef import parse_compressed_video

    msgs = list(BagReader(bag).messages(topics=["/camera/cam0/image_raw"]))
    ps = []
    for stamp, img in decode_frames(msgs):
        ref = pool[(stamp // 33_333_333) % len(pool)].astype(np.float64)
        mse = float(np.mean((img.astype(np.float64) - ref) ** 2))
        ps.append(99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse))
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        with av.open(str(Path(d) / "remux.mp4"), "w") as out:
            st = out.add_stream("h264", rate=30)
            st.width, st.height, st.pix_fmt = W, H, "yuv420p"
            for k, m in enumerate(msgs):
                _s, _f, data, _fmt = parse_compressed_video(m.data)
                pkt = av.Packet(bytes(data))
                pkt.stream = st
                pkt.pts = pkt.dts = k
                pkt.time_base = Fraction(1, 30)
                out.mux(pkt)
        remux_s = time.perf_counter() - t0
    return float(np.mean(ps)), float(np.min(ps)), (len(msgs) / FPS) / remux_s


def _run(child, out: Path, pool_path: Path, ncam: int, codec: str, duration: float, crf: int,
         preset: str) -> dict:
    p = subprocess.run([sys.executable, "-c", child, str(out), str(pool_path), str(ncam), codec, str(duration),
                        str(crf), preset],
                       capture_output=True, text=True, timeout=duration * 4 + 300)
    if p.returncode:
        raise SystemExit(f"error: the recorder child failed ({codec}, {ncam} cameras): {p.stderr.strip()[-500:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    from robot_capture.bag import BagReader

    r = BagReader(res["bag"])
    cam_topics = [t for t in r.topics if t.startswith("/camera/")]
    in_bag = sum(r.topics[t].count for t in cam_topics)
    cam_bytes = sum(len(m.data) for m in r.messages(topics=cam_topics))
    res.update(ncam=ncam, codec=codec, in_bag=in_bag, lost=res["fed"] - in_bag,
               gb_per_cam_h=cam_bytes / max(1, in_bag) * FPS * 3600 / 1e9)  # bytes per frame x 30 Hz x 1 h
    return res


def main() -> int:
    require_installed()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per run (default 60)")
    ap.add_argument("--cameras", default="3,6", help="camera counts (default 3,6)")
    ap.add_argument("--crf", type=int, default=None, help="x264 crf (default: EncoderSettings().crf)")
    ap.add_argument("--preset", default=None, help="x264 preset (default: EncoderSettings().preset)")
    args = ap.parse_args()
    from robot_capture.video.encode import EncoderSettings

    args.crf = EncoderSettings().crf if args.crf is None else args.crf
    args.preset = args.preset or EncoderSettings().preset
    import numpy as np

    rng = np.random.default_rng(21)
    counts = [int(c) for c in args.cameras.split(",")]
    results, notes = [], {}
    with tempfile.TemporaryDirectory(prefix="video_bench_") as tmp:
        tmp = Path(tmp)
        pools = {"synthetic": _synthetic_pool(rng), "real": _real_pool(rng)}
        for name, pool in pools.items():
            np.save(tmp / f"{name}.npy", pool)
        plan = [("synthetic", n, c) for n in counts for c in ("raw", "h264")] + [("real", counts[0], "h264")]
        for source, ncam, codec in plan:
            out = tmp / f"{source}_{ncam}_{codec}"
            res = _run(CHILD, out, tmp / f"{source}.npy", ncam, codec, args.duration, args.crf,
                       args.preset)
            res["source"] = source
            if codec != "raw":
                res["psnr_mean"], res["psnr_min"], res["remux_x"] = _psnr_and_remux(Path(res["bag"]),
                                                                                   pools[source], ncam)
            results.append(res)
            print(f"{source:9s} {ncam} cam {codec:5s}: {res['gb_per_cam_h']:7.2f} GB/camera-hour  "
                  f"CPU {res['cpu_pct']:5.1f} % of a core  frames fed {res['fed']}, lost {res['lost']}"
                  + (f"  PSNR mean {res['psnr_mean']:.1f} dB (min {res['psnr_min']:.1f})  remux "
                     f"{res['remux_x']:.0f}x real time" if codec != "raw" else ""), flush=True)
            import shutil

            shutil.rmtree(out, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine)")

    def pick(source, codec, ncam=None):
        return [r for r in results if r["source"] == source and r["codec"] == codec
                and (ncam is None or r["ncam"] == ncam)]

    enc = [r for r in results if r["codec"] == "h264"]
    cpu = {n: (pick("synthetic", "h264", n) or [{}])[0].get("cpu_pct") for n in (3, 6)}
    for n in (3, 6):
        if cpu[n] is None:
            notes[f"recorder_cpu_pct_{n}cam"] = f"no {n}-camera run (--cameras)"
    notes["psnr_db_real_clip"] = "a real photo panned (matplotlib grace_hopper.jpg); no licensed real clip offline"
    notes["export_x_realtime_remux"] = ("H.264 packets muxed to MP4 without re-encoding (the remux step); the "
                                        "export verb itself still decodes and re-encodes")
    real = pick("real", "h264")
    print(json.dumps({
        "gb_per_camera_hour_raw": round(max(r["gb_per_cam_h"] for r in pick("synthetic", "raw")), 3),
        "gb_per_camera_hour_encoded": round(max(r["gb_per_cam_h"] for r in enc), 3),
        "psnr_db_real_clip": round(real[0]["psnr_mean"], 2) if real else None,
        "frames_lost": sum(r["lost"] for r in results),
        "recorder_cpu_pct_3cam": round(cpu[3], 1) if cpu[3] is not None else None,
        "recorder_cpu_pct_6cam": round(cpu[6], 1) if cpu[6] is not None else None,
        "export_x_realtime_remux": round(min(r["remux_x"] for r in enc), 1),
        "notes": notes,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
