"""One bag -> one LeRobot episode: read the mapped streams, lay the frame grid, sample
every stream onto it and encode each camera (:mod:`.grid`, :mod:`.video`).

Two passes over the bag: the first parses every mapped numeric message and only the
header stamp of each camera message; the grid and the camera frame choice follow from
the stamps; the second pass decodes just the chosen camera frames and feeds the
encoders, so memory stays at one frame per camera whatever the episode length.

Errors: :class:`EpisodeError` (``kind`` ``error`` or ``skip``) with a one-line reason
for anything wrong with this bag; the caller records it and goes on with the next bag.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_capture.export import cdr, grid as gr
from robot_capture.export import stats as st
from robot_capture.export.mapping import FIELD_SUFFIX, Mapping, Resolved
from robot_capture.export.video import ThreadedEncoder, message_rgb

__all__ = ["EpisodeError", "Extracted", "bag_sha256", "extract_episode", "feature_defs"]


class EpisodeError(ValueError):
    """This episode cannot be exported. ``kind``: ``error`` (bad input) or ``skip``
    (nothing wrong, nothing to export, e.g. shorter than one frame period)."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


@dataclass
class Extracted:
    """An episode on the grid. ``columns``: key -> (N, D) float32; ``videos``: key ->
    temporary MP4 path; ``stats``: per-feature stats; ``names``: key -> names;
    ``shapes``: video key -> (H, W, 3); ``stale``: video key -> stale frame count;
    ``timings``: decode/align/encode seconds; ``recorded_s``: grid span in s."""

    grid: gr.Grid
    columns: dict = field(default_factory=dict)
    videos: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)
    shapes: dict = field(default_factory=dict)
    stale: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def recorded_s(self) -> float:
        return self.grid.n / self.grid.fps


def bag_sha256(bag: Path) -> str:
    """SHA-256 over the bag's ``.mcap`` files in split order (metadata.yaml and qa.json,
    which relabel and QA rewrite, are left out: the key names the recording)."""
    from robot_capture.bag.reader import list_mcap_files

    h = hashlib.sha256()
    for f in list_mcap_files(Path(bag)):
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def _numeric(type_name: str, data, fields: list[str], js_parser=None):
    """-> (stamp_ns, names or None, values (D,) float64) for one message."""
    if type_name == "sensor_msgs/msg/JointState":
        t, names, pos, vel, eff = (js_parser or cdr.joint_state)(data)
        parts = {"position": pos, "velocity": vel, "effort": eff}
        return t, names, [parts[f] for f in fields]
    if type_name == "geometry_msgs/msg/PoseStamped":
        t, p = cdr.pose_stamped(data)
        return t, None, [p]
    if type_name == "geometry_msgs/msg/PoseArray":
        t, p = cdr.pose_array(data)
        return t, None, [p.reshape(-1)]
    raise EpisodeError(f"message type {type_name} cannot be a numeric feature "
                       f"(supported: JointState, PoseStamped, PoseArray)")


class _Stream:
    def __init__(self, spec):
        self.spec = spec
        self.t: list[int] = []
        self.v: list[np.ndarray] = []
        self.names: list[str] | None = None
        self.order = None
        self.dim = None
        self.dropped = 0
        self._parser = cdr.JointStateParser()

    def add(self, data) -> None:
        t, names, parts = _numeric(self.spec.type, data, self.spec.fields, self._parser)
        if names is not None:
            if self.names is None:
                self.names = names
            elif names is not self.names and list(names) != self.names:
                idx = {n: i for i, n in enumerate(names)}
                missing = [n for n in self.names if n not in idx]
                if missing:
                    raise EpisodeError(f"{self.spec.topic}: a message lacks joints {missing[:3]}")
                order = np.array([idx[n] for n in self.names])
                parts = [p[order] if len(p) else p for p in parts]
            for f, p in zip(self.spec.fields, parts):
                if len(p) != len(self.names):
                    raise EpisodeError(f"{self.spec.topic}: {f} has {len(p)} values for {len(self.names)} joints")
        v = np.concatenate(parts) if len(parts) > 1 else np.asarray(parts[0], dtype=np.float64)
        if self.dim is None:
            self.dim = v.size
        if v.size != self.dim or v.size == 0:
            self.dropped += 1
            return
        self.t.append(t)
        self.v.append(v)

    def feature_names(self) -> list[str]:
        if self.names is not None:
            return [n + FIELD_SUFFIX[f] for f in self.spec.fields for n in self.names]
        n_pose = self.dim // 7
        poses = self.spec.names or [f"pose{i}" for i in range(n_pose)]
        if len(poses) != n_pose:
            raise EpisodeError(f"{self.spec.topic}: {n_pose} poses but the mapping names {len(poses)}")
        return [f"{p}.{c}" for p in poses for c in ("x", "y", "z", "qx", "qy", "qz", "qw")]


def feature_defs(ex: Extracted) -> dict:
    """The dataset features (info.json ``features``, without ``info``) of an extracted episode."""
    out = {}
    for k, a in ex.columns.items():
        out[k] = {"dtype": "float32", "shape": [int(a.shape[1])], "names": ex.names[k]}
    for k, shape in ex.shapes.items():
        out[k] = {"dtype": "video", "shape": list(shape), "names": ["height", "width", "channels"]}
    return out


def extract_episode(reader, mapping: Mapping, res: Resolved, tmpdir: Path, fps: int | None = None,
                    want: dict | None = None, progress=None, frame_sink=None) -> Extracted:
    """Sample one bag onto the grid and encode its cameras into ``tmpdir``.

    Args:
        reader: an open ``BagReader``. res: the mapping resolved against its topics.
        fps: grid rate (None: mapping.fps, else the primary camera's rate rounded).
        want: an existing dataset's features (names and shapes must match).
        progress: callable(desc, total) -> tqdm-like (update/close), or None.
        frame_sink: None (encode MP4s, ``ex.videos``), or ``callable(key, width, height, n_frames)
            -> sink`` with ``add((H, W, 3) uint8 RGB)``, ``close()``, ``abort()``: the grid's frames
            of each camera go there instead (the HDF5 writers, :mod:`.hdf5`).

    Raises:
        EpisodeError: bad or insufficient input (kind ``error``), or an episode shorter
            than one frame period (kind ``skip``).
    """
    timings = {"decode_s": 0.0, "align_s": 0.0, "encode_s": 0.0, "decode_cpu_s": 0.0, "encode_cpu_s": 0.0}
    t0, c0 = time.perf_counter(), time.thread_time()
    streams = {s.topic: _Stream(s) for s in res.streams}
    cam_t: dict[str, list[int]] = {c.topic: [] for c in res.cameras}
    topics = list(streams) + list(cam_t)
    for m in reader.messages(topics=topics):
        s = streams.get(m.topic)
        if s is not None:
            s.add(m.data)
        else:
            cam_t[m.topic].append(cdr.stamp_ns(m.data))
    timings["decode_s"] += time.perf_counter() - t0
    timings["decode_cpu_s"] += time.thread_time() - c0

    t1 = time.perf_counter()
    for s in streams.values():
        if not s.t:
            raise EpisodeError(f"{s.spec.topic}: no usable samples (feature {s.spec.key})")
    for c in res.cameras:
        if not cam_t[c.topic]:
            raise EpisodeError(f"camera {c.name}: no frames on {c.topic}")
    cam_stamps = {c.topic: np.asarray(cam_t[c.topic], dtype=np.int64) for c in res.cameras}
    primary = None
    if res.cameras:
        name = mapping.primary_camera or res.cameras[0].name
        prim = next((c for c in res.cameras if c.name == name), None)
        if prim is None:
            raise EpisodeError(f"primary camera {name!r} not in the bag (cameras: "
                               f"{', '.join(c.name for c in res.cameras)})")
        primary = np.sort(cam_stamps[prim.topic])
    if fps is None:
        fps = mapping.fps
    if fps is None:
        fps = int(round(gr.estimate_rate_hz(primary))) if primary is not None else mapping.default_fps
        if fps <= 0:
            raise EpisodeError("cannot tell the camera rate (fewer than 2 frames); give --fps")
    sorted_streams = {}
    for topic, s in streams.items():
        sorted_streams[topic] = gr.sort_samples(np.asarray(s.t, dtype=np.int64), np.stack(s.v))
    for topic in cam_stamps:
        cam_stamps[topic] = np.sort(cam_stamps[topic])
    firsts = [int(v[0][0]) for v in sorted_streams.values()] + [int(v[0]) for v in cam_stamps.values()]
    lasts = [int(v[0][-1]) for v in sorted_streams.values()] + [int(v[-1]) for v in cam_stamps.values()]
    try:
        grid = gr.make_grid(firsts, lasts, primary, int(fps))
    except gr.GridError as exc:
        kind = "skip" if "shorter than one frame period" in str(exc) else "error"
        raise EpisodeError(str(exc), kind=kind) from None
    ex = Extracted(grid=grid, timings=timings)
    gt = grid.times_ns
    for topic, (t, v) in sorted_streams.items():
        s = streams[topic]
        vals = gr.interpolate(t, v, gt) if s.spec.sample == "interpolate" else gr.hold(t, v, gt)
        ex.columns[s.spec.key] = vals.astype(np.float32)
        ex.names[s.spec.key] = s.feature_names()
        ex.stats[s.spec.key] = st.feature_stats(ex.columns[s.spec.key])
        if want is not None and want.get(s.spec.key, {}).get("names") not in (None, ex.names[s.spec.key]):
            raise EpisodeError(f"{topic}: names differ from the dataset's {s.spec.key} names")
    period = 1e9 / grid.fps
    choice = {}
    for c in res.cameras:
        sel, stale = gr.nearest_frames(cam_stamps[c.topic], gt, period)
        choice[c.topic] = sel
        ex.stale[c.key] = stale
    timings["align_s"] += time.perf_counter() - t1
    if res.cameras:
        _encode_cameras(reader, mapping, res, ex, cam_stamps, choice, tmpdir, want, progress, frame_sink)
    return ex


@dataclass
class _Decoded:
    topic: str
    stamp: int
    rgb: np.ndarray


def _camera_messages(reader, cams):
    """The cameras' bag messages in log order; a foxglove_msgs/msg/CompressedVideo topic's come out as
    decoded frames (:class:`_Decoded`): each frame needs the ones before it, so all are decoded and the
    chosen ones re-encoded (a remux of the recorded H.264 is not done yet)."""
    from robot_capture.video.decode import VideoDecoder
    from robot_capture.video.msgdef import COMPRESSED_VIDEO

    decoders = {t: VideoDecoder() for t, c in cams.items() if c.type == COMPRESSED_VIDEO}
    for m in reader.messages(topics=list(cams)):
        dec = decoders.get(m.topic)
        if dec is None:
            yield m
            continue
        try:
            frames = dec.decode(m.data)
        except ValueError as exc:
            raise EpisodeError(f"camera {cams[m.topic].name}: {exc}") from None
        for stamp, rgb in frames:
            yield _Decoded(m.topic, stamp, rgb)
    for t, dec in decoders.items():
        for stamp, rgb in dec.flush():
            yield _Decoded(t, stamp, rgb)


def _encode_cameras(reader, mapping, res, ex, cam_stamps, choice, tmpdir, want, progress, frame_sink=None) -> None:
    n = ex.grid.n
    vc = mapping.video
    cams = {c.topic: c for c in res.cameras}
    # messages come in log-time order; a message's rank in stamp order says which grid frames show it
    state = {}
    for topic, c in cams.items():
        stamps = cam_stamps[topic]
        state[topic] = {"k": 0, "sel": choice[topic], "enc": None, "samples": set(st.sample_indices(n)),
                        "frames": [], "stamps": stamps, "bar": progress(f"video {c.name}", n) if progress else None}
    tmpdir = Path(tmpdir)
    try:
        it = _camera_messages(reader, cams)
        c_start = time.thread_time()
        while True:
            t_dec = time.perf_counter()   # bag reading counts as decode
            m = next(it, None)
            if m is None:
                ex.timings["decode_s"] += time.perf_counter() - t_dec
                break
            s = state[m.topic]
            if s["k"] >= n:
                ex.timings["decode_s"] += time.perf_counter() - t_dec
                continue
            stamp = m.stamp if isinstance(m, _Decoded) else cdr.stamp_ns(m.data)
            rank = int(np.searchsorted(s["stamps"], stamp))
            if rank < s["sel"][s["k"]]:
                ex.timings["decode_s"] += time.perf_counter() - t_dec
                continue
            try:
                rgb = m.rgb if isinstance(m, _Decoded) else message_rgb(m.type or cams[m.topic].type, m.data)[1]
            except ValueError as exc:
                raise EpisodeError(f"camera {cams[m.topic].name}: {exc}") from None
            ex.timings["decode_s"] += time.perf_counter() - t_dec
            c = cams[m.topic]
            t_enc = time.perf_counter()
            if s["enc"] is None:
                shape = tuple(rgb.shape)
                if want is not None and c.key in want and tuple(want[c.key]["shape"]) != shape:
                    raise EpisodeError(f"camera {c.name}: {shape[1]}x{shape[0]} frames, the dataset has "
                                       f"{want[c.key]['shape'][1]}x{want[c.key]['shape'][0]}")
                ex.shapes[c.key] = shape
                path = tmpdir / (c.key + ".mp4")
                try:
                    s["enc"] = frame_sink(c.key, shape[1], shape[0], n) if frame_sink is not None else \
                        ThreadedEncoder(path, shape[1], shape[0], ex.grid.fps, codec=vc.codec,
                                        pix_fmt=vc.pix_fmt, gop=vc.gop, crf=vc.crf, preset=vc.preset)
                except ValueError as exc:
                    raise EpisodeError(f"camera {c.name}: {exc}") from None
                if frame_sink is None:
                    ex.videos[c.key] = path
            elif tuple(rgb.shape) != ex.shapes[c.key]:
                raise EpisodeError(f"camera {c.name}: frame size changed to {rgb.shape[1]}x{rgb.shape[0]}")
            while s["k"] < n and s["sel"][s["k"]] <= rank:
                s["enc"].add(rgb)
                if s["k"] in s["samples"]:
                    s["frames"].append(rgb.copy())
                s["k"] += 1
                if s["bar"] is not None:
                    s["bar"].update(1)
            ex.timings["encode_s"] += time.perf_counter() - t_enc
        ex.timings["decode_cpu_s"] += time.thread_time() - c_start
        for topic, s in state.items():
            c = cams[topic]
            if s["enc"] is None or s["k"] < n:
                raise EpisodeError(f"camera {c.name}: {s['k']} of {n} frames decoded (bag ended early)")
            t_enc = time.perf_counter()
            s["enc"].close()
            ex.timings["encode_s"] += time.perf_counter() - t_enc
            ex.timings["encode_cpu_s"] += getattr(s["enc"], "busy_cpu_s", 0.0)
            ex.stats[c.key] = st.image_stats(s["frames"])
    except BaseException:
        for s in state.values():
            if s["enc"] is not None:
                s["enc"].abort()
        raise
    finally:
        for s in state.values():
            if s["bar"] is not None:
                s["bar"].close()
