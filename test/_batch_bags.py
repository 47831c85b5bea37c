"""Real bags from the simulated floor for the batch tests, recorded once per test process.

``robot-capture demo``'s :func:`run_demo` brings up the sim floor (mocap_replay on a real CMU
clip -> retarget -> robot_sim, a head camera, the recorder) and records two short episodes
through the recorder's services. :func:`archive` copies them to ``n`` bag directories named
``<name>_cNN``, renames each copy's ``.mcap`` file after its directory (rosbag2's own naming,
metadata.yaml updated) and relabels it (``notes``, a metadata.yaml rewrite). Every copy then
has its own content sha256 for the batch ledger (which covers metadata.yaml: labels are
inputs of QA and export) and its own recording key for the exporter (which covers the
``.mcap`` files with their names, not metadata.yaml: two copies under one file name would
be one recording to it, and the merge would keep one), while the message data are the floor's.
"""
from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

_RECORDED: list[Path] = []


def recorded_bags() -> list[Path]:
    """Two real floor episodes (2 s each), recorded on first use in this process."""
    if not _RECORDED:
        from robot_capture.floor.demo import list_bags, run_demo

        for attempt in range(3):  # a loaded 2-core box can starve the floor's start-up: try again
            out = Path(tempfile.mkdtemp(prefix="rc_batch_floor_"))
            log = io.StringIO()
            rc = run_demo(out, episodes=2, episode_s=2.0, out=log)
            bags = list_bags(out)
            if rc == 0 and len(bags) == 2:
                break
            shutil.rmtree(out, ignore_errors=True)
        else:
            raise RuntimeError(f"the sim floor did not record 2 episodes (rc {rc}):\n{log.getvalue()[-3000:]}")
        _RECORDED.extend(bags)
    return list(_RECORDED)


def _rename_mcap(bag: Path) -> None:
    from robot_capture.bag.metadata import read_metadata, write_metadata

    old = next(bag.glob("*.mcap"))
    new = f"{bag.name}_0.mcap"
    old.rename(bag / new)
    meta = read_metadata(bag)
    meta.relative_file_paths = [new]
    for f in meta.files:
        f.path = new
    write_metadata(bag, meta)


def archive(root: Path, n: int = 12, bad: bool = True) -> tuple[list[Path], dict]:
    """``n`` relabelled copies of the floor episodes under ``root/archive/day1``; with ``bad``,
    also a non-bag file and a truncated bag. Returns (good bags sorted, {"not_bag", "truncated"})."""
    from robot_capture.episodes import relabel

    src = recorded_bags()
    day = root / "archive" / "day1"
    day.mkdir(parents=True)
    bags = []
    for i in range(n):
        d = day / f"{src[i % 2].name}_c{i:02d}"
        shutil.copytree(src[i % 2], d)
        _rename_mcap(d)
        relabel(d, notes=f"batch test copy {i}")
        bags.append(d)
    extra = {}
    if bad:
        (day / "README.txt").write_text("not a bag\n")
        extra["not_bag"] = day / "README.txt"
        t = day / "zz_truncated"
        shutil.copytree(src[0], t)
        mcap = next(t.glob("*.mcap"))
        data = mcap.read_bytes()
        mcap.write_bytes(data[: len(data) // 3])
        extra["truncated"] = t
    return sorted(bags), extra
