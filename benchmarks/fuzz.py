"""Fuzz the file loaders: BVH clips, URDF models, robot mapping YAML (+ Retargeter), exo arm YAML.

Each target starts from a valid seed file and applies 1-4 seeded mutations (token
replacement with hostile values such as ``nan``, ``1e308``, ``0``, ``-1``, ``[]``,
line deletion/duplication/swap, truncation, zeroed OFFSETs, odd XML encodings and
entities), writes the result to a temp file and loads it through the public loader,
as a user's file would be. A *crash* is any exception other than the documented
ValueError / KeyError / FileNotFoundError, or a loaded model with non-finite values
(BVH keypoints, URDF forward kinematics, exo arm FK, mapping limits that are NaN,
negative or zero). Distinct crash sites (exception type + innermost repo frame) are
counted and the first input of each is saved.

Usage (the long runs of issue 14; 0 crashes is the target)::

    nice -n 19 python benchmarks/fuzz.py --target bvh --seconds 600 --save-dir /tmp/fuzz_bvh

``test/test_fuzz.py`` runs each target for a few seconds under hypothesis (shrinking).
Prints runs, runs/s, crashes and distinct crash sites; exit status 1 if any crash.
"""
from __future__ import annotations

import argparse
import math
import random
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

if __name__ == "__main__":  # run as a script (benchmarks/ is sys.path[0]): measure the installed package
    from _installed import require_installed

    require_installed()

import numpy as np

ALLOWED = (ValueError, KeyError, FileNotFoundError)
HOSTILE = ["0", "-0", "-1", "1e308", "-1e308", "1e-320", "nan", ".nan", "inf", "-.inf", "", "abc", "999999999999999999",
           "{", "}", "[]", "{}", "null", "~", "'x'", "3 4", "0x10", "1_0", "\u00fc", "\x00", "-", ":", "true", "[1, 2]",
           "CHANNELS", "JOINT", "End Site", "MOTION", "Frames:", "ROOT", "<", ">", "&amp;", "&x;"]


def _find_data() -> Path:
    from robot_capture.paths import data_dir

    return Path(data_dir())


# ---- mutation ------------------------------------------------------------------------------
def mutate(text: str, rnd: random.Random, extra_ops=()) -> str:
    """1-4 random edits of ``text`` (see module docstring)."""
    for _ in range(rnd.randint(1, 4)):
        lines = text.split("\n")
        op = rnd.choice(("token", "token", "token", "del_line", "dup_line", "swap", "truncate", "insert", *extra_ops))
        if op == "token":
            spans = [m.span() for m in re.finditer(r"[^\s<>=\"'/,\[\]{}:]+", text)]
            if spans:
                a, b = rnd.choice(spans)
                text = text[:a] + rnd.choice(HOSTILE) + text[b:]
        elif op == "del_line" and lines:
            del lines[rnd.randrange(len(lines))]
            text = "\n".join(lines)
        elif op == "dup_line" and lines:
            k = rnd.randrange(len(lines))
            lines.insert(k, lines[k])
            text = "\n".join(lines)
        elif op == "swap" and len(lines) > 1:
            i, j = rnd.randrange(len(lines)), rnd.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif op == "truncate":
            text = text[:rnd.randrange(len(text) + 1)]
        elif op == "insert":
            k = rnd.randrange(len(text) + 1)
            text = text[:k] + rnd.choice(HOSTILE + ["\n", " ", "\t"]) + text[k:]
        elif callable(op):
            text = op(text, rnd)
    return text


def _zero_offsets(text: str, rnd: random.Random) -> str:
    return re.sub(r"OFFSET[^\n]*", "OFFSET 0 0 0", text) if rnd.random() < 0.5 else \
        re.sub(r"OFFSET[^\n]*", lambda m: "OFFSET 0 0 0" if rnd.random() < 0.5 else m.group(0), text)


def _frames(text: str, rnd: random.Random) -> str:
    return re.sub(r"Frames:\s*\d+", f"Frames: {rnd.choice([0, 1, 2, 5, -1, 10**9])}", text)


def _xml_header(text: str, rnd: random.Random) -> str:
    enc = rnd.choice(["bogus", "utf-16", "latin-1", "ascii", "utf-8", "x-unknown-enc", ""])
    dtd = rnd.choice(["", '<!DOCTYPE robot [<!ENTITY a "1 0 0">]>',
                      '<!DOCTYPE r [<!ENTITY x "xx"><!ENTITY y "&x;&x;&x;&x;&x;&x;&x;&x;">]>'])
    return f'<?xml version="1.0" encoding="{enc}"?>{dtd}\n' + re.sub(r"^<\?xml[^>]*>\s*", "", text)


# ---- seeds ---------------------------------------------------------------------------------
def bvh_seed() -> str:
    """A real CMU clip (cgspeed naming) cut to its hierarchy and 3 frames."""
    text = (_find_data() / "motion" / "cmu_02_01_walk.bvh").read_text()
    head, motion = text.split("MOTION", 1)
    mlines = motion.strip("\n").split("\n")
    rows = [ln for ln in mlines[2:] if ln.strip()][:3]
    return head + "MOTION\nFrames: 3\n" + mlines[1] + "\n" + "\n".join(rows) + "\n"


URDF_SEED = """<?xml version="1.0"?>
<robot name="fuzz">
  <link name="base"/>
  <link name="l1"/><link name="l2"/><link name="l3"/><link name="tool"/>
  <joint name="j1" type="revolute"><parent link="base"/><child link="l1"/>
    <origin xyz="0 0 0.1" rpy="0 0 0"/><axis xyz="0 0 1"/><limit lower="-1.5" upper="1.5" velocity="2" effort="10"/></joint>
  <joint name="j2" type="continuous"><parent link="l1"/><child link="l2"/>
    <origin xyz="0.2 0 0" rpy="0.1 0.2 0.3"/><axis xyz="0 1 0"/></joint>
  <joint name="j3" type="prismatic"><parent link="l2"/><child link="l3"/>
    <origin xyz="0 0.1 0"/><axis xyz="1 0 0"/><limit lower="0" upper="0.3" velocity="0.5" effort="5"/></joint>
  <joint name="j4" type="revolute"><parent link="l3"/><child link="tool"/>
    <origin xyz="0 0 0.05"/><axis xyz="0 0 1"/><limit lower="-1" upper="1" velocity="1" effort="1"/>
    <mimic joint="j1" multiplier="0.5" offset="0.1"/></joint>
</robot>
"""


def mapping_seed() -> str:
    from robot_capture.paths import config_dir

    return (Path(config_dir()) / "robots" / "g1.yaml").read_text()


def exo_seed() -> str:
    from robot_capture.paths import config_dir

    return (Path(config_dir()) / "human" / "exo_arm.yaml").read_text()


# ---- targets: load, then check the model is finite -----------------------------------------
class NonFinite(Exception):
    """A loader accepted input and produced a model with non-finite (or invalid) values."""


def _write(tmp: Path, name: str, text: str, raw: bytes | None = None) -> Path:
    p = tmp / name
    p.write_bytes(raw if raw is not None else text.encode("utf-8", "surrogatepass"))
    return p


def run_bvh(text: str, tmp: Path) -> None:
    from robot_capture.retarget.bvh import load_bvh

    clip = load_bvh(_write(tmp, "clip.bvh", text))
    batch = clip.human_poses()
    for name, T in batch.keypoints.items():
        if not np.isfinite(T).all():
            raise NonFinite(f"BVH keypoint {name} has non-finite values")


def run_urdf(text: str, tmp: Path) -> None:
    from robot_capture.kinematics.model import RobotModel

    model = RobotModel.from_urdf(_write(tmp, "robot.urdf", text))
    q = np.clip(np.zeros(model.nq), model.lower, model.upper)
    if not np.isfinite(model.fk_all(q)).all():
        raise NonFinite("URDF forward kinematics at q=0 is non-finite")
    if np.isnan(model.lower).any() or np.isnan(model.upper).any() or (model.lower > model.upper).any():
        raise NonFinite("URDF joint limits NaN or lower > upper")


def run_mapping(text: str, tmp: Path) -> None:
    from robot_capture.retarget.mapping import RobotMapping
    from robot_capture.retarget.retargeter import Retargeter

    m = RobotMapping.load(_write(tmp, "robot.yaml", text))
    r = Retargeter(m)
    for what, v in (("acceleration_limit", m.acceleration_limit), ("stale_after_s", m.stale_after_s),
                    ("rate_hz", m.rate_hz)):
        if not (math.isfinite(v) and v > 0):
            raise NonFinite(f"mapping {what}={v} accepted")
    vl = m.velocity_limit_array(r.model)
    if not (np.isfinite(vl).all() and (vl > 0).all()):
        raise NonFinite(f"mapping velocity limits {vl.min()} accepted")
    if m.posture_cost < 0 or any(t.position_cost < 0 or t.orientation_cost < 0 for t in m.tasks):
        raise NonFinite("negative cost accepted")


def run_exo(text: str, tmp: Path) -> None:
    from robot_capture.retarget.exo import ExoArmModel

    exo = ExoArmModel.load(_write(tmp, "exo.yaml", text))
    for k, v in exo.lengths.items():
        if not np.isfinite(v).all():
            raise NonFinite(f"exo segment length {k} non-finite")
    out = exo.fk_batch(np.zeros((1, len(exo.joint_names))))
    for k, T in out.items():
        if not np.isfinite(T).all():
            raise NonFinite(f"exo FK {k} non-finite")


TARGETS = {
    "bvh": (bvh_seed, run_bvh, (_zero_offsets, _frames)),
    "urdf": (lambda: URDF_SEED, run_urdf, (_xml_header,)),
    "mapping": (mapping_seed, run_mapping, ()),
    "exo": (exo_seed, run_exo, ()),
}


def crash_site(exc: BaseException) -> str:
    """``Type at file:line`` of the innermost robot_capture frame (the crash site's identity)."""
    tb = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in tb if "robot_capture" in f.filename] or tb
    f = ours[-1] if ours else None
    return f"{type(exc).__name__} at {Path(f.filename).name}:{f.lineno}" if f else type(exc).__name__


def one(target: str, text: str, tmp: Path) -> str | None:
    """Run one input; None if it loaded cleanly or raised an allowed error, else the crash site."""
    import warnings

    run = TARGETS[target][1]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with np.errstate(all="ignore"):
                run(text, tmp)
    except ALLOWED:
        return None
    except RecursionError:
        return "RecursionError"
    except Exception as exc:  # noqa: BLE001 - what the fuzzer counts
        return crash_site(exc) if not isinstance(exc, NonFinite) else f"NonFinite: {exc}"
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--target", choices=sorted(TARGETS), action="append",
                    help="loader to fuzz (repeatable; default: all)")
    ap.add_argument("--seconds", type=float, default=10.0, help="run time per target")
    ap.add_argument("--seed", type=int, default=0, help="random seed (runs are reproducible per seed)")
    ap.add_argument("--save-dir", default=None, help="save the first input of each distinct crash site here")
    args = ap.parse_args(argv)
    import logging

    logging.disable(logging.WARNING)  # loaders warn about what they degrade; the fuzzer counts crashes
    total_crashes = 0
    with tempfile.TemporaryDirectory(prefix="rc_fuzz_") as td:
        tmp = Path(td)
        for target in args.target or sorted(TARGETS):
            seed_fn, _run, extra = TARGETS[target]
            seed = seed_fn()
            rnd = random.Random(args.seed)
            runs = crashes = 0
            sites: dict[str, str] = {}
            t0 = time.monotonic()
            while time.monotonic() - t0 < args.seconds:
                text = mutate(seed, rnd, extra)
                runs += 1
                site = one(target, text, tmp)
                if site is not None:
                    crashes += 1
                    if site not in sites:
                        sites[site] = text
                        if args.save_dir:
                            d = Path(args.save_dir)
                            d.mkdir(parents=True, exist_ok=True)
                            (d / f"{target}_{len(sites)}.txt").write_text(f"# {site}\n{text}", errors="replace")
            dt = time.monotonic() - t0
            print(f"{target:8s} runs {runs:8d}  {runs / dt:7.1f}/s  crashes {crashes:6d}  distinct sites {len(sites)}")
            for s in sorted(sites):
                print(f"    {s}")
            total_crashes += crashes
    return 1 if total_crashes else 0


if __name__ == "__main__":
    sys.exit(main())
