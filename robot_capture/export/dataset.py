"""Writing (and reading back) a LeRobot v3.0 dataset directory with pyarrow: the frame
parquet files, ``meta/episodes``, ``meta/tasks.parquet``, ``meta/info.json``,
``meta/stats.json`` and our provenance sidecar ``meta/robot_capture.json``.

Layout and names are lerobot v0.4.4's (``datasets/utils.py``, ``lerobot_dataset.py``):

* ``data/chunk-{c:03d}/file-{f:03d}.parquet``: one row per frame; ``timestamp`` float32
  = k / fps, ``frame_index``, ``episode_index``, ``index`` (global, contiguous),
  ``task_index`` int64, then one column per numeric feature (fixed-size list of float32);
* ``videos/<key>/chunk-{c:03d}/file-{f:03d}.mp4`` (written by :mod:`.video`);
* ``meta/episodes/chunk-{c:03d}/file-{f:03d}.parquet``: one row per episode with
  ``episode_index, tasks, length, data/chunk_index, data/file_index, dataset_from_index,
  dataset_to_index, videos/<key>/{chunk_index,file_index,from_timestamp,to_timestamp},
  stats/<feature>/<stat>, meta/episodes/{chunk_index,file_index}`` and our
  ``label/*``, ``qa/*``, ``source/*``, ``align/*`` columns;
* ``meta/tasks.parquet``: the task string is the **pandas index** (lerobot reads it with
  ``pd.read_parquet`` and looks tasks up by ``tasks.loc[task]``), ``task_index`` a column.
  Written with plain pyarrow plus the pandas schema metadata that makes it the index.

Files roll over at ``data_files_size_in_mb`` (100) / ``video_files_size_in_mb`` (200),
``chunks_size`` (1000) files per chunk. An export session into an existing dataset starts
new data, video and episode files after the last ones (as lerobot does when resuming),
so what is already there is never rewritten except the small meta files, which are
replaced atomically, ``info.json`` last.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robot_capture.atomic import write_bytes_atomic, write_text_atomic
from robot_capture.export import stats as st
from robot_capture.export.video import VideoAppender, video_info

__all__ = ["CODEBASE_VERSION", "DEFAULT_FEATURES", "DatasetWriter", "DatasetState", "read_dataset",
           "EpisodeParts", "VideoSegment", "SIDE_CAR", "data_path", "video_path", "write_tasks", "read_tasks"]

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_MB = 100
VIDEO_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
SIDE_CAR = "meta/robot_capture.json"
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


def data_path(c: int, f: int) -> str:
    return DATA_PATH.format(chunk_index=c, file_index=f)


def video_path(key: str, c: int, f: int) -> str:
    return VIDEO_PATH.format(video_key=key, chunk_index=c, file_index=f)


def _next(c: int, f: int) -> tuple[int, int]:
    return (c + 1, 0) if f == CHUNKS_SIZE - 1 else (c, f + 1)


def _atomic_json(path: Path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(doc, indent=4, ensure_ascii=False) + "\n", fsync=False)


def _atomic_parquet(path: Path, table: pa.Table) -> None:
    """Write ``table`` as ``path`` (a small metadata table) in one atomic replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    write_bytes_atomic(path, buf.getvalue().to_pybytes(), fsync=False)


def write_tasks(path: Path, tasks: list[str]) -> None:
    """``meta/tasks.parquet``: task strings as the pandas index (``__index_level_0__``, as
    ``pd.DataFrame({"task_index": ...}, index=tasks).to_parquet()`` writes it)."""
    pandas_meta = {
        "index_columns": ["__index_level_0__"], "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object", "metadata": None}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None}],
        "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3"}
    schema = pa.schema([("task_index", pa.int64()), ("__index_level_0__", pa.string())],
                       metadata={b"pandas": json.dumps(pandas_meta).encode()})
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "__index_level_0__": pa.array(tasks, pa.string())}, schema=schema)
    _atomic_parquet(path, table)


def read_tasks(path: Path) -> list[str]:
    """Task strings in task_index order (reads what :func:`write_tasks` or pandas wrote)."""
    t = pq.read_table(path)
    names = [n for n in t.column_names if n != "task_index"]
    if not names:
        raise ValueError(f"{path}: no task column (the task string must be the index)")
    tasks = t.column(names[0]).to_pylist()
    idx = t.column("task_index").to_pylist()
    return [s for _i, s in sorted(zip(idx, tasks))]


@dataclass
class VideoSegment:
    """Frames ``[start_frame, start_frame + n_frames)`` of an encoded MP4 (starting on a keyframe)."""

    path: Path
    start_frame: int
    n_frames: int


@dataclass
class EpisodeParts:
    """One episode ready to be written.

    ``columns``: numeric feature -> (N, D) float32; ``videos``: video key -> segment;
    ``stats``: feature -> stats dict (numeric and video features; the writer adds the
    default columns'); ``extra``: our episode columns (str/int/float values);
    ``provenance``: the sidecar entry (JSON-able); ``sha256``: the source bag's key.
    """

    task: str
    length: int
    columns: dict
    videos: dict
    stats: dict
    extra: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    sha256: str = ""


@dataclass
class DatasetState:
    """What is on disk: info.json, tasks, episode rows (all meta/episodes files, by
    episode_index), aggregated stats and the sidecar."""

    root: Path
    info: dict
    tasks: list[str]
    episodes: list[dict]
    stats: dict
    sidecar: dict

    @property
    def features(self) -> dict:
        return self.info["features"]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] == "video"]

    @property
    def sources(self) -> dict[str, int]:
        """source bag sha256 -> episode_index."""
        return {e["source/sha256"]: e["episode_index"] for e in self.episodes if e.get("source/sha256")}


def read_dataset(root: Path) -> DatasetState:
    """Read a dataset's meta files. Raises FileNotFoundError / ValueError (not v3.0)."""
    root = Path(root)
    info = json.loads((root / "meta" / "info.json").read_text())
    if info.get("codebase_version") != CODEBASE_VERSION:
        raise ValueError(f"{root}: LeRobot {info.get('codebase_version')} dataset; only {CODEBASE_VERSION} is supported")
    tasks = read_tasks(root / "meta" / "tasks.parquet") if (root / "meta" / "tasks.parquet").exists() else []
    rows: list[dict] = []
    for p in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        rows.extend(pq.read_table(p).to_pylist())
    rows.sort(key=lambda r: r["episode_index"])
    stats_p = root / "meta" / "stats.json"
    stats = st.from_json(json.loads(stats_p.read_text())) if stats_p.exists() else {}
    side_p = root / SIDE_CAR
    sidecar = json.loads(side_p.read_text()) if side_p.exists() else {}
    return DatasetState(root=root, info=info, tasks=tasks, episodes=rows, stats=stats, sidecar=sidecar)


def episode_stats_from_row(row: dict) -> dict[str, dict[str, np.ndarray]]:
    """The ``stats/<feature>/<stat>`` columns of an episode row -> nested arrays."""
    out: dict = {}
    for k, v in row.items():
        if k.startswith("stats/") and v is not None:
            _s, feat, stat = k.split("/", 2)
            out.setdefault(feat, {})[stat] = np.asarray(v)
    return out


def _arrow_type(ft: dict):
    base = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}[ft["dtype"]]
    shape = list(ft["shape"])
    return base if shape == [1] else pa.list_(base, shape[0])


class DatasetWriter:
    """Append episodes to a new or existing dataset at ``root``.

    Args:
        features: the feature dict (without the default columns) for a new dataset; for
            an existing one it must be equal to what info.json has.
        fps, robot_type: for a new dataset.

    Raises:
        ValueError: an existing dataset has other features or another fps.
    """

    def __init__(self, root: Path, fps: int, features: dict, robot_type: str | None = None,
                 data_mb: int = DATA_MB, video_mb: int = VIDEO_MB):
        self.root = Path(root)
        full = {**features, **DEFAULT_FEATURES}
        if (self.root / "meta" / "info.json").exists():
            self.state = read_dataset(self.root)
            have = {k: {kk: vv for kk, vv in f.items() if kk != "info"} for k, f in self.state.features.items()}
            want = {k: {kk: (list(vv) if kk == "shape" else vv) for kk, vv in f.items() if kk != "info"}
                    for k, f in full.items()}
            if have != want:
                diff = sorted(set(have) ^ set(want)) or sorted(k for k in have if have[k] != want.get(k))
                raise ValueError(f"{self.root}: the dataset has other features than this export ({', '.join(diff)})")
            if int(self.state.info["fps"]) != int(fps):
                raise ValueError(f"{self.root}: the dataset is at {self.state.info['fps']} fps, this export at {fps}")
        else:
            info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": 0,
                    "total_frames": 0, "total_tasks": 0, "chunks_size": CHUNKS_SIZE,
                    "data_files_size_in_mb": data_mb, "video_files_size_in_mb": video_mb, "fps": int(fps),
                    "splits": {}, "data_path": DATA_PATH,
                    "video_path": VIDEO_PATH if any(f["dtype"] == "video" for f in full.values()) else None,
                    "features": {k: {**f, "shape": list(f["shape"])} for k, f in full.items()}}
            self.state = DatasetState(root=self.root, info=info, tasks=[], episodes=[], stats={}, sidecar={})
        self.fps = int(self.state.info["fps"])
        self.data_mb = int(self.state.info.get("data_files_size_in_mb", data_mb))
        self.video_mb = int(self.state.info.get("video_files_size_in_mb", video_mb))
        feats = self.state.features
        self.numeric = [k for k, f in feats.items() if f["dtype"] != "video" and k not in DEFAULT_FEATURES]
        self.video_keys = self.state.video_keys
        self.schema = pa.schema([(k, _arrow_type(feats[k])) for k in
                                 ["timestamp", "frame_index", "episode_index", "index", "task_index", *self.numeric]])
        last = self.state.episodes[-1] if self.state.episodes else None
        self._data_cf = _next(last["data/chunk_index"], last["data/file_index"]) if last else (0, 0)
        self._video_cf = {k: (_next(last[f"videos/{k}/chunk_index"], last[f"videos/{k}/file_index"]) if last
                              else (0, 0)) for k in self.video_keys}
        ep_files = sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        self._meta_cf = _next(int(ep_files[-1].parent.name[6:]), int(ep_files[-1].stem[5:])) if ep_files else (0, 0)
        self._data_writer: pq.ParquetWriter | None = None
        self._videos: dict[str, VideoAppender] = {}
        self._new_rows: list[dict] = []
        self._new_stats: list[dict] = []
        self.closed = False

    # ---- bookkeeping --------------------------------------------------------------------
    @property
    def sources(self) -> dict[str, int]:
        out = self.state.sources
        out.update({r["source/sha256"]: r["episode_index"] for r in self._new_rows if r.get("source/sha256")})
        return out

    @property
    def total_episodes(self) -> int:
        return len(self.state.episodes) + len(self._new_rows)

    @property
    def total_frames(self) -> int:
        rows = self._new_rows or self.state.episodes
        return rows[-1]["dataset_to_index"] if rows else 0

    def _task_index(self, task: str) -> int:
        if task not in self.state.tasks:
            self.state.tasks.append(task)
        return self.state.tasks.index(task)

    # ---- writing ------------------------------------------------------------------------
    def _data_file(self) -> pq.ParquetWriter:
        if self._data_writer is not None and self._data_path.stat().st_size >= self.data_mb * 1024 * 1024:
            self._data_writer.close()
            self._data_writer = None
            self._data_cf = _next(*self._data_cf)
        if self._data_writer is None:
            self._data_path = self.root / data_path(*self._data_cf)
            self._data_path.parent.mkdir(parents=True, exist_ok=True)
            self._data_writer = pq.ParquetWriter(self._data_path, self.schema, compression="snappy")
        return self._data_writer

    def _video_file(self, key: str, add_bytes: int) -> VideoAppender:
        app = self._videos.get(key)
        if app is not None and app.frames and app.size_bytes + add_bytes >= self.video_mb * 1024 * 1024:
            app.close()
            app = None
            self._video_cf[key] = _next(*self._video_cf[key])
        if app is None:
            app = self._videos[key] = VideoAppender(self.root / video_path(key, *self._video_cf[key]), self.fps)
        return app

    def add_episode(self, ep: EpisodeParts) -> int:
        """Write one episode (frames, video segments, its meta row); returns its episode_index.

        Raises:
            ValueError: a feature column or video is missing or has the wrong shape.
        """
        n = int(ep.length)
        missing = [k for k in self.numeric if k not in ep.columns] + [k for k in self.video_keys if k not in ep.videos]
        if missing:
            raise ValueError(f"episode lacks features {missing}")
        ep_index = self.total_episodes
        start = self.total_frames
        task_index = self._task_index(ep.task)
        cols = {"timestamp": (np.arange(n, dtype=np.float64) / self.fps).astype(np.float32),
                "frame_index": np.arange(n, dtype=np.int64), "episode_index": np.full(n, ep_index, np.int64),
                "index": np.arange(start, start + n, dtype=np.int64), "task_index": np.full(n, task_index, np.int64)}
        arrays = [pa.array(cols[k]) for k in ("timestamp", "frame_index", "episode_index", "index", "task_index")]
        for k in self.numeric:
            a = np.asarray(ep.columns[k], dtype=np.float32)
            d = self.schema.field(k).type.list_size
            if a.shape != (n, d):
                raise ValueError(f"{k}: shape {a.shape}, expected {(n, d)}")
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), d))
        row: dict = {"episode_index": ep_index, "tasks": [ep.task], "length": n}
        for key in self.video_keys:
            seg = ep.videos[key]
            app = self._video_file(key, Path(seg.path).stat().st_size)
            t_from, t_to = app.append(Path(seg.path), seg.start_frame, seg.n_frames)
            c, f = self._video_cf[key]
            row.update({f"videos/{key}/chunk_index": c, f"videos/{key}/file_index": f,
                        f"videos/{key}/from_timestamp": t_from, f"videos/{key}/to_timestamp": t_to})
        w = self._data_file()
        w.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        row.update({"data/chunk_index": self._data_cf[0], "data/file_index": self._data_cf[1],
                    "dataset_from_index": start, "dataset_to_index": start + n})
        ep_stats = {k: st.feature_stats(cols[k]) for k in cols}
        ep_stats.update(ep.stats)
        for feat in sorted(ep_stats):
            for s, v in ep_stats[feat].items():
                row[f"stats/{feat}/{s}"] = np.asarray(v).tolist()
        row.update(ep.extra)
        if ep.sha256:
            row["source/sha256"] = ep.sha256
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = self._meta_cf
        self._new_rows.append(row)
        self._new_stats.append(ep_stats)
        if ep.provenance:
            self.state.sidecar.setdefault("episodes", {})[str(ep_index)] = ep.provenance
        return ep_index

    def close(self, sidecar_extra: dict | None = None) -> None:
        """Finish files and rewrite the meta files (info.json last). Nothing changes on
        disk when no episode was added."""
        if self.closed:
            return
        self.closed = True
        if self._data_writer is not None:
            self._data_writer.close()
        for app in self._videos.values():
            app.close()
        if not self._new_rows:
            return
        meta = self.root / EPISODES_PATH.format(chunk_index=self._meta_cf[0], file_index=self._meta_cf[1])
        _atomic_parquet(meta, pa.Table.from_pylist(self._new_rows))
        write_tasks(self.root / "meta" / "tasks.parquet", self.state.tasks)
        prior = [self.state.stats] if self.state.stats else []
        agg = st.aggregate(prior + self._new_stats)
        _atomic_json(self.root / "meta" / "stats.json", st.to_json(agg))
        side = self.state.sidecar
        side["format"] = "robot_capture.lerobot_export/1"
        side.update(sidecar_extra or {})
        _atomic_json(self.root / SIDE_CAR, side)
        info = self.state.info
        for key in self.video_keys:
            if not info["features"][key].get("info"):
                first = self.root / video_path(key, 0, 0)
                if first.exists():
                    info["features"][key]["info"] = video_info(first)
        total = self.total_episodes
        info.update({"total_episodes": total, "total_frames": self.total_frames, "total_tasks": len(self.state.tasks),
                     "splits": {"train": f"0:{total}"}})
        _atomic_json(self.root / "meta" / "info.json", info)
        self.state.episodes.extend(self._new_rows)
        self.state.stats = agg
        self._new_rows, self._new_stats = [], []

    def abort(self) -> None:
        """Close without writing meta (files of this session are left unreferenced)."""
        self.closed = True
        if self._data_writer is not None:
            self._data_writer.close()
        for app in self._videos.values():
            try:
                app.close()
            except Exception:  # noqa: BLE001 - error path
                pass


def remove_dataset(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
