"""Short fuzz runs of the file loaders (benchmarks/fuzz.py has the targets and the long runs).

Hypothesis drives the seeded mutator (``st.randoms``), so a crash shrinks to a small
reproducible input. A crash is any exception other than ValueError / KeyError /
FileNotFoundError, or a loaded model with non-finite values (see benchmarks/fuzz.py).
The mapping target loads the YAML through ``RobotMapping.load`` and builds a ``Retargeter``.
"""
import importlib.util
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py"


def _load():
    if str(SCRIPT.parent) not in sys.path:  # benchmarks/_installed.py (not the package source tree)
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("fuzz_targets", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FUZZ = _load()
EXAMPLES = {"bvh": 400, "urdf": 1500, "exo": 300, "mapping": 300}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("target", sorted(EXAMPLES))
def test_loader_fuzz_no_crash(target):
    import logging

    seed_fn, _run, extra = FUZZ.TARGETS[target]
    seed = seed_fn()
    crashes = []
    with tempfile.TemporaryDirectory(prefix="rc_fuzz_") as td:
        tmp = Path(td)

        @settings(max_examples=EXAMPLES[target], deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.randoms(use_true_random=False))
        def run(rnd):
            text = FUZZ.mutate(seed, rnd, extra)
            site = FUZZ.one(target, text, tmp)
            if site is not None:
                crashes.append(site)
            assert site is None, f"{site} on input:\n{text[:2000]}"

        logging.disable(logging.WARNING)
        try:
            run()
        finally:
            logging.disable(logging.NOTSET)
    assert not crashes


def test_fuzz_script_counts_and_exit_status(capsys):
    """The long-run entry point: prints runs and crashes per target, exit 0 with none."""
    assert FUZZ.main(["--target", "urdf", "--seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert "urdf" in out and "crashes      0" in out


def test_known_parser_crashes_are_clean_errors(tmp_path):
    """The issue's cases: Frames: 0, a degenerate skeleton, an unknown XML encoding, bad exo YAML."""
    from robot_capture.kinematics.urdf import parse_urdf
    from robot_capture.retarget.bvh import load_bvh
    from robot_capture.retarget.exo import ExoArmModel

    seed = FUZZ.bvh_seed()
    (tmp_path / "zero.bvh").write_text(seed.replace("Frames: 3", "Frames: 0"))
    with pytest.raises(ValueError, match="at least one motion frame"):
        load_bvh(tmp_path / "zero.bvh")
    import re

    (tmp_path / "flat.bvh").write_text(re.sub(r"OFFSET[^\n]*", "OFFSET 0 0 0", seed))
    with pytest.raises(ValueError):
        load_bvh(tmp_path / "flat.bvh").human_poses()
    (tmp_path / "enc.urdf").write_text(FUZZ._xml_header(FUZZ.URDF_SEED, type("R", (), {
        "choice": staticmethod(lambda xs: xs[0])})()))
    with pytest.raises(ValueError, match="encoding"):
        parse_urdf(tmp_path / "enc.urdf")
    (tmp_path / "exo.yaml").write_text("arms: {left: 3, right: []}\n")
    with pytest.raises(ValueError, match="7 joints"):
        ExoArmModel.load(tmp_path / "exo.yaml")
    (tmp_path / "bad.yaml").write_text("arms: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        ExoArmModel.load(tmp_path / "bad.yaml")
