"""Independent checks of the LeRobot v3.0 rules on a dataset directory, with pyarrow,
pandas and PyAV only (no lerobot, no torch). Used by the export tests.

The rules (lerobot v0.4.4 datasets/lerobot_dataset.py, utils.py, video_utils.py):
timestamps are exactly frame_index / fps (float32); every frame's video frame is at
from_timestamp + timestamp within 0.1 ms; index and dataset_from/to_index are contiguous;
tasks.parquet has the task string as the pandas index; stats.json and the per-episode
stats columns hold min/max/mean/std/count/q01..q99 that match the frames.
"""
from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

TOL_S = 1e-4
STATS = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")


def load(root: Path):
    root = Path(root)
    info = json.loads((root / "meta/info.json").read_text())
    eps = pd.concat([pd.read_parquet(p) for p in sorted((root / "meta/episodes").glob("*/*.parquet"))],
                    ignore_index=True).sort_values("episode_index").reset_index(drop=True)
    data = pq.read_table(sorted((root / "data").glob("*/*.parquet"))).to_pandas() \
        if len(list((root / "data").glob("*/*.parquet"))) == 1 else \
        pd.concat([pq.read_table(p).to_pandas() for p in sorted((root / "data").glob("*/*.parquet"))],
                  ignore_index=True)
    return info, eps, data


def video_pts(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        return sorted(float(p.pts * st.time_base) for p in c.demux(st) if p.pts is not None)


def decode(path: Path) -> dict[float, np.ndarray]:
    out = {}
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        for f in c.decode(st):
            out[float(f.pts * st.time_base)] = f.to_ndarray(format="rgb24")
    return out


def frame_at(frames: dict[float, np.ndarray], t: float) -> np.ndarray:
    k = min(frames, key=lambda x: abs(x - t))
    assert abs(k - t) < TOL_S, (k, t)
    return frames[k]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def check_dataset(root: Path) -> dict:
    """Assert every format rule; returns (info, episodes, data) for further checks."""
    root = Path(root)
    info, eps, data = load(root)
    fps = info["fps"]
    assert info["codebase_version"] == "v3.0"
    assert info["total_episodes"] == len(eps) and info["total_frames"] == len(data)
    assert info["splits"] == {"train": f"0:{len(eps)}"}
    # rows: contiguous index, episodes in order, from/to ranges contiguous
    assert data["index"].tolist() == list(range(len(data)))
    assert eps["episode_index"].tolist() == list(range(len(eps)))
    assert eps["dataset_from_index"].iloc[0] == 0
    assert (eps["dataset_from_index"].iloc[1:].to_numpy() == eps["dataset_to_index"].iloc[:-1].to_numpy()).all()
    assert (eps["dataset_to_index"] - eps["dataset_from_index"] == eps["length"]).all()
    for _, e in eps.iterrows():
        rows = data.iloc[e["dataset_from_index"]:e["dataset_to_index"]]
        assert (rows["episode_index"] == e["episode_index"]).all()
        k = np.arange(e["length"])
        assert rows["frame_index"].tolist() == k.tolist()
        # timestamps exactly k / fps in float32
        assert (rows["timestamp"].to_numpy(dtype=np.float32) == (k / fps).astype(np.float32)).all()
    # tasks: the task string is the pandas index
    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    assert len(tasks) and all(isinstance(t, str) for t in tasks.index), tasks.index
    assert info["total_tasks"] == len(tasks)
    for _, e in eps.iterrows():
        task = e["tasks"][0]
        ti = int(tasks.loc[task].task_index)
        rows = data.iloc[e["dataset_from_index"]:e["dataset_to_index"]]
        assert (rows["task_index"] == ti).all()
    # video: every frame decodable at from_timestamp + timestamp within 0.1 ms
    vkeys = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    for key in vkeys:
        assert info["features"][key]["info"]["video.fps"] == fps
        pts_cache = {}
        for _, e in eps.iterrows():
            p = root / info["video_path"].format(video_key=key, chunk_index=e[f"videos/{key}/chunk_index"],
                                                 file_index=e[f"videos/{key}/file_index"])
            if p not in pts_cache:
                pts_cache[p] = np.array(video_pts(p))
            pts = pts_cache[p]
            t_from = e[f"videos/{key}/from_timestamp"]
            assert abs(e[f"videos/{key}/to_timestamp"] - t_from - e["length"] / fps) < TOL_S
            rows = data.iloc[e["dataset_from_index"]:e["dataset_to_index"]]
            want = t_from + rows["timestamp"].to_numpy(dtype=np.float64)
            dist = np.abs(pts[None, :] - want[:, None]).min(axis=1)
            assert dist.max() < TOL_S, (key, e["episode_index"], dist.max())
    # stats: per episode exact recomputation; dataset stats = aggregate of episodes
    stats = json.loads((root / "meta/stats.json").read_text())
    numeric = [k for k, f in info["features"].items() if f["dtype"] != "video"]
    for key in numeric + vkeys:
        assert key in stats, key
        assert set(STATS) <= set(stats[key]), (key, stats[key].keys())
    for key in numeric:
        col = np.stack(data[key].to_numpy()).astype(np.float64).reshape(len(data), -1)
        s = stats[key]
        np.testing.assert_allclose(s["min"], col.min(0), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(s["max"], col.max(0), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(s["mean"], col.mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(s["std"], col.std(0), rtol=1e-4, atol=1e-5)
        assert s["count"] == [len(data)]
        for _, e in eps.iterrows():
            c = col[e["dataset_from_index"]:e["dataset_to_index"]]
            np.testing.assert_allclose(np.asarray(e[f"stats/{key}/mean"], dtype=float), c.mean(0), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(np.asarray(e[f"stats/{key}/q50"], dtype=float), np.quantile(c, 0.5, axis=0),
                                       rtol=1e-5, atol=1e-5)
    for key in vkeys:
        assert np.asarray(stats[key]["mean"]).shape == (3, 1, 1)
        assert 0.0 <= np.min(stats[key]["min"]) and np.max(stats[key]["max"]) <= 1.0
    return {"info": info, "episodes": eps, "data": data}
