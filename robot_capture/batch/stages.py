"""The per-stage steps around the jobs: checks before, a pre-pass, the job options, the final step.

* :func:`check`: refuse a run that cannot work (two bags with one name for ``retarget``,
  whose outputs are named after the bag).
* :func:`prepare`: what the run's jobs need, computed once in the runner.
  ``qa``: the folder statistics, ``{task: [duration s]}`` over **every bag given**
  (:func:`robot_capture.qa.run.folder_durations`, what ``robot-capture qa DIR`` uses), and
  the QA config's sha256.
* :func:`job_params`: one job's options (part of its pipeline id). ``qa``: only the
  durations of the bag's own task travel with its job (the duration check reads no other),
  so a change in one task's distribution redoes that task's verdicts and no others.
* :func:`finish`: after the jobs. ``export``: merge the shards of every done bag, in bag
  order, into ``<out>/dataset`` (:func:`robot_capture.export.lerobot.merge_datasets`), in
  the runner. When the merged list (bag, sha256) of the last run is a prefix of this run's,
  only the new shards are appended (the merge skips an episode whose source sha256 is
  already in the dataset, so a merge killed half way is finished by the next one);
  otherwise (a bag changed, failed or left) the dataset is rebuilt beside and swapped in.
  Returns extra failures ``[(what, reason)]`` and fills ``extra`` (summary figures).
"""
from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

MERGED_KEY = "export.merged"
DATASET_DIR = "dataset"


def check(stage: str, bags, params: dict) -> None:
    """Raises ValueError when the run cannot produce distinct outputs."""
    if stage == "retarget":
        dup = sorted(n for n, c in Counter(b.name for b in bags).items() if c > 1)
        if dup:
            raise ValueError(f"retarget names each new bag after its input; these names occur more than once: "
                             f"{', '.join(dup[:5])}{' ...' if len(dup) > 5 else ''} (run the folders separately)")


def prepare(stage: str, bags, params: dict) -> dict:
    """Raises robot_capture.config_schema.ConfigError (a ValueError) for an invalid QA config."""
    if stage != "qa":
        return {}
    from robot_capture.episodes import load_episode
    from robot_capture.qa.config import as_config
    from robot_capture.qa.run import folder_durations

    cfg = as_config(params.get("config") or None)
    task_of = {}
    for b in bags:
        try:
            task_of[str(b)] = load_episode(b).task
        except (OSError, ValueError):
            task_of[str(b)] = ""
    return {"stats": folder_durations(bags), "task_of": task_of, "config_sha256": cfg.sha256}


def job_params(stage: str, bag, params: dict, prep: dict) -> dict:
    if stage != "qa":
        return dict(params)
    task = prep["task_of"].get(str(bag), "")
    durs = prep["stats"].get(task)
    return {"config": params.get("config") or "", "config_sha256": prep["config_sha256"],
            "folder_stats": {task: durs} if durs else None}


def finish(stage: str, done_bags, done_rows, out: Path, params, ledger, extra: dict) -> list:
    if stage == "retarget":
        extra["retargeted bags"] = str(out / "bags")
    elif stage == "qa":
        verdicts = Counter(done_rows[str(b)].result.get("verdict", "?") for b in done_bags)
        extra["verdicts"] = ", ".join(f"{verdicts[v]} {v}" for v in ("pass", "warn", "fail") if verdicts[v]) or "none"
    elif stage == "export":
        return _merge(done_bags, done_rows, out, ledger, extra)
    return []


def _merge(done_bags, done_rows, out: Path, ledger, extra: dict) -> list:
    from robot_capture.export.lerobot import merge_datasets

    entries = [(str(b), done_rows[str(b)].sha256, done_rows[str(b)].result.get("shard", "")) for b in done_bags]
    skipped = [(b, done_rows[b].result.get("reason", "")) for b, _s, shard in entries if not shard]
    entries = [e for e in entries if e[2]]
    cur = [[b, sha] for b, sha, _shard in entries]
    dataset = out / DATASET_DIR
    try:
        prev = json.loads(ledger.get_meta(MERGED_KEY, "[]"))
    except ValueError:
        prev = []
    if skipped:
        why = Counter(r.split(" (")[0] for _b, r in skipped)
        extra["not exported (selection rule)"] = f"{len(skipped)} bag(s): " + "; ".join(
            f"{n} {r}" for r, n in why.most_common())
    if not entries:
        extra["dataset"] = "no episode to merge"
        return []
    if prev == cur and dataset.is_dir():
        extra["dataset"] = f"{dataset} ({len(cur)} episodes, unchanged)"
        return []
    incremental = bool(prev) and dataset.is_dir() and cur[:len(prev)] == prev
    target = dataset if incremental else out / f".{DATASET_DIR}.tmp.{os.getpid()}"
    shutil.rmtree(target, ignore_errors=True) if not incremental else None
    shards = [shard for _b, _sha, shard in (entries[len(prev):] if incremental else entries)]
    ledger.set_meta(MERGED_KEY, "[]" if not incremental else json.dumps(prev))
    summary = merge_datasets(shards, target)
    errors = [(r.bag, f"merge: {r.reason}") for r in summary.results if r.status == "error"]
    dups = sum(1 for r in summary.results if r.status == "skipped")
    if not incremental:
        if dataset.exists():
            old = out / f".{DATASET_DIR}.old.{os.getpid()}"
            os.replace(dataset, old)
            os.replace(target, dataset)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, dataset)
    if not errors:
        ledger.set_meta(MERGED_KEY, json.dumps(cur))
    extra["dataset"] = (f"{dataset}: {'appended' if incremental else 'built from'} {len(shards)} shard(s), "
                        f"{summary.count('exported')} episode(s) merged"
                        + (f", {dups} already in it (same recording: the exporter keys on the .mcap files)"
                           if dups else ""))
    return errors
