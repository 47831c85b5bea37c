"""Every config number finite and in range, every topic a valid ROS name (issue 23): the known
cases, each a clear one-line error naming the file and the key, before anything starts.

* ``.inf`` for ``sim.joint_state_rate_hz``, a camera's ``rate_hz``, ``mocap_replay`` ``speed``
  (passed validation and ``up --dry-run``, then robot_sim and the camera died with
  ZeroDivisionError in sim/ticker.py); the Ticker itself rejects such a rate;
* a NaN threshold in qa.yaml (made every comparison false: a failing episode passed);
* a Joy map with an invalid topic name (loaded, then the recorder died at start);
* an unknown keypoint in a robot mapping (a bare ``error: 'no_such_kp'``).
"""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from robot_capture.config_schema import ConfigError, ros_name_problem
from robot_capture.floor import graph
from robot_capture.paths import config_dir

SHIPPED = graph.default_config_path().read_text()


def _cli():
    exe = Path(sys.executable).parent / "robot-capture"
    return [str(exe)]


def _station(tmp_path, old, new, name="station.yaml"):
    assert old in SHIPPED, old
    p = tmp_path / name
    p.write_text(SHIPPED.replace(old, new, 1))
    return p


INF_RATES = [  # (shipped text, with .inf, the key named)
    ("  joint_state_rate_hz: 500.0", "  joint_state_rate_hz: .inf", "sim.joint_state_rate_hz"),
    ("    rate_hz: 30.0", "    rate_hz: .inf", "cameras.head.rate_hz"),
    ("parameters: {}", "parameters: {mocap_replay: {speed: .inf}}", "parameters.mocap_replay.speed"),
    ("  joint_state_rate_hz: 500.0", "  joint_state_rate_hz: .nan", "sim.joint_state_rate_hz"),
    ("    rate_hz: 30.0", "    rate_hz: 0", "cameras.head.rate_hz"),
    ("parameters: {}", "parameters: {mocap_replay: {speed: -2.0}}", "parameters.mocap_replay.speed"),
    ("parameters: {}", "parameters: {robot_sim: {rate_hz: 1.0e+300}}", "parameters.robot_sim.rate_hz"),
    ("  time_constant_s: 0.05", "  time_constant_s: -.inf", "sim.time_constant_s"),
]


@pytest.mark.parametrize("old,new,key", INF_RATES, ids=[t[1].strip() for t in INF_RATES])
def test_non_finite_or_out_of_range_rates_are_config_errors(tmp_path, old, new, key):
    path = _station(tmp_path, old, new)
    with pytest.raises(ConfigError) as exc:
        graph.build(graph.load_config(path), sim=True)
    lines = str(exc.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path.name}: {key}: "), lines


@pytest.mark.timeout(120)
def test_up_dry_run_refuses_an_inf_rate_in_one_line(tmp_path):
    path = _station(tmp_path, "  joint_state_rate_hz: 500.0", "  joint_state_rate_hz: .inf")
    res = subprocess.run(_cli() + ["up", str(path), "--sim", "--dry-run"], capture_output=True, text=True,
                         timeout=110)
    assert res.returncode != 0, res.stdout[-2000:]
    err = res.stderr.strip()
    assert "Traceback" not in err + res.stdout, err
    assert "station.yaml: sim.joint_state_rate_hz: must be a finite number" in err.splitlines()[-1], err


@pytest.mark.parametrize("rate", [math.inf, -math.inf, math.nan, 0.0, -5.0, "fast", None])
def test_ticker_rejects_a_rate_that_is_not_a_finite_positive_number(rate):
    from robot_capture.sim.ticker import Ticker

    with pytest.raises(ValueError, match="rate_hz must be a finite number > 0"):
        Ticker(rate, 0)


def test_a_nan_qa_threshold_is_an_error_naming_file_and_key(tmp_path):
    from robot_capture.qa.config import as_config, load_config

    p = tmp_path / "strict_qa.yaml"
    p.write_text("gaps:\n  max_gap_s: .nan\nrate:\n  fail_below: .inf\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    lines = str(exc.value).splitlines()
    assert sorted(lines) == ["strict_qa.yaml: gaps.max_gap_s: must be a finite number (not NaN or infinite), got nan",
                             "strict_qa.yaml: rate.fail_below: must be a finite number (not NaN or infinite), got inf"]
    with pytest.raises(ConfigError, match="qa config: duration.fail_below_s: must be a finite number"):
        as_config({"duration": {"fail_below_s": float("nan")}})
    rig = tmp_path / "rig.yaml"
    rig.write_text("rigs: {fast: {gaps: {fail_drops: -1}}}\n")
    with pytest.raises(ConfigError, match=r"rig.yaml \(rig fast\): gaps.fail_drops: input should be greater than"):
        load_config(rig, rig_name="fast")


def test_qa_topics_are_ros_names(tmp_path):
    from robot_capture.qa.config import load_config

    p = tmp_path / "qa.yaml"
    p.write_text("sync:\n  state_topic: joint states\nexpected_hz: {/joint_states/: 500}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert "qa.yaml: sync.state_topic: not a valid ROS topic name" in msg, msg
    assert "qa.yaml: expected_hz./joint_states/.[key]: not a valid ROS topic name: must not end with '/'" in msg, msg


BAD_TOPICS = ["/vr/buttons/", "/vr buttons", "/vr/1buttons", "//vr", "", "/vr/~/b", "~vr", "{sub}/b", "/vr-buttons"]


@pytest.mark.parametrize("topic", BAD_TOPICS)
def test_a_joy_map_with_an_invalid_topic_is_a_config_error(tmp_path, topic):
    from robot_capture.console.commands import load_joy_map

    p = tmp_path / "joy.yaml"
    p.write_text(yaml.safe_dump({"topic": topic, "buttons": {0: "toggle"}}))
    with pytest.raises(ConfigError) as exc:
        load_joy_map(p)
    lines = str(exc.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{p}: topic: not a valid ROS topic name: "), lines


def test_up_checks_the_recorders_joy_map(tmp_path):
    joy = tmp_path / "joy.yaml"
    joy.write_text("topic: /vr/buttons/\nbuttons: {0: toggle}\n")
    path = _station(tmp_path, "parameters: {}", f"parameters: {{recorder: {{joy_map: {joy}}}}}")
    with pytest.raises(ConfigError, match=r"joy.yaml: topic: not a valid ROS topic name: must not end with '/'"):
        graph.build(graph.load_config(path), sim=True)
    missing = _station(tmp_path, "parameters: {}", "parameters: {recorder: {joy_map: /nonexistent/joy.yaml}}",
                       name="missing.yaml")
    with pytest.raises(ConfigError, match="missing.yaml: parameters.recorder.joy_map: .*no such file"):
        graph.build(graph.load_config(missing), sim=True)
    off = _station(tmp_path, "parameters: {}", "parameters: {recorder: {joy_map: none}}", name="off.yaml")
    assert graph.build(graph.load_config(off), sim=True)


def test_shipped_configs_pass_the_rule():
    from robot_capture.console.commands import load_joy_map, load_key_map
    from robot_capture.export.mapping import load_mapping
    from robot_capture.qa.config import load_config
    from robot_capture.retarget.mapping import RobotMapping

    graph.build(None, sim=True)
    load_config(), load_joy_map(), load_key_map(), load_mapping()
    for robot in sorted(p.stem for p in (config_dir() / "robots").glob("*.yaml")):
        RobotMapping.load(robot)


def _g1_with(tmp_path, old, new):
    from robot_capture.paths import data_dir

    text = (config_dir() / "robots" / "g1.yaml").read_text()
    assert old in text
    text = text.replace(old, new, 1).replace("urdf: robots/", f"urdf: {data_dir()}/robots/", 1)
    p = tmp_path / "g1_custom.yaml"
    p.write_text(text)
    return p


def test_an_unknown_keypoint_names_the_key_and_the_file(tmp_path):
    from robot_capture.retarget.mapping import RobotMapping

    p = _g1_with(tmp_path, "keypoint: left_wrist, root: torso_link", "keypoint: left_wirst, root: torso_link")
    with pytest.raises(ConfigError) as exc:
        RobotMapping.load(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: tasks.1.keypoint: unknown keypoint 'left_wirst' (did you mean 'left_wrist'?)"), msg
    # up --dry-run checks the robot's mapping before anything starts
    with pytest.raises(ConfigError, match=r"g1_custom.yaml: tasks.1.keypoint: unknown keypoint"):
        graph.build(None, sim=True, overrides={"robot": str(p)})


@pytest.mark.timeout(120)
def test_cli_unknown_keypoint_is_one_line_naming_key_and_file(tmp_path):
    p = _g1_with(tmp_path, "keypoint: left_wrist, root: torso_link", "keypoint: no_such_kp, root: torso_link")
    res = subprocess.run(_cli() + ["retarget", "cmu_02_05_punch_strike", "--robot", str(p), "--out",
                                   str(tmp_path / "o.npz")], capture_output=True, text=True, timeout=110)
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert "Traceback" not in res.stderr
    assert f"{p}: tasks.1.keypoint: unknown keypoint 'no_such_kp'" in last, res.stderr


def test_a_hand_keypoint_is_a_keypoint(tmp_path):
    from robot_capture.retarget.mapping import RobotMapping

    p = _g1_with(tmp_path, "keypoint: left_wrist, root: torso_link", "keypoint: left_hand_index_tip, root: torso_link")
    assert RobotMapping.load(p).tasks[1].keypoint == "left_hand_index_tip"


@pytest.mark.parametrize("name,ok", [
    ("/vr/buttons", True), ("vr/buttons", True), ("~/buttons", True), ("~", True), ("/a__b", True),
    ("/{node}/x", True), ("/_1", True), ("/" + "a" * 246, True),
    ("/" + "a" * 247, False), ("/vr/", False), ("/", False), ("//vr", False), ("/vr//b", False),
    ("/1vr", False), ("/vr/2", False), ("~vr", False), ("/vr/~", False), ("/a b", False), ("/a-b", False),
    ("/a.b", False), ("{ns}/x", False), ("/{node", False), ("/x}", False), ("/{1x}", False), ("", False),
])
def test_ros_name_rules(name, ok):
    assert (ros_name_problem(name) is None) == ok, ros_name_problem(name)


def test_human_configs_refuse_non_finite_numbers(tmp_path):
    """The configs read without a model: a BVH convention and an operator calibration."""
    from robot_capture.retarget.bvh import detect_mapping
    from robot_capture.retarget.calibration import Calibration

    conv = (config_dir() / "human" / "bvh_cc.yaml").read_text()
    assert "nominal_height_m: 1.7" in conv
    (tmp_path / "bvh_cc.yaml").write_text(conv.replace("nominal_height_m: 1.7", "nominal_height_m: .nan"))
    names = yaml.safe_load(conv)["detect"]
    with pytest.raises(ConfigError, match=r"bvh_cc.yaml: nominal_height_m: must be a finite number"):
        detect_mapping(names, config_dir=tmp_path)
    cal = tmp_path / "operator.yaml"
    cal.write_text("operator: ann\nlengths: {upper_arm: 0.3}\n"
                   "rotation_offsets: {left_wrist: [[1, 0, 0], [0, .nan, 0], [0, 0, 1]]}\n")
    with pytest.raises(ConfigError, match=r"operator.yaml: rotation_offsets.left_wrist.1.1: must be a finite number"):
        Calibration.load(cal)


def test_a_limit_for_an_unknown_joint_names_the_mapping_file(tmp_path):
    from robot_capture.retarget.mapping import RobotMapping

    p = _g1_with(tmp_path, "velocity_limits: {default: 3.0,", "velocity_limits: {default: 3.0, left_elbow_jiont: 1.0,")
    m = RobotMapping.load(p)
    with pytest.raises(KeyError) as exc:
        m.velocity_limit_array(m.robot_model())
    assert exc.value.args[0].startswith(f"{p}: velocity_limits.left_elbow_jiont: not a joint the IK solves for "
                                        "(did you mean 'left_elbow_joint'?)"), exc.value.args[0]
