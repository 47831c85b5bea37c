"""Run the QA on episodes: :func:`qa_episode` (one bag -> Verdict, written to ``<bag>/qa.json``)
and :func:`qa_paths` (bags and folders, what ``robot-capture qa`` and the batch runner call).

Expected rates (``{topic: Hz | None}``; the topics that must be present), first found wins:

1. the ``expected`` argument (e.g. ``robot_capture.floor.graph.expected_topics(specs)``);
2. the bag itself: ``custom_data`` ``expected_hz/<topic>`` (the recorder stores the required
   streams of the station contract, :mod:`robot_capture.floor.contract`,
   :attr:`robot_capture.record.recorder.Recorder.expected_hz`);
3. ``expected_hz`` of the QA config (a per-rig map in qa.yaml or the rig override file);
4. none: a foreign bag is judged for presence on its own topics (every topic with messages)
   and for gaps against its own median intervals.

The contract's names of the bag's streams (custom_data ``stream/<topic>``: name, role, source)
go to ``metrics["streams"]`` for the report and ``info`` to show.

Deterministic: the same bag and config give the same ``qa.json`` bytes.
"""
from __future__ import annotations

import os
from pathlib import Path

from robot_capture.episodes import Finding, Verdict, find_bags, load_episode, write_verdict
from robot_capture.qa import checks_motion as M
from robot_capture.qa import checks_sources as C
from robot_capture.qa import checks_streams as S
from robot_capture.qa import checks_video as V
from robot_capture.qa.config import QAConfig, as_config

__all__ = ["CHECKS", "QA_VERSION", "qa_episode", "open_episode", "qa_paths", "folder_durations", "expected_from_bag"]

QA_VERSION = "2"  # 2: the video checks
#: check name -> function, in run order (idle before command: the command check skips the idle edges)
CHECKS = {"presence": S.presence, "rate": S.rate, "gaps": S.gaps, "stamps": S.stamps, "sources": C.sources,
          "sync": S.sync,
          "duration": S.duration, "idle": M.idle, "retarget": M.retarget, "command": M.command, "labels": M.labels,
          **V.CHECKS}
EXPECTED_PREFIX = "expected_hz/"


def expected_from_bag(custom_data: dict) -> dict[str, float | None]:
    """``{topic: Hz | None}`` from custom_data ``expected_hz/<topic>`` ("" or "none" = presence only)."""
    out: dict[str, float | None] = {}
    for k, v in (custom_data or {}).items():
        if not k.startswith(EXPECTED_PREFIX):
            continue
        try:
            hz = float(v)
            out[k[len(EXPECTED_PREFIX):]] = hz if hz > 0 else None
        except (TypeError, ValueError):
            out[k[len(EXPECTED_PREFIX):]] = None
    return out


def optional_from_bag(custom_data: dict) -> dict[str, float]:
    """``{topic: Hz}`` from custom_data ``optional_hz/<topic>``: declared rates of the station contract's
    streams that are not required (rate and gaps judged when present; absence is no finding)."""
    out: dict[str, float] = {}
    for k, v in (custom_data or {}).items():
        if k.startswith("optional_hz/"):
            try:
                hz = float(v)
            except (TypeError, ValueError):
                continue
            if hz > 0 and hz == hz and hz != float("inf"):
                out[k[len("optional_hz/"):]] = hz
    return out


def _expected(expected, ep, cfg: QAConfig, data) -> tuple[dict, str]:
    if expected is not None:
        return dict(expected), "argument"
    got = expected_from_bag(ep.custom_data)
    if got:
        return got, "bag"
    if cfg.expected_hz:
        return dict(cfg.expected_hz), "config"
    return {t: None for t in data.topics if data.count(t)}, "none"


def _unreadable(bag: Path, message: str, cfg: QAConfig | None) -> Verdict:
    return Verdict(findings=[Finding("bag", "fail", message)], source="qa", qa_version=QA_VERSION,
                   config_sha256=cfg.sha256 if cfg else "")


def qa_episode(bag, config=None, expected=None, folder_stats=None, write=True) -> Verdict:
    """The QA verdict of one episode bag; with ``write`` it replaces ``<bag>/qa.json``.

    Args:
        bag: bag directory (or one of its .mcap files).
        config: None (config/qa.yaml), a path, a dict of overrides, or a QAConfig.
        expected: ``{topic: Hz | None}``; None = from the bag, the config, or presence only.
        folder_stats: ``{task: [durations s]}`` of the folder (see :func:`folder_durations`)
            for the duration IQR rule; None = not judged.
        write: write the verdict to ``<bag>/qa.json``.

    Returns a Verdict; an incomplete (crashed, truncated), damaged or unreadable bag gets a
    ``fail`` verdict with a ``bag`` finding that says what to do (``incomplete: run
    `robot-capture recover BAG``` / ``damaged: ...``; see :func:`open_episode`), not written
    when the bag is being recorded.

    Raises:
        FileNotFoundError / robot_capture.bag.errors.NotABagError: not a bag directory.
        robot_capture.config_schema.ConfigError: an invalid config.
    """
    ctx, v = open_episode(bag, config, expected, folder_stats)
    if ctx is not None:
        ctx.data.close()
    if write and not (ctx is None and v.findings and "still being recorded" in v.findings[0].message):
        write_verdict(_bag_dir(bag), v)
    return v


def _bag_dir(bag) -> Path:
    p = Path(bag)
    return p.parent if p.is_file() and p.suffix == ".mcap" else p


def open_episode(bag, config=None, expected=None, folder_stats=None):
    """``(EpisodeContext with its BagData open, Verdict)``; ``(None, fail Verdict)`` for a bag
    that cannot be judged. The caller closes ``ctx.data``. Same arguments and errors as :func:`qa_episode`.

    The gate (issue 23): an incomplete bag (:func:`robot_capture.bag.completeness.check_bag`:
    files metadata.yaml does not list, a file without footer) is not judged: ``(None, fail)``
    with the one line ``incomplete: run `robot-capture recover BAG` (...)``. Every chunk of a
    complete bag is then checked (:meth:`BagReader.verify_chunks`, CRC32 included); a damaged
    one is a ``bag`` finding of severity ``fail`` (``damaged: run `robot-capture recover```),
    and a check that cannot run on damaged data fails instead of warning.
    """
    from robot_capture.bag.completeness import INCOMPLETE, check_bag, damaged_result
    from robot_capture.bag.errors import BagError, IncompleteBagFileError
    from robot_capture.qa.bagdata import BagData, DamagedDataError
    from robot_capture.qa.context import EpisodeContext

    cfg = as_config(config)
    p = _bag_dir(bag)
    ep = load_episode(p)
    if ep.recording:
        return None, _unreadable(p, "episode is still being recorded; run QA after it stops", cfg)
    whole = check_bag(p)
    if whole.status == INCOMPLETE:
        return None, _unreadable(p, whole.line(), cfg)
    try:
        data = BagData(p)
    except IncompleteBagFileError as exc:
        return None, _unreadable(p, str(exc).splitlines()[0], cfg)
    except (BagError, ValueError, OSError) as exc:
        return None, _unreadable(p, f"bag cannot be read: {str(exc).splitlines()[0]}", cfg)
    try:
        damage = damaged_result(p, data.reader.verify_chunks())
        findings = [] if damage.ok else [Finding("bag", "fail", damage.line())]
        exp, source = _expected(expected, ep, cfg, data)
        logs = [data.log_times(t) for t in data.topics if data.count(t)]
        first = min((int(t[0]) for t in logs), default=0)
        last = max((int(t[-1]) for t in logs), default=0)
        start = ep.start_ns if ep.start_ns and (not first or ep.start_ns <= first) else first
        stop = ep.stop_ns if ep.stop_ns and ep.stop_ns >= last else last
        ctx = EpisodeContext(data=data, episode=ep, expected=exp, expected_source=source, config=cfg,
                             start_ns=start, stop_ns=stop, folder_stats=folder_stats,
                             optional=optional_from_bag(ep.custom_data))
        for name, check in CHECKS.items():
            try:
                findings += check(ctx)
            except Exception as exc:  # noqa: BLE001 - a check that breaks on odd data is a finding, not a crash
                if isinstance(exc, DamagedDataError) or not damage.ok:
                    findings.append(Finding(name, "fail", f"{name} check could not run on damaged data: run "
                                                          f"`robot-capture recover {p}` ({exc})"))
                else:
                    findings.append(Finding(name, "warn", f"{name} check could not run: {type(exc).__name__}: {exc}"))
        ctx.metrics["expected_source"] = source
        ctx.metrics["expected_hz"] = {t: exp[t] for t in sorted(exp)}
        ctx.metrics["topics"] = {t: data.count(t) for t in sorted(data.topics)}
        from robot_capture.floor.contract import streams_from_custom_data

        names = streams_from_custom_data(ep.custom_data)
        if names:
            ctx.metrics["streams"] = {t: names[t] for t in sorted(names)}
    except BaseException:
        data.close()
        raise
    from robot_capture.qa.causes import assign

    assign(findings, cfg.idle.input_topics, ep.stop_reason)
    v = Verdict(findings=findings, source="qa", qa_version=QA_VERSION, config_sha256=cfg.sha256,
                bag_sha256=_bag_fingerprint(p), metrics=ctx.metrics, trim=ctx.trim)
    return ctx, v


def _bag_fingerprint(p: Path) -> str:
    """sha256 of the names, sizes and mtimes of the bag's .mcap files (not of their bytes: cheap)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(p.glob("*.mcap")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def folder_durations(bags) -> dict[str, list[float]]:
    """``{task: [duration s]}`` over ``bags`` (labels only; unreadable bags skipped)."""
    out: dict[str, list[float]] = {}
    for b in bags:
        try:
            ep = load_episode(b)
        except (OSError, ValueError):
            continue
        if ep.duration_s > 0:
            out.setdefault(ep.task, []).append(ep.duration_s)
    return out


def qa_paths(paths, config=None, expected=None, write=True, progress=False) -> list[tuple[Path, object]]:
    """QA of every bag in ``paths`` (bag directories or folders, searched recursively).

    Returns ``[(bag path, Verdict | error text)]`` in path order; an error text is one line
    (e.g. "not a bag directory"). The duration IQR rule uses the durations of all bags found.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: no bag found in ``paths`` (the message names them).
        robot_capture.config_schema.ConfigError: an invalid config.
    """
    from robot_capture.bag.errors import NotABagError

    cfg = as_config(config)
    paths = [Path(x) for x in paths]
    results: list[tuple[Path, object]] = []
    for x in paths:
        if not x.exists():
            raise FileNotFoundError(f"{x}: no such file or directory")
        if x.is_file() and x.suffix != ".mcap":
            results.append((x, "not a bag (a file, not a bag directory)"))
    bags = find_bags([x for x in paths if not (x.is_file() and x.suffix != ".mcap")])
    if not bags and not results:
        raise ValueError(f"no bags found in {', '.join(str(x) for x in paths)}")
    stats = folder_durations(bags)
    it = bags
    if progress and len(bags) > 1:
        from tqdm import tqdm

        it = tqdm(bags, desc="qa", unit="bag", file=__import__("sys").stderr)
    for b in it:
        try:
            results.append((Path(b), qa_episode(b, cfg, expected, stats, write)))
        except (NotABagError, FileNotFoundError) as exc:
            results.append((Path(b), str(exc).splitlines()[0]))
        except (OSError, ValueError) as exc:
            results.append((Path(b), f"{type(exc).__name__}: {str(exc).splitlines()[0]}"))
    return results


def env_progress() -> bool:
    """Progress bars on unless ``ROBOT_CAPTURE_NO_PROGRESS`` is set."""
    return not os.environ.get("ROBOT_CAPTURE_NO_PROGRESS")
