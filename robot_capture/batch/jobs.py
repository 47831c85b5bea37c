"""Stage -> job function: one job per bag, calling the same function as the single-bag command.

A job is a plain dict (it travels to a pool worker by pickle, to a Ray worker as a task
argument; it holds the bag's **path**, never its bytes):
``{"stage", "bag", "out", "pipeline", "params"}``. :func:`run_job` runs it in the worker
and returns a plain dict: ``status`` (``done``/``failed``), ``sha256``, ``duration_s`` (wall),
``cpu_s`` (CPU time of the worker process, all threads),
``error`` (one line, for the ledger and the summary), ``result`` (stage figures),
``host``, ``pid``, ``reused``. It never raises for a bad bag: the error is the result.

Stages and the functions they call (the single-bag commands call the same ones):

* ``retarget``: :func:`robot_capture.offline.bag_retarget.retarget_bag` -> a new bag
  ``<out>/bags/<name>`` (written under a temp name, renamed when complete).
* ``qa``: :func:`robot_capture.qa.run.qa_episode` -> ``<bag>/qa.json``.
* ``export``: :func:`robot_capture.export.lerobot.export_episodes` on the one bag -> a
  LeRobot shard ``<out>/shards/<name>``; the runner merges the shards at the end.

Every finished job also leaves ``<out>/jobs/<name>.json`` (sha256, pipeline, result),
written atomically by the worker. A job whose bag content (sha256) and pipeline match that
file, whose stage input (:func:`robot_capture.batch.fingerprint.stage_input`) is one of the
recorded ``result["inputs"]``, and whose output still exists, is not redone (``reused``):
this covers a runner killed between a worker finishing a job and the ledger recording it.
"""
from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import socket
import time
from pathlib import Path

from robot_capture.atomic import write_text_atomic
from robot_capture.batch.fingerprint import bag_sha256, stage_input

STAGE_VERSION = {"qa": 1, "export": 1, "retarget": 1}


def available_stages() -> dict[str, str]:
    """stage -> "" when its pipeline is installed, else the reason it is not."""
    out = {}
    for stage, module in (("qa", "robot_capture.qa.run"), ("export", "robot_capture.export.lerobot"),
                          ("retarget", "robot_capture.offline.bag_retarget")):
        try:
            __import__(module)
            out[stage] = ""
        except ImportError as exc:
            out[stage] = f"{module} is not installed ({exc})"
    return out


def pipeline_id(stage: str, params: dict) -> str:
    """What a job's result depends on besides the bag: package, stage version, options.

    Scalar options are shown as they are; list/dict options (e.g. the QA folder statistics)
    only by a digest, with the digest of everything at the end."""
    from robot_capture import __version__

    shown = {k: (v if isinstance(v, (str, int, float, bool, type(None)))
                 else "sha256:" + hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()[:12])
             for k, v in sorted(params.items())}
    return f"robot_capture {__version__}; {stage} v{STAGE_VERSION[stage]}; {json.dumps(shown, sort_keys=True)}"


def job_name(bag: str | os.PathLike) -> str:
    """A file-name-safe, unique name for a bag's outputs: ``<dir name>-<8 hex of the path>``."""
    p = Path(bag)
    return f"{p.name}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"


def make_job(stage: str, bag, out, params: dict, force: bool = False) -> dict:
    """The job dict; ``force``: do not reuse a finished job's record."""
    return {"stage": stage, "bag": str(bag), "out": str(out), "pipeline": pipeline_id(stage, params),
            "params": dict(params), "force": bool(force)}


def output_path(job: dict) -> Path:
    """Where the job's output lives (the bag's qa.json for qa)."""
    name = job_name(job["bag"])
    out = Path(job["out"])
    if job["stage"] == "retarget":
        return out / "bags" / Path(job["bag"]).name
    if job["stage"] == "export":
        return out / "shards" / name
    from robot_capture.episodes.verdict import VERDICT_FILENAME

    return Path(job["bag"]) / VERDICT_FILENAME


def _record_path(job: dict) -> Path:
    return Path(job["out"]) / "jobs" / f"{job_name(job['bag'])}.json"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"[:500]


def run_job(job: dict) -> dict:
    """Run one job in this process (see the module docstring). Never raises for a bad bag."""
    t0, c0 = time.perf_counter(), _cpu_s()
    res = {"status": "failed", "sha256": "", "duration_s": 0.0, "cpu_s": 0.0, "error": "", "result": {},
           "host": socket.gethostname(), "pid": os.getpid(), "reused": False}
    try:
        bag = Path(job["bag"])
        if not bag.is_dir():
            raise NotADirectoryError(f"{bag}: not a bag directory")
        res["sha256"] = sha = bag_sha256(bag)
        before = stage_input(job["stage"], bag)
        prev = None if job.get("force") else _read_record(job)
        if prev and prev.get("sha256") == sha and prev.get("pipeline") == job["pipeline"] \
                and same_input(before, prev.get("result", {})) \
                and all(Path(o).exists() for o in prev.get("result", {}).get("outputs", [])):
            res.update(status="done", result=prev.get("result", {}), reused=True)
        else:
            res["result"] = STAGES[job["stage"]](job)
            if before is not None:  # what the stage read, and what it used after its own QA wrote qa.json
                res["result"]["inputs"] = sorted({before, stage_input(job["stage"], bag)})
            res["status"] = "done"
            _write_record(job, sha, res["result"])
    except Exception as exc:  # noqa: BLE001 - a bad bag fails its own job, with the reason
        res["error"] = _one_line(exc)
    res["duration_s"] = time.perf_counter() - t0
    res["cpu_s"] = _cpu_s() - c0
    return res


def same_input(current: str | None, result: dict) -> bool:
    """Whether a finished job's result still holds for the bag's current stage input: True
    for a stage without one (None), else when ``current`` is one of ``result["inputs"]``."""
    return current is None or current in (result or {}).get("inputs", [])


def _cpu_s() -> float:
    """CPU time of this process (every thread: video encoders are threaded) and its waited-for children."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def _read_record(job: dict) -> dict | None:
    try:
        return json.loads(_record_path(job).read_text())
    except (OSError, ValueError):
        return None


def _write_record(job: dict, sha: str, result: dict) -> None:
    path = _record_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"bag": job["bag"], "sha256": sha, "pipeline": job["pipeline"],
                                        "result": result}, sort_keys=True, indent=1))


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a completed output directory into place (an old one, from a changed bag, goes)."""
    if final.exists():
        old = final.with_name(f".{final.name}.old.{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def _tmp_dir(final: Path) -> Path:
    """A fresh temp directory beside ``final`` (hidden, pid-suffixed). Temp directories of
    earlier attempts at the same output (a worker or runner killed mid-job) are removed: the
    ledger runs one attempt per bag at a time, so any other one is dead."""
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp.*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.with_name(f".{final.name}.tmp.{os.getpid()}")
    return tmp


# -- stages ------------------------------------------------------------------------------
def _retarget(job: dict) -> dict:
    from robot_capture.offline.bag_retarget import retarget_bag

    p = job["params"]
    final = output_path(job)
    tmp = _tmp_dir(final)
    try:
        report = retarget_bag(job["bag"], tmp, robot=p.get("robot", "g1"), source=p.get("source", "auto"))
        _replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"source": report.get("source"), "inputs": int(report.get("inputs", 0)),
            "commands": int(report.get("commands", 0)), "out": str(final), "outputs": [str(final)]}


class UnreadableBagError(ValueError):
    """QA judged the bag unreadable (truncated, crashed): the job fails with QA's message."""


def _qa(job: dict) -> dict:
    from robot_capture.qa.run import qa_episode

    p = job["params"]
    v = qa_episode(job["bag"], config=p.get("config") or None, expected=None, folder_stats=p.get("folder_stats"),
                   write=True)
    bad = [f for f in v.findings if f.check == "bag"]
    if bad:  # the verdict is written (as `robot-capture qa` does); the job is a failure
        raise UnreadableBagError(bad[0].message)
    return {"verdict": v.verdict, "reasons": list(v.reasons)[:5], "outputs": [str(output_path(job))]}


class ExportJobError(ValueError):
    """The exporter reported an error for the bag (its reason is the message)."""


def _export(job: dict) -> dict:
    from robot_capture.export.lerobot import ExportOptions, export_episodes

    from robot_capture.bag.reader import BagReader

    with BagReader(job["bag"]):  # an unreadable bag is a failed job, not an episode the selection leaves out
        pass
    opts = ExportOptions(**job["params"].get("options", {}))
    final = output_path(job)
    tmp = _tmp_dir(final)
    try:
        summary = export_episodes([job["bag"]], tmp, opts, progress=False)
        if not summary.results:
            raise ExportJobError("the exporter returned no result for the bag")
        r = summary.results[0]
        if r.status == "error":
            raise ExportJobError(r.reason or "export failed")
        if r.status == "exported":
            _replace_dir(tmp, final)
        elif final.exists():  # not selected any more (e.g. relabelled failed): no shard
            shutil.rmtree(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shard = str(final) if r.status == "exported" else ""
    return {"status": r.status, "reason": r.reason, "frames": int(r.frames), "shard": shard,
            "outputs": [shard] if shard else []}


STAGES = {"retarget": _retarget, "qa": _qa, "export": _export}
