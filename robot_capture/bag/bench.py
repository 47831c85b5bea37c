"""Writer-only throughput: BagWriter against a plain ``mcap`` Writer, same settings, same run.

The load mirrors the recorder benchmark (issue 2): ``cameras`` x 640x480 rgb8 Image
at 30 Hz, a 30-joint JointState at 1 kHz and a 200 Hz exoskeleton JointState
(14 joints), for ``seconds`` of simulated time. Payloads are real CDR
(``rclpy.serialization``); a pool of 12 distinct noise images is cycled so that
memory stays bounded and no image repeats within a chunk. Both writers get identical messages, chunk size and chunk
compression; the plain writer gets the same schemas and channels (profile ros2).

Figures: payload MB/s over wall time and over process CPU time (the recorder's
limit is CPU, ENVIRONMENT.md), and mean CPU microseconds per ``write`` call.
Used by ``benchmarks/bag_writer_bench.py`` and ``benchmarks/recorder_throughput.py``.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

__all__ = ["make_load", "bench_bag_writer", "bench_plain_mcap", "compare_writers"]

_MB = 1e6


def make_load(seconds: float = 10.0, cameras: int = 3, joints: int = 30, t0_ns: int = 1_700_000_000_000_000_000):
    """The message stream: list of (topic, type, data, log_ns) sorted by time, and {topic: type}."""
    import numpy as np
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image, JointState

    types = {}
    streams = []
    pool = []
    rng = np.random.default_rng(0)
    for k in range(12):
        m = Image()
        m.height, m.width, m.encoding, m.step = 480, 640, "rgb8", 1920
        m.header.frame_id = "cam_optical_frame"
        m.data = rng.integers(0, 256, 480 * 640 * 3, dtype=np.uint8).tobytes()
        pool.append(serialize_message(m))
    for c in range(cameras):
        topic = f"/camera/cam{c}/image_raw"
        types[topic] = "sensor_msgs/msg/Image"
        n = int(seconds * 30)
        # consecutive images in the stream are distinct: no repeat within a chunk to flatter compression
        streams += [(t0_ns + int(i * 1e9 / 30) + c * 1000, topic, pool[(i * cameras + c) % 12]) for i in range(n)]

    def js(nj, i):
        m = JointState()
        m.name = [f"joint_{j}" for j in range(nj)]
        m.position = list(np.sin(np.arange(nj) + i * 1e-3))
        m.velocity = [0.0] * nj
        m.effort = [0.0] * nj
        return serialize_message(m)

    for topic, hz, nj in (("/joint_states", 1000, joints), ("/exo/joint_states", 200, 14)):
        types[topic] = "sensor_msgs/msg/JointState"
        samples = [js(nj, i) for i in range(16)]
        streams += [(t0_ns + int(i * 1e9 / hz), topic, samples[i % 16]) for i in range(int(seconds * hz))]
    streams.sort(key=lambda x: x[0])
    return [(topic, types[topic], data, t) for t, topic, data in streams], types


def _measure(write_all, n_msgs: int, n_bytes: int) -> dict:
    c0, w0 = time.process_time(), time.perf_counter()
    write_all()
    c1, w1 = time.process_time(), time.perf_counter()
    wall, cpu = w1 - w0, c1 - c0
    return {"wall_s": wall, "cpu_s": cpu, "mb_per_s_wall": n_bytes / _MB / wall,
            "mb_per_s_cpu": n_bytes / _MB / max(cpu, 1e-9), "us_per_msg_cpu": cpu / n_msgs * 1e6,
            "messages": n_msgs, "mbytes": n_bytes / _MB}


def bench_bag_writer(load, types, out_dir: Path, compression="none", level=None, chunk_size=4 << 20,
                     **options) -> dict:
    """Time BagWriter.write over ``load`` plus close(). Returns the figures dict."""
    from robot_capture.bag.writer import BagWriter, WriterOptions

    opts = WriterOptions(compression=compression, compression_level=level, chunk_size=chunk_size, **options)
    n_bytes = sum(len(x[2]) for x in load)
    bag = Path(out_dir) / "bagwriter"

    def run():
        w = BagWriter(bag, opts)
        for topic, type_name in types.items():
            w.add_topic(topic, type_name)
        write = w.write
        for topic, _type, data, t in load:
            write(topic, data, t, t)
        w.close()

    res = _measure(run, len(load), n_bytes)
    res["files"] = [str(p) for p in sorted(bag.glob("*.mcap"))]
    res["file_mb"] = sum(Path(p).stat().st_size for p in res["files"]) / _MB
    return res


def bench_plain_mcap(load, types, out_dir: Path, compression="none", level=None, chunk_size=4 << 20) -> dict:
    """Time a plain ``mcap.writer.Writer`` (ros2 profile, same schemas/channels/chunking) on ``load``.

    The plain writer has no compression-level setting; with a level it uses its default.
    """
    from mcap.writer import CompressionType, Writer

    from robot_capture.bag.msgdefs import definition_for

    comp = {"none": CompressionType.NONE, "lz4": CompressionType.LZ4, "zstd": CompressionType.ZSTD}[compression]
    n_bytes = sum(len(x[2]) for x in load)
    path = Path(out_dir) / "plain.mcap"

    def run():
        with open(path, "wb") as f:
            w = Writer(f, chunk_size=chunk_size, compression=comp)
            w.start(profile="ros2", library="plain mcap")
            sids, cids = {}, {}
            for topic, type_name in types.items():
                if type_name not in sids:
                    d = definition_for(type_name)
                    sids[type_name] = w.register_schema(type_name, d.encoding, d.text.encode())
                cids[topic] = w.register_channel(topic, "cdr", sids[type_name])
            add = w.add_message
            for topic, _type, data, t in load:
                add(cids[topic], t, data, t)
            w.finish()

    res = _measure(run, len(load), n_bytes)
    res["files"] = [str(path)]
    res["file_mb"] = path.stat().st_size / _MB
    return res


def compare_writers(seconds=10.0, cameras=3, compression="none", level=None, chunk_size=4 << 20,
                    out_dir=None, keep=False, load=None, fsync=False, repeat=2) -> dict:
    """Run both writers on the same load; returns {"bag_writer": {...}, "plain_mcap": {...}, "load": {...}}.

    Each writer runs ``repeat`` times, in alternating order (page-cache writeback left by
    one run is charged to the next), and the run with the least CPU time is reported.
    ``out_dir``: where to write (default: a temp dir); files are deleted after each run
    unless ``keep`` (then the last run's files stay, e.g. for validation).
    ``fsync``: BagWriter's periodic fdatasync (its default in recording). Off by default here
    because the plain writer never syncs, and writeback done inside fdatasync is charged to
    this process's CPU time.
    """
    if load is None:
        load, types = make_load(seconds, cameras)
    else:
        load, types = load
    tmp = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="bagbench_"))
    tmp.mkdir(parents=True, exist_ok=True)
    best: dict = {}
    kept: dict = {}
    try:
        for r in range(max(1, int(repeat))):
            order = ("plain_mcap", "bag_writer") if r % 2 == 0 else ("bag_writer", "plain_mcap")
            for name in order:
                d = tmp / f"{name}_{r}"
                d.mkdir(parents=True, exist_ok=True)
                if name == "plain_mcap":
                    res = bench_plain_mcap(load, types, d, compression, level, chunk_size)
                else:
                    res = bench_bag_writer(load, types, d, compression, level, chunk_size, fsync=fsync)
                last = r == max(1, int(repeat)) - 1
                if keep and last:
                    kept[name] = res["files"]
                else:
                    shutil.rmtree(d, ignore_errors=True)
                if name not in best or res["cpu_s"] < best[name]["cpu_s"]:
                    best[name] = res
        return {"load": {"seconds": seconds, "cameras": cameras, "messages": len(load),
                         "mbytes": sum(len(x[2]) for x in load) / _MB, "compression": compression,
                         "level": level, "chunk_size": chunk_size, "fsync": fsync, "repeat": repeat,
                         "dir": str(tmp)},
                "bag_writer": best["bag_writer"], "plain_mcap": best["plain_mcap"], "files_kept": kept}
    finally:
        if not keep and not out_dir:
            shutil.rmtree(tmp, ignore_errors=True)
