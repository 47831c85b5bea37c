"""``robot-capture export --format lerobot``: episode bags -> a LeRobot v3.0 dataset.

Functions the CLI and the batch runner call::

    summary = export_episodes(bags, out, options=None, progress=True) -> ExportSummary
    summary = merge_datasets(shards, out) -> ExportSummary        # robot_capture.export.merge

Per bag: read labels and verdict (:mod:`robot_capture.episodes`), select
(:mod:`.selection`), skip a bag whose sha256 is already in the target dataset (re-export
is a no-op), resolve the feature mapping (:mod:`.mapping`) against its topics, sample it
onto the frame grid and encode its cameras (:mod:`.extract`), then append it
(:mod:`.dataset`). Any problem with one bag becomes that bag's ``error`` (or ``skip``)
result with a one-line reason; the other bags still export.
"""
from __future__ import annotations

import datetime
import logging
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from robot_capture.export import mapping as mp
from robot_capture.export.dataset import DEFAULT_FEATURES, DatasetWriter, EpisodeParts, VideoSegment, read_dataset
from robot_capture.export.extract import EpisodeError, bag_sha256, extract_episode, feature_defs
from robot_capture.export.selection import decide, gate

__all__ = ["ExportOptions", "EpisodeResult", "ExportSummary", "export_episodes", "merge_datasets"]

log = logging.getLogger(__name__)


@dataclass
class ExportOptions:
    """Export settings; None = the mapping file's value (see ``--help`` for the defaults).

    ``mapping``: path of a mapping YAML (None: config/export/lerobot_default.yaml).
    ``rejects``: dataset that receives the episodes the selection rule does not deliver
    (None: they are reported as skipped). ``run_qa``: run the QA job on a bag without a
    verdict when it is installed.
    """

    mapping: str | Path | None = None
    fps: int | None = None
    codec: str | None = None
    gop: int | None = None
    crf: int | None = None
    include_failed: bool = False
    rejects: Path | None = None
    robot_type: str | None = None
    run_qa: bool = True


@dataclass
class EpisodeResult:
    """One bag's outcome. ``status``: ``exported`` | ``rejected`` (exported to the rejects
    dataset) | ``skipped`` | ``error``; ``reason`` is one line."""

    bag: str
    status: str
    reason: str = ""
    dataset: str = ""
    episode_index: int | None = None
    frames: int = 0
    recorded_s: float = 0.0
    stale: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    sha256: str = ""
    note: str = ""


@dataclass
class ExportSummary:
    out: str
    results: list = field(default_factory=list)
    rejects: str = ""

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def ok(self) -> bool:
        """True when no bag ended in ``error``."""
        return self.count("error") == 0

    def to_dict(self) -> dict:
        return {"out": self.out, "rejects": self.rejects, "results": [asdict(r) for r in self.results]}

    def lines(self) -> list[str]:
        out = []
        for r in self.results:
            extra = f" -> {r.dataset} episode {r.episode_index}, {r.frames} frames" if r.episode_index is not None else ""
            stale = sum(r.stale.values())
            extra += f", {stale} stale camera frames" if stale else ""
            why = f": {r.reason}" if r.reason else ""
            note = f" ({r.note})" if r.note else ""
            out.append(f"{r.status:8s} {r.bag}{extra}{why}{note}")
        out.append(f"{self.count('exported')} exported, {self.count('rejected')} to rejects, "
                   f"{self.count('skipped')} skipped, {self.count('error')} errors -> {self.out}")
        return out


class _Target:
    """A dataset being appended to in this run (the delivered one or the rejects)."""

    def __init__(self, root: Path, options: ExportOptions, mapping: mp.Mapping):
        self.root = Path(root)
        self.options, self.mapping = options, mapping
        self.writer: DatasetWriter | None = None
        self.existing = read_dataset(self.root) if (self.root / "meta" / "info.json").exists() else None

    @property
    def want(self) -> dict | None:
        if self.writer is not None:
            return self.writer.state.features
        return self.existing.features if self.existing is not None else None

    @property
    def fps(self) -> int | None:
        if self.writer is not None:
            return self.writer.fps
        if self.existing is not None:
            return int(self.existing.info["fps"])
        return self.options.fps

    def sources(self) -> dict:
        if self.writer is not None:
            return self.writer.sources
        return self.existing.sources if self.existing is not None else {}

    def writer_for(self, features: dict, robot: str, fps: int) -> DatasetWriter:
        if self.writer is None:
            self.writer = DatasetWriter(self.root, fps, features,
                                        robot_type=self.options.robot_type or robot or None)
        return self.writer


def _mapping(options: ExportOptions) -> mp.Mapping:
    m = mp.load_mapping(options.mapping)
    video = m.video.model_copy(update={k: v for k, v in (("codec", options.codec), ("gop", options.gop),
                                                          ("crf", options.crf)) if v is not None})
    return m.model_copy(update={"video": video, "fps": options.fps if options.fps is not None else m.fps})


def _bar(progress: bool):
    if not progress:
        return None
    from tqdm import tqdm

    def make(desc, total):
        return tqdm(total=total, desc=desc, unit="frame", leave=False, file=sys.stderr, dynamic_ncols=True)
    return make


def _extra(ep, decision, ex, bag: Path) -> dict:
    out = {"label/task": ep.task, "label/operator": ep.operator, "label/scene": ep.scene, "label/notes": ep.notes,
           "label/success": "unknown" if ep.success is None else ("true" if ep.success else "false"),
           "label/name": ep.name, "qa/verdict": decision.verdict, "qa/reasons": "; ".join(decision.reasons),
           "qa/source": decision.source, "qa/error_cause": decision.error_cause,
           "source/bag": str(bag), "source/robot": ep.robot, "source/start_ns": int(ep.start_ns),
           "source/grid_start_ns": int(ex.grid.t0_ns)}
    for k, v in sorted(ex.stale.items()):
        out[f"align/stale/{k}"] = int(v)
    return out


def _export_one(bag: Path, target: _Target, ep, decision, tmp_root: Path, make_bar) -> EpisodeResult:
    from robot_capture.bag.errors import IncompleteBagFileError, NotABagError
    from robot_capture.bag.reader import BagReader

    res = EpisodeResult(bag=str(bag), status="error", dataset=str(target.root), note=decision.note)
    sha = bag_sha256(bag)
    res.sha256 = sha
    have = target.sources()
    if sha in have:
        res.status, res.reason = "skipped", f"already in {target.root.name} (episode {have[sha]}, same sha256)"
        return res
    try:
        reader = BagReader(bag)
    except IncompleteBagFileError as exc:
        res.reason = f"truncated bag: {exc}"
        return res
    except (NotABagError, ValueError, OSError) as exc:
        res.reason = str(exc)
        return res
    want = target.want
    want_keys = {k for k in want if k not in DEFAULT_FEATURES} if want is not None else None
    try:
        from robot_capture.floor.contract import streams_from_custom_data

        resolved = mp.resolve(target.mapping, reader.topics, want_keys, streams_from_custom_data(ep.custom_data))
        with tempfile.TemporaryDirectory(prefix=".export-", dir=tmp_root) as tmp:
            ex = extract_episode(reader, target.mapping, resolved, Path(tmp), fps=target.fps, want=want,
                                 progress=make_bar)
            features = feature_defs(ex)
            parts = EpisodeParts(
                task=ep.task or "unspecified", length=ex.grid.n, columns=ex.columns,
                videos={k: VideoSegment(p, 0, ex.grid.n) for k, p in ex.videos.items()}, stats=ex.stats,
                extra=_extra(ep, decision, ex, bag), sha256=sha,
                provenance={"bag": str(bag), "sha256": sha, "name": ep.name, "robot": ep.robot,
                            "start_ns": ep.start_ns, "stop_ns": ep.stop_ns, "grid_start_ns": ex.grid.t0_ns,
                            "fps": ex.grid.fps, "frames": ex.grid.n, "stale_frames": ex.stale,
                            "labels": ep.labels, "verdict": decision.verdict, "reasons": list(decision.reasons),
                            "verdict_source": decision.source, "error_cause": decision.error_cause,
                            "missing_optional_topics": resolved.missing_optional,
                            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
            writer = target.writer_for(features, ep.robot, ex.grid.fps)
            res.episode_index = writer.add_episode(parts)
    except mp.MissingStreamError as exc:
        res.reason = str(exc)
        return res
    except EpisodeError as exc:
        res.status = "skipped" if exc.kind == "skip" else "error"
        res.reason = str(exc)
        return res
    except (ValueError, OSError, EOFError) as exc:  # corrupt chunks, decode failures, full disk
        res.reason = f"{type(exc).__name__}: {exc}"
        return res
    res.status, res.reason = "exported", ""
    res.frames, res.recorded_s, res.stale, res.timings = ex.grid.n, ex.recorded_s, dict(ex.stale), dict(ex.timings)
    return res


def export_episodes(bags, out, options: ExportOptions | None = None, progress: bool = True) -> ExportSummary:
    """Export episode bags (or directories of them) into the LeRobot v3.0 dataset ``out``
    (created, or appended to). Never raises for a bad bag: see the per-bag results.

    Raises:
        ConfigError / FileNotFoundError: the mapping file is invalid or missing.
        FileNotFoundError: a path in ``bags`` does not exist.
        ValueError: ``out`` exists with other features or fps than this export.
    """
    from robot_capture.episodes import find_bags, load_episode

    options = options or ExportOptions()
    mapping = _mapping(options)
    out = Path(out).resolve()
    summary = ExportSummary(out=str(out), rejects=str(options.rejects or ""))
    targets = {"deliver": _Target(out, options, mapping)}
    if options.rejects is not None:
        targets["reject"] = _Target(Path(options.rejects).resolve(), options, mapping)
    not_bags: list = []
    paths = find_bags([Path(b) for b in bags], not_bags=not_bags)
    named = {Path(b).resolve() for b in bags}
    for p, why in not_bags:  # a stray file inside a folder (floor.log) is not worth a line; a named one is
        if Path(p).resolve() in named:
            summary.results.append(EpisodeResult(bag=str(p), status="skipped", reason=why))
    make_bar = _bar(progress)
    outer = None
    if progress:
        from tqdm import tqdm

        outer = tqdm(total=len(paths), desc="episodes", unit="ep", file=sys.stderr, dynamic_ncols=True)
    tmp_root = out.parent
    tmp_root.mkdir(parents=True, exist_ok=True)
    try:
        for bag in paths:
            if outer is not None:
                outer.update(1)
            blocked = gate(bag)  # incomplete -> error, damaged or recording -> skipped: never exported (issue 23)
            if blocked is not None:
                summary.results.append(EpisodeResult(bag=str(bag), status=blocked[0], reason=blocked[1]))
                continue
            try:
                ep = load_episode(bag)
            except (OSError, ValueError) as exc:
                summary.results.append(EpisodeResult(bag=str(bag), status="error", reason=str(exc).splitlines()[0]))
                continue
            if ep.recording:
                summary.results.append(EpisodeResult(bag=str(bag), status="skipped", reason="still recording"))
                continue
            decision = decide(ep, include_failed=options.include_failed, run_qa=options.run_qa)
            if decision.deliver:
                target = targets["deliver"]
            elif "reject" in targets:
                target = targets["reject"]
            else:
                summary.results.append(EpisodeResult(bag=str(bag), status="skipped", note=decision.note,
                                                     reason=f"not selected: {decision.reason} "
                                                            f"(--include-failed or --rejects DATASET)"))
                continue
            r = _export_one(bag, target, ep, decision, tmp_root, make_bar)
            if r.status == "exported" and target is not targets["deliver"]:
                r.status, r.reason = "rejected", decision.reason
            summary.results.append(r)
    finally:
        if outer is not None:
            outer.close()
        for t in targets.values():
            if t.writer is not None:
                t.writer.close(sidecar_extra={"mapping": mapping.model_dump()})
    return summary


def merge_datasets(shards, out) -> ExportSummary:
    """Merge per-bag shard datasets into one (see :func:`robot_capture.export.merge.merge_datasets`)."""
    from robot_capture.export.merge import merge_datasets as _merge

    return _merge(shards, out)
