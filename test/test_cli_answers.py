"""Honest CLI answers (issue 23 "CLI answers"): no bag is exit 2, an unusable output folder is
refused first in one line and in words, a mistyped option gets its own verb's usage and
"did you mean", and errors name the flag that gave the value, never a Python repr.

In-process through :func:`robot_capture.cli.main` (the installed package), except `record`,
which runs the recorder node (a subprocess, as a user runs it)."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from _cmd import module_command

from robot_capture.cli import build_parser, main

NOPE = "/proc/nope"  # /proc takes no new folder, not even from root


def _cli():
    exe = Path(sys.executable).parent / "robot-capture"
    return [str(exe)] if exe.exists() else module_command("robot_capture.cli")


def _run(capsys, *argv) -> tuple[int, str]:
    try:
        rc = main(list(argv))
    except SystemExit as exc:  # argparse's own exit
        rc = exc.code
    cap = capsys.readouterr()
    return rc, cap.err


def _fake_bag(path: Path) -> Path:
    """A bag directory as find_bags sees one (the checks under test run before it is read)."""
    path.mkdir(parents=True)
    (path / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    (path / "x_0.mcap").write_bytes(b"\x89MCAP0\r\n")
    return path


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err and "Errno" not in err, err
    return lines[0]


# -- export / batch: no bags, an --out that is a file --------------------------------------
def test_export_without_bags_is_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc, err = _run(capsys, "export", str(tmp_path / "empty"), "--out", str(tmp_path / "ds"), "--no-progress")
    assert rc == 2 and "no bags found in" in _one_line(err), err
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("flag", ["--out", "--rejects"])
def test_export_output_that_is_a_file_is_refused_first(tmp_path, capsys, flag):
    bag = _fake_bag(tmp_path / "bags" / "ep")
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = ["export", str(bag.parent), "--no-progress", "--out", str(tmp_path / "ds")]
    args += [flag, str(afile)] if flag == "--rejects" else []
    if flag == "--out":
        args[-1] = str(afile)
    rc, err = _run(capsys, *args)
    line = _one_line(err)
    assert rc == 2 and f"{flag}: {afile} is a file, not a directory" in line, err
    assert "NotADirectoryError" not in err


def test_export_output_that_cannot_be_made(tmp_path, capsys):
    bag = _fake_bag(tmp_path / "bags" / "ep")
    rc, err = _run(capsys, "export", str(bag), "--out", f"{NOPE}/ds", "--no-progress")
    assert rc == 2 and f"cannot create output directory {NOPE}/ds: No such file or directory" in _one_line(err)


@pytest.mark.parametrize("stage", ["qa", "export", "retarget"])
def test_batch_out_that_is_a_file_and_no_bags(tmp_path, capsys, stage):
    bag = _fake_bag(tmp_path / "bags" / "ep")
    afile = tmp_path / "afile"
    afile.write_text("x")
    rc, err = _run(capsys, "batch", stage, str(bag.parent), "--out", str(afile), "--quiet")
    assert rc == 2 and f"--out: {afile} is a file, not a directory" in _one_line(err)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a bag\n")
    rc, err = _run(capsys, "batch", stage, str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--quiet")
    assert rc == 2 and "no bags found in" in _one_line(err)


# -- a mistyped option: that verb's usage and "did you mean" --------------------------------
def _leaves(parser, path=()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if path:
        yield path, parser
    for s in subs:
        for name, child in s.choices.items():
            yield from _leaves(child, (*path, name))


def _typo(parser) -> tuple[str, str]:
    """(an option of ``parser``, a typo of it that is neither an option nor an abbreviation)."""
    longs = [o for o in parser._option_string_actions if o.startswith("--") and o not in ("--help", "--version")]
    for opt in sorted(longs, key=len, reverse=True):
        body = opt[2:]
        if len(body) < 3:
            continue
        typo = "--" + body[0] + body[2] + body[1] + body[3:]  # two letters swapped
        if typo != opt and not any(o.startswith(typo) for o in parser._option_string_actions):
            return opt, typo
    raise AssertionError(f"{parser.prog}: no long option to mistype")


LEAVES = {" ".join(path): p for path, p in _leaves(build_parser())
          if any(o.startswith("--") and o != "--help" for o in p._option_string_actions)}


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_a_mistyped_option_gets_its_verbs_usage_and_did_you_mean(name, capsys):
    opt, typo = _typo(LEAVES[name])
    rc, err = _run(capsys, *name.split(), typo)
    assert rc == 2, err
    assert f"usage: robot-capture {name}" in err, err
    assert f"did you mean {opt}?" in err, err


def test_episode_start_taks(capsys):
    rc, err = _run(capsys, "episode", "start", "--taks", "pick_cup")
    assert rc == 2 and err.startswith("usage: robot-capture episode start"), err
    assert "unrecognized arguments: --taks pick_cup; did you mean --task?" in err


def test_a_mistyped_verb_action_or_stage_gets_did_you_mean(capsys):
    rc, err = _run(capsys, "expotr", "x")
    assert rc == 2 and "did you mean export?" in err, err
    rc, err = _run(capsys, "episode", "strat")
    assert rc == 2 and "usage: robot-capture episode" in err and "did you mean start?" in err, err
    rc, err = _run(capsys, "batch", "exprot", "d", "--out", "o")
    assert rc == 2 and "did you mean export?" in err, err


# -- errors that name the flag, in words ---------------------------------------------------
def test_up_robot_flag_is_named_with_did_you_mean(capsys):
    rc, err = _run(capsys, "up", "--robot", "g2", "--dry-run")
    line = _one_line(err)
    assert rc == 2 and "--robot g2: unknown robot 'g2' (did you mean 'g1'?); known: g1, " in line and "h1" in line, err
    assert "floor.yaml" not in line and "[" not in line


@pytest.mark.parametrize("verb", [("demo",), ("retarget", "cmu_02_05_punch_strike.bvh", "--out", "x.npz")])
def test_other_verbs_name_the_robot_flag_in_words(verb, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, err = _run(capsys, *verb, "--robot", "g2")
    line = _one_line(err)
    assert rc == 2 and "--robot g2: unknown robot 'g2' (did you mean 'g1'?)" in line, err
    assert "floor.yaml" not in line and "[" not in line and '"' not in line
    assert not (tmp_path / "x.npz").exists()


def test_up_cameras_in_plain_words(capsys):
    rc, err = _run(capsys, "up", "--cameras", "haed", "--dry-run")
    line = _one_line(err)
    assert rc == 2 and "--cameras haed: no camera 'haed' in floor.yaml (did you mean 'head'?)" in line, err
    assert "[" not in line and '"' not in line


def test_up_output_dir_that_cannot_be_made(capsys):
    rc, err = _run(capsys, "up", "--output-dir", NOPE, "--dry-run")
    line = _one_line(err)
    assert rc == 2 and f"--output-dir: cannot create output directory {NOPE}: No such file or directory" in line


def test_demo_output_dir_that_cannot_be_made(capsys):
    rc, err = _run(capsys, "demo", "--output-dir", NOPE)
    assert rc == 2 and f"cannot create output directory {NOPE}" in _one_line(err)


def test_retarget_out_that_cannot_be_made_is_refused_before_the_work(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, err = _run(capsys, "retarget", "cmu_02_05_punch_strike.bvh", "--robot", "g1", "--out", f"{NOPE}/x.npz",
                   "--quiet")
    assert rc == 2 and f"cannot create output directory {NOPE}" in _one_line(err)


@pytest.mark.ros
@pytest.mark.timeout(120)
def test_record_output_dir_that_cannot_be_made(tmp_path):
    res = subprocess.run([*_cli(), "record", "-a", "-o", NOPE], capture_output=True, text=True, timeout=100,
                         cwd=tmp_path)
    line = _one_line(res.stderr)
    assert res.returncode == 2 and f"--output: cannot create output directory {NOPE}" in line, res.stderr


def test_an_unhandled_os_error_is_one_line_in_words(capsys, monkeypatch):
    import robot_capture.cli.info as info

    def boom(args):
        raise FileNotFoundError(2, "No such file or directory", "/data/x")

    monkeypatch.setattr(info, "run", boom)
    rc, err = _run(capsys, "info", "whatever")
    assert rc == 1 and _one_line(err) == "robot-capture info: /data/x: No such file or directory"


@pytest.mark.parametrize("argv", [["episode", "status", "--station", "a b"], ["episode", "start", "--recorder", "re-c"],
                                  ["console", "--keys", "--station", "a b"]])
def test_an_invalid_station_or_recorder_name_is_one_line_before_rclpy(argv, capsys):
    """`--station 'a b'` reached rclpy's create_client and died with InvalidServiceNameException."""
    rc, err = _run(capsys, *argv)
    assert rc == 2, err
    assert "not a valid ROS name" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
