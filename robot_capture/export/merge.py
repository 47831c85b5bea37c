"""Merge LeRobot v3.0 datasets written by this exporter (e.g. one shard per bag from the
batch runner) into one delivered dataset.

Episodes are appended in shard order with new ``episode_index``/``index``/``task_index``
(tasks matched by their string), frame rows copied, video packets remuxed (no
re-encode) onto the output's rolling files, episode stats kept and the dataset stats
re-aggregated. An episode whose source bag sha256 is already in ``out`` is skipped, so
merging the same shards twice changes nothing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from robot_capture.export.dataset import (DEFAULT_FEATURES, DatasetWriter, EpisodeParts, VideoSegment, data_path,
                                          episode_stats_from_row, read_dataset, video_path)

__all__ = ["merge_datasets"]

_OWN = ("episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index", "source/sha256")


def _features(state) -> dict:
    return {k: {kk: vv for kk, vv in f.items() if kk != "info"} for k, f in state.features.items()
            if k not in DEFAULT_FEATURES}


def merge_datasets(shards, out):
    """Merge ``shards`` (dataset directories) into ``out`` (created or appended to).

    Returns an ExportSummary with one result per shard episode (``exported``,
    ``skipped`` when its source is already in ``out``) or per shard (``error``: not a
    v3.0 dataset, other features or fps).
    """
    from robot_capture.export.lerobot import EpisodeResult, ExportSummary

    out = Path(out).resolve()
    summary = ExportSummary(out=str(out))
    writer = None
    for shard in [Path(s) for s in shards]:
        try:
            state = read_dataset(shard)
        except (OSError, ValueError, KeyError) as exc:
            summary.results.append(EpisodeResult(bag=str(shard), status="error", reason=f"not a dataset: {exc}"))
            continue
        try:
            if writer is None:
                writer = DatasetWriter(out, int(state.info["fps"]), _features(state),
                                       robot_type=state.info.get("robot_type"))
            elif _features(state) != {k: {kk: vv for kk, vv in f.items() if kk != "info"}
                                      for k, f in writer.state.features.items() if k not in DEFAULT_FEATURES} \
                    or int(state.info["fps"]) != writer.fps:
                raise ValueError("other features or fps than the merged dataset")
        except ValueError as exc:
            summary.results.append(EpisodeResult(bag=str(shard), status="error", reason=str(exc)))
            continue
        tables: dict = {}
        for row in state.episodes:
            e = int(row["episode_index"])
            label = f"{shard}#{e}"
            sha = row.get("source/sha256") or ""
            have = writer.sources
            if sha and sha in have:
                summary.results.append(EpisodeResult(bag=label, status="skipped", sha256=sha, dataset=str(out),
                                                     reason=f"already in {out.name} (episode {have[sha]})"))
                continue
            dp = shard / data_path(row["data/chunk_index"], row["data/file_index"])
            if dp not in tables:
                tables[dp] = pq.read_table(dp)
            t = tables[dp]
            mask = np.asarray(t.column("episode_index").to_numpy()) == e
            rows = t.filter(mask)
            n = int(row["length"])
            cols = {k: np.asarray(rows.column(k).combine_chunks().flatten(), dtype=np.float32).reshape(n, -1)
                    for k in writer.numeric}
            videos = {}
            for key in writer.video_keys:
                vp = shard / video_path(key, row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"])
                videos[key] = VideoSegment(vp, int(round(row[f"videos/{key}/from_timestamp"] * writer.fps)),
                                           int(row["length"]))
            ep_stats = {k: v for k, v in episode_stats_from_row(row).items() if k not in DEFAULT_FEATURES}
            extra = {k: v for k, v in row.items() if "/" in k and k.split("/")[0] in ("label", "qa", "source", "align")
                     and k not in _OWN}
            prov = dict((state.sidecar.get("episodes") or {}).get(str(e), {}))
            prov["merged_from"] = f"{shard}#{e}"
            try:
                idx = writer.add_episode(EpisodeParts(task=row["tasks"][0], length=int(row["length"]), columns=cols,
                                                      videos=videos, stats=ep_stats, extra=extra, provenance=prov,
                                                      sha256=sha))
            except (ValueError, OSError) as exc:
                summary.results.append(EpisodeResult(bag=label, status="error", reason=str(exc)))
                continue
            summary.results.append(EpisodeResult(bag=label, status="exported", dataset=str(out), episode_index=idx,
                                                 frames=int(row["length"]), sha256=sha,
                                                 recorded_s=int(row["length"]) / writer.fps))
    if writer is not None:
        writer.close(sidecar_extra={"merged_from": [str(s) for s in shards]})
    return summary
