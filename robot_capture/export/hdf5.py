"""``robot-capture export --format hdf5-aloha|hdf5-robomimic``: the export grid written as HDF5.

Thin writers over the LeRobot export's core: the same bag selection (:mod:`.selection`, QA
verdict and success label), mapping (:mod:`.mapping`), frame grid and alignment
(:mod:`.extract`, :mod:`.grid`); camera frames go straight into the file as uint8 RGB
(``extract_episode(frame_sink=...)``, no video codec), one frame per grid step.

Layouts (units: rad, s; arrays ``T`` = grid frames):

* ``hdf5-aloha`` (ALOHA / ACT ``episode_<i>.hdf5``, as ACT's ``utils.EpisodicDataset`` reads
  it): ``out`` is a directory; per episode ``/observations/qpos (T, D)`` = ``observation.state``,
  ``/observations/qvel (T, D)`` = its time derivative on the grid (``numpy.gradient`` x fps: the
  bag's state has positions only), ``/observations/images/<camera> (T, H, W, 3) uint8``,
  ``/action (T, D)``; other mapped features as ``/observations/<key>`` (``observation.`` dropped,
  dots -> ``_``); root attrs ``sim`` = False, ``fps``, ``grid_start_ns`` (frame k is at
  ``grid_start_ns + k / fps``, header stamps), the labels, QA verdict and error cause.
* ``hdf5-robomimic`` (robomimic's ``data/demo_<i>``): ``out`` is one file; ``data`` attrs
  ``total`` (samples) and ``env_args`` (JSON); per demo ``obs/<key>`` (``joint_pos`` =
  ``observation.state``, ``<camera>_image`` (T, H, W, 3) uint8, others as above), ``actions``,
  ``rewards`` (0), ``dones`` (1 on the last step); demo attrs ``num_samples`` and the labels.

Ours: every file carries the root attribute ``robot_capture.format`` (``hdf5-aloha/1`` |
``hdf5-robomimic/1``); an existing target without it is refused (ValueError, one line), never
written into. Each episode records its bag's ``source_sha256``: a bag already there is skipped.
An episode is written under a temporary name and renamed when complete.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from robot_capture.export import mapping as mp
from robot_capture.export.extract import EpisodeError, bag_sha256, extract_episode
from robot_capture.export.lerobot import EpisodeResult, ExportOptions, ExportSummary, _mapping
from robot_capture.export.selection import decide, gate

__all__ = ["FORMATS", "MARK", "export_hdf5"]

FORMATS = ("hdf5-aloha", "hdf5-robomimic")
#: root attribute of every HDF5 file we write
MARK = "robot_capture.format"
_STATE, _ACTION, _CAM = "observation.state", "action", "observation.images."


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ValueError("HDF5 export needs h5py: pip install 'robot_capture[export]' (or pip install h5py)") from None
    return h5py


def _ours(h5py, path: Path, layout: str) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get(MARK, "")).startswith(layout + "/")
    except OSError:
        return False


def _check_target(h5py, out: Path, layout: str) -> None:
    """Raise ValueError (one line) for a target that exists and is not ours."""
    if layout == "hdf5-aloha":
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out}: exists and is not a directory (hdf5-aloha writes episode_<i>.hdf5 files into one)")
        for f in sorted(out.glob("*.hdf5")) if out.is_dir() else []:
            if not _ours(h5py, f, layout):
                raise ValueError(f"{f}: an HDF5 file that robot_capture did not write (no {MARK} attribute): "
                                 f"choose another --out")
    elif out.exists() and not _ours(h5py, out, layout):
        raise ValueError(f"{out}: exists and is not a robot_capture {layout} file: choose another --out")


def _short(key: str) -> str:
    return (key[len("observation."):] if key.startswith("observation.") else key).replace(".", "_")


def _attrs(ep, decision, sha: str, grid, names: dict) -> dict:
    return {"source_sha256": sha, "source_bag": str(ep.path), "fps": int(grid.fps), "grid_start_ns": int(grid.t0_ns),
            "task": ep.task or "",
            "operator": ep.operator or "", "success": "unknown" if ep.success is None else str(bool(ep.success)).lower(),
            "qa_verdict": decision.verdict, "qa_error_cause": decision.error_cause,
            "names": json.dumps(names, sort_keys=True)}


class _Sink:
    """Camera frames of one episode straight into an HDF5 dataset (T, H, W, 3) uint8."""

    def __init__(self, ds):
        self.ds, self.k = ds, 0

    def add(self, rgb) -> None:
        self.ds[self.k] = rgb
        self.k += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _have(h5py, out: Path, layout: str) -> tuple[set, int]:
    """(source sha256s already there, next episode index)."""
    shas, nxt = set(), 0
    if layout == "hdf5-aloha":
        for f in sorted(out.glob("episode_*.hdf5")) if out.is_dir() else []:
            with h5py.File(f, "r") as h:
                shas.add(str(h.attrs.get("source_sha256", "")))
            try:
                nxt = max(nxt, int(f.stem.split("_")[1]) + 1)
            except (IndexError, ValueError):
                pass
    elif out.exists():
        with h5py.File(out, "r") as h:
            for name, g in h.get("data", {}).items():
                if name.startswith("demo_"):
                    shas.add(str(g.attrs.get("source_sha256", "")))
                    nxt = max(nxt, int(name.split("_")[1]) + 1)
    return shas, nxt


def _fill(g, ex, layout: str) -> None:
    """Numeric columns of an extracted episode into group ``g`` (frames are already there)."""
    cols = ex.columns
    if layout == "hdf5-aloha":
        q = cols[_STATE]
        g.create_dataset("observations/qpos", data=q)
        g.create_dataset("observations/qvel", data=(np.gradient(q, axis=0) * ex.grid.fps if len(q) > 1
                                                    else np.zeros_like(q)).astype(np.float32))
        g.create_dataset("action", data=cols[_ACTION])
        obs = "observations/"
    else:
        g.create_dataset("obs/joint_pos", data=cols[_STATE])
        g.create_dataset("actions", data=cols[_ACTION])
        g.create_dataset("rewards", data=np.zeros(len(cols[_ACTION]), np.float32))
        dones = np.zeros(len(cols[_ACTION]), np.int64)
        dones[-1:] = 1
        g.create_dataset("dones", data=dones)
        g.attrs["num_samples"] = int(len(cols[_ACTION]))
        obs = "obs/"
    for key, a in sorted(cols.items()):
        if key not in (_STATE, _ACTION):
            g.create_dataset(obs + _short(key), data=a)


def _image_path(layout: str, key: str) -> str:
    cam = key[len(_CAM):] if key.startswith(_CAM) else _short(key)
    return f"observations/images/{cam}" if layout == "hdf5-aloha" else f"obs/{cam}_image"


def _write_episode(h5py, out: Path, layout: str, bag: Path, ep, decision, mapping, fps, index: int) -> int:
    """Extract ``bag`` and write it as episode ``index``; returns its frame count."""
    from robot_capture.bag.reader import BagReader
    from robot_capture.floor.contract import streams_from_custom_data

    with BagReader(bag) as reader:
        res = mp.resolve(mapping, reader.topics, None, streams_from_custom_data(ep.custom_data))
        if layout == "hdf5-aloha":
            final = out / f"episode_{index}.hdf5"
            tmp = out / f".episode_{index}.hdf5.tmp"
            f = h5py.File(tmp, "w")
            g = f
        else:
            f = h5py.File(out, "a")
            tmp_name = f".demo_{index}.tmp"
            if tmp_name in f.require_group("data"):
                del f["data"][tmp_name]
            g = f["data"].create_group(tmp_name)
        try:
            sink = lambda key, w, h, n: _Sink(g.create_dataset(_image_path(layout, key), (n, h, w, 3), np.uint8,  # noqa: E731
                                                               chunks=(1, h, w, 3)))
            with tempfile.TemporaryDirectory(prefix=".export-", dir=out.parent) as td:
                ex = extract_episode(reader, mapping, res, Path(td), fps=fps, frame_sink=sink)
            missing = [k for k in (_STATE, _ACTION) if k not in ex.columns]
            if missing:
                raise EpisodeError(f"the mapping gives no {' or '.join(missing)} (the HDF5 layouts need both)")
            _fill(g, ex, layout)
            g.attrs.update(_attrs(ep, decision, bag_sha256(bag), ex.grid, ex.names))
            if layout == "hdf5-aloha":
                f.attrs.update({MARK: f"{layout}/1", "sim": False})
                f.close()
                os.replace(tmp, final)
            else:
                f.attrs[MARK] = f"{layout}/1"
                data = f["data"]
                data.move(tmp_name, f"demo_{index}")
                data.attrs["total"] = int(sum(int(d.attrs.get("num_samples", 0)) for n, d in data.items()
                                              if n.startswith("demo_")))
                data.attrs["env_args"] = json.dumps({"env_name": "robot_capture", "type": 0, "env_kwargs": {}})
                f.close()
            return ex.grid.n
        except BaseException:
            if layout == "hdf5-aloha":
                f.close()
                tmp.unlink(missing_ok=True)
            else:
                if tmp_name in f["data"]:
                    del f["data"][tmp_name]
                f.close()
            raise


def export_hdf5(bags, out, layout: str, options: ExportOptions | None = None) -> ExportSummary:
    """Export episode bags into ``out`` in ``layout`` (one of :data:`FORMATS`). Never raises for a
    bad bag (its result says why); the selection and ``include_failed`` are the LeRobot export's.

    Raises:
        ValueError: an unknown layout, h5py missing, or a target that exists and is not ours.
        ConfigError / FileNotFoundError: the mapping file.
    """
    from robot_capture.episodes import find_bags, load_episode

    if layout not in FORMATS:
        raise ValueError(f"unknown HDF5 layout {layout!r} ({', '.join(FORMATS)})")
    h5py = _h5py()
    options = options or ExportOptions()
    mapping = _mapping(options)
    out = Path(out).resolve()
    _check_target(h5py, out, layout)
    if layout == "hdf5-aloha":
        out.mkdir(parents=True, exist_ok=True)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(out=str(out))
    shas, index = _have(h5py, out, layout)
    for bag in find_bags([Path(b) for b in bags]):
        r = EpisodeResult(bag=str(bag), status="error", dataset=str(out))
        summary.results.append(r)
        blocked = gate(bag)
        if blocked is not None:
            r.status, r.reason = blocked
            continue
        try:
            ep = load_episode(bag)
        except (OSError, ValueError) as exc:
            r.reason = str(exc).splitlines()[0]
            continue
        if ep.recording:
            r.status, r.reason = "skipped", "still recording"
            continue
        decision = decide(ep, include_failed=options.include_failed, run_qa=options.run_qa)
        r.note = decision.note
        if not decision.deliver:
            r.status, r.reason = "skipped", f"not selected: {decision.reason} (--include-failed)"
            continue
        sha = bag_sha256(bag)
        r.sha256 = sha
        if sha in shas:
            r.status, r.reason = "skipped", f"already in {out.name} (same sha256)"
            continue
        try:
            r.frames = _write_episode(h5py, out, layout, Path(bag), ep, decision, mapping, options.fps, index)
        except mp.MissingStreamError as exc:
            r.reason = str(exc)
            continue
        except EpisodeError as exc:
            r.status = "skipped" if exc.kind == "skip" else "error"
            r.reason = str(exc)
            continue
        except (ValueError, OSError, EOFError) as exc:
            r.reason = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            continue
        r.status, r.episode_index = "exported", index
        shas.add(sha)
        index += 1
    return summary
