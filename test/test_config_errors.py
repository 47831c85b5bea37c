"""A new user's mistakes get one clear line, before anything starts: floor.yaml typos at any
level (with "did you mean"), node parameters a node does not declare, invalid YAML, bad values
naming their key, a misspelled robot, and the demo's bad arguments. No tracebacks."""
import subprocess
import sys
from pathlib import Path

import pytest

from robot_capture.config_schema import ConfigError
from robot_capture.floor import graph
from _cmd import module_command

SHIPPED = graph.default_config_path().read_text()


def _cli():
    exe = Path(sys.executable).parent / "robot-capture"
    return [str(exe)] if exe.exists() else module_command("robot_capture.cli")


def _variant(tmp_path, old, new, name="station.yaml"):
    assert old in SHIPPED, old
    p = tmp_path / name
    p.write_text(SHIPPED.replace(old, new, 1))
    return p


TYPOS = [  # (shipped text, typo, expected message)
    ("  rate_hz: 100.0", "  rate: 200", "retarget.rate: unknown key (did you mean 'rate_hz'?)"),
    ("  compression: none", "  compresion: zstd", "record.compresion: unknown key (did you mean 'compression'?)"),
    ("    width: 320", "    widht: 640", "cameras.head.widht: unknown key (did you mean 'width'?)"),
    ("  task: teleop", "  tsak: teleop", "episode.tsak: unknown key (did you mean 'task'?)"),
    ("parameters: {}", "parameters: {recorder: {flush_intervl_s: 0.5}}",
     "parameters.recorder.flush_intervl_s: not a parameter of node recorder (did you mean 'flush_interval_s'?)"),
    ("parameters: {}", "parameters: {retarget: {rate: 5}}", "parameters.retarget.rate: not a parameter of node retarget"),
    ("  rate_hz: 100.0", "  rate_hz: fast", "retarget.rate_hz: input should be a valid number"),
    ("  source: exo ", "  source: exoo ", "retarget.source: input should be 'exo', 'vr' or 'direct'"),
    ("  loop: true", "  loop: maybe", "sim.loop: input should be a valid boolean"),
]


@pytest.mark.parametrize("old,new,message", TYPOS, ids=[t[1].strip() for t in TYPOS])
def test_nested_typos_and_bad_values_are_errors(tmp_path, old, new, message):
    path = _variant(tmp_path, old, new)
    with pytest.raises(ConfigError) as exc:
        graph.build(graph.load_config(path), sim=True)
    assert str(exc.value).startswith(f"{path.name}: {message}"), str(exc.value)


def test_node_parameters_that_are_declared_pass(tmp_path):
    path = _variant(tmp_path, "parameters: {}", "parameters: {recorder: {flush_interval_s: 0.5, use_sim_time: false}}")
    specs = graph.build(graph.load_config(path))
    assert next(s for s in specs if s.name == "recorder").parameters["flush_interval_s"] == 0.5


def test_invalid_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("robot: g1\ncameras: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+:\d+: not valid YAML"):
        graph.load_config(p)


def test_misspelled_robot_caught_before_anything_starts():
    with pytest.raises(ConfigError, match="unknown robot 'g11' \\(did you mean 'g1'\\?\\)"):
        graph.build(None, sim=True, overrides={"robot": "g11"})


def _one_line_error(res, *needles):
    err = res.stderr.strip()
    assert res.returncode != 0, (res.stdout, err)
    assert "Traceback" not in err and "Traceback" not in res.stdout, err
    last = err.splitlines()[-1]
    for n in needles:
        assert n in last, err
    return last


@pytest.mark.timeout(120)
def test_cli_one_line_errors(tmp_path):
    run = lambda *a: subprocess.run([*_cli(), *a], capture_output=True, text=True, timeout=60,  # noqa: E731
                                    cwd=tmp_path)
    _one_line_error(run("up", "--sim", "--robot", "g11", "--dry-run"), "unknown robot 'g11'", "did you mean 'g1'")
    bad = _variant(tmp_path, "    width: 320", "    widht: 640")
    _one_line_error(run("up", str(bad), "--dry-run"), "cameras.head.widht: unknown key")
    broken = tmp_path / "broken.yaml"
    broken.write_text("robot: [g1\n")
    _one_line_error(run("up", str(broken), "--dry-run"), "not valid YAML")
    out = tmp_path / "demo_out"
    _one_line_error(run("demo", "--clip", "nothere.bvh", "--output-dir", str(out)), "nothere.bvh", "not found")
    _one_line_error(run("demo", "--robot", "g11", "--output-dir", str(out)), "unknown robot 'g11'")
    _one_line_error(run("demo", "--episodes", "0"), "--episodes", ">= 1")
    _one_line_error(run("demo", "--episode-seconds", "-1"), "--episode-seconds", "> 0")
    _one_line_error(run("demo", "--config", str(bad), "--output-dir", str(out)), "widht")
    assert not out.exists(), "nothing is created before the checks pass"
