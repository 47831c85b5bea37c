"""Property test of the config rule (issue 23): generated configs with hostile numbers and names.

For floor.yaml (through ``up --dry-run``'s ``load_config`` + ``build``), qa.yaml, a robot
mapping and the Joy map, every generated file either

* is refused with a ConfigError whose every line is one line naming the file and a changed
  key, or
* is accepted, and then every value the nodes and checks use is one they do not crash on:
  finite numbers, rates the Ticker and rclpy timers take, valid ROS topic names.

ROS-free; hypothesis draws 1-3 changes per example (no deadline: the machine is loaded).
"""
import copy
import math

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robot_capture.config_schema import ConfigError, ros_name_problem
from robot_capture.floor import graph
from robot_capture.paths import config_dir
from robot_capture.sim.ticker import Ticker

SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

HOSTILE = [math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e-300, 1e300, 1e12, 1e-6, 0.5, 2.0, 30.0, 250.0]
NUMBERS = st.one_of(st.sampled_from(HOSTILE), st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(min_value=-10**7, max_value=10**7), st.sampled_from(["fast", "", "1e3", "nan"]))
NAMES = st.text(alphabet="ab1_/~{}-. ", max_size=10) | st.sampled_from(
    ["/vr/buttons", "vr/buttons", "~/x", "/a__b", "/{node}/x", "/x/", "//x", "/1x", "x y", "{ns}/x"])

FLOOR_NUMBERS = [
    ("retarget", "rate_hz"), ("cameras", "head", "rate_hz"), ("cameras", "head", "width"),
    ("cameras", "head", "height"), ("sim", "joint_state_rate_hz"), ("sim", "time_constant_s"), ("nice",),
    ("parameters", "mocap_replay", "speed"), ("parameters", "robot_sim", "rate_hz"),
    ("parameters", "robot_sim", "time_constant_s"), ("parameters", "camera_head", "rate_hz"),
    ("parameters", "camera_head", "jpeg_quality"), ("parameters", "retarget", "rate_hz"),
    ("parameters", "retarget", "flood_hz"), ("parameters", "retarget", "max_future_s"),
    ("parameters", "retarget", "stale_periods"), ("parameters", "retarget", "diagnostics_rate_hz"),
    ("parameters", "recorder", "flush_interval_s"), ("parameters", "recorder", "console_rate_hz"),
    ("parameters", "recorder", "min_rate_fraction"), ("parameters", "recorder", "stream_lost_s"),
    ("parameters", "recorder", "diagnostics_rate_hz"), ("parameters", "recorder", "take_period_s"),
    ("streams", 0, "rate_hz"), ("streams", 1, "tolerance"), ("check", "sample_s"), ("check", "stamp_offset_fail_s"),
]
# the station contract's topics (record.topics is empty in the shipped floor.yaml); streams 0 and 5
# (/joint_states, /vr/left_hand) are no other stream's derived_from source
FLOOR_TOPICS = [("streams", 0, "topic"), ("streams", 5, "topic")]


def _set(d: dict, path: tuple, value) -> None:
    for k in path[:-1]:
        d = d.setdefault(k, {}) if isinstance(d, dict) else d[k]
        if d is None:
            raise AssertionError(path)
    d[path[-1]] = value


def _key(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _write(tmp_path_factory, name: str, data) -> "Path":  # noqa: F821
    p = tmp_path_factory.mktemp("cfg") / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _refused_well(exc: ConfigError, where: str, changed: list[str]) -> None:
    lines = str(exc).splitlines()
    assert lines, "an empty ConfigError"
    for line in lines:
        assert line.startswith(f"{where}: "), line
        assert "Traceback" not in line and len(line) < 600, line
        assert any(c in line for c in changed), (line, changed)


def _timer_ok(rate_hz) -> None:
    """What a node does with a rate: a Ticker on it and an rclpy timer of 1/rate (int64 ns)."""
    assert isinstance(rate_hz, (int, float)) and math.isfinite(rate_hz) and rate_hz > 0, rate_hz
    Ticker(rate_hz, 0).due(10**9)
    assert 0 < round(1e9 / rate_hz) < 2**63, rate_hz


def _nodes_would_run(specs) -> None:
    """The node start-up checks and first ticks, modelled ROS-free on each spec's parameters."""
    for s in specs:
        p = s.parameters
        for k, v in p.items():
            if isinstance(v, float):
                assert math.isfinite(v), (s.name, k, v)
        if s.role in ("camera", "robot_sim"):
            _timer_ok(p["rate_hz"])
        if s.role == "camera":
            assert isinstance(p["width"], int) and isinstance(p["height"], int) and p["width"] > 0 and p["height"] > 0
            assert 1 <= int(p.get("jpeg_quality", 80)) <= 100
        if s.role == "robot_sim":
            assert float(p["time_constant_s"]) > 0
        if s.role == "mocap_replay":
            speed = float(p.get("speed", 1.0))
            assert speed > 0
            _timer_ok(graph.clip_rate_hz(p["clip"]) * speed)
        if s.role == "retarget":
            for k in ("rate_hz", "diagnostics_rate_hz"):
                r = float(p.get(k, 1.0))
                assert r == 0 or (r > 0 and round(1e9 / r) < 2**63), (k, r)
            for k in ("flood_hz", "max_future_s", "stale_periods"):
                assert float(p.get(k, 1.0)) > 0, (k, p.get(k))
        if s.role == "recorder":
            for t in p["topics"]:
                assert ros_name_problem(t) is None, t
            for k in ("flush_interval_s", "stream_lost_s"):
                assert float(p.get(k, 1.0)) > 0, (k, p.get(k))
            for k in ("diagnostics_rate_hz", "console_rate_hz"):
                r = float(p.get(k, 1.0))
                assert r == 0 or (r > 0 and round(1e9 / r) < 2**63), (k, r)
            assert 0 <= float(p.get("min_rate_fraction", 0.5)) <= 1
            assert float(p.get("take_period_s", 0.05)) >= 0


SHIPPED_FLOOR = yaml.safe_load(graph.default_config_path().read_text())


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(FLOOR_NUMBERS), NUMBERS), min_size=1, max_size=3),
       st.lists(st.tuples(st.sampled_from(FLOOR_TOPICS), NAMES), max_size=1))
def test_floor_configs_are_refused_in_one_line_or_run(tmp_path_factory, numbers, names):
    cfg = copy.deepcopy(SHIPPED_FLOOR)
    cfg["parameters"] = {}
    changed = []
    for path, value in numbers + names:
        _set(cfg, path, value)
        changed.append(_key(path))
    p = _write(tmp_path_factory, "station.yaml", cfg)
    try:
        specs = graph.build(graph.load_config(p), sim=True)
    except ConfigError as exc:
        _refused_well(exc, "station.yaml", changed)
        return
    _nodes_would_run(specs)


SHIPPED_QA = yaml.safe_load((config_dir() / "qa.yaml").read_text())
QA_NUMBERS = [(section, key) for section, values in SHIPPED_QA.items() if isinstance(values, dict)
              for key, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
QA_TOPICS = [("sync", "state_topic"), ("idle", "robot_topic"), ("retarget", "command_topic")]


def _numbers(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, path + (k,))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _numbers(v, path + (i,))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(QA_NUMBERS), NUMBERS), min_size=1, max_size=3),
       st.lists(st.tuples(st.sampled_from(QA_TOPICS), NAMES), max_size=1))
def test_qa_configs_are_refused_in_one_line_or_all_finite(tmp_path_factory, numbers, names):
    from robot_capture.qa.config import load_config

    over, changed = {}, []
    for path, value in numbers + names:
        _set(over, path, value)
        changed.append(_key(path))
    p = _write(tmp_path_factory, "qa_override.yaml", over)
    try:
        cfg = load_config(p)
    except ConfigError as exc:
        _refused_well(exc, "qa_override.yaml", changed)
        return
    for path, v in _numbers(cfg.model_dump()):
        assert math.isfinite(v) and v >= 0, (path, v)  # every QA threshold is a size, a count or a rate
    for t in [cfg.sync.state_topic, cfg.idle.robot_topic, cfg.retarget.command_topic]:
        assert ros_name_problem(t) is None, t


G1 = yaml.safe_load((config_dir() / "robots" / "g1.yaml").read_text())
MAPPING_NUMBERS = [("stale_after_s",), ("rate_hz",), ("acceleration_limit",), ("velocity_limits", "default"),
                   ("posture", "cost"), ("ik", "damping"), ("ik", "max_iterations"), ("tasks", 1, "position_cost"),
                   ("filter", "min_cutoff_hz"), ("filter", "beta"), ("calibration_pose", "human", "left_elbow_flexion"),
                   ("tasks", 1, "point")]
KEYPOINT_NAMES = st.sampled_from(["left_wrist", "left_wirst", "no_such_kp", "left_hand_index_tip", "", "pelvis"])


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(MAPPING_NUMBERS), NUMBERS), min_size=1, max_size=3),
       st.lists(st.tuples(st.sampled_from([("tasks", 1, "keypoint"), ("tasks", 2, "root_keypoint")]),
                          KEYPOINT_NAMES), max_size=1))
def test_robot_mappings_are_refused_in_one_line_or_usable(numbers, names):
    from robot_capture.retarget.mapping import RobotMapping
    from robot_capture.retarget.mapping_schema import KEYPOINTS

    raw = copy.deepcopy(G1)
    changed = []
    for path, value in numbers + names:
        if path == ("tasks", 1, "point"):
            value = [value, 0.0, 0.0]
        _set(raw, path, value)
        changed.append(_key(path))
    try:
        m = RobotMapping.from_dict(raw, source="g1_generated.yaml")
    except ConfigError as exc:
        _refused_well(exc, "g1_generated.yaml", changed)
        return
    for path, v in _numbers({"stale": m.stale_after_s, "rate": m.rate_hz, "acc": m.acceleration_limits,
                             "vel": m.velocity_limits, "filter": m.filter, "ik": m.ik,
                             "costs": [(t.position_cost, t.orientation_cost) for t in m.tasks],
                             "points": [t.point for t in m.tasks if t.point is not None],
                             "human": m.calibration_human}):
        assert math.isfinite(v), (path, v)
    assert m.stale_after_s > 0 and m.rate_hz > 0 and min(m.acceleration_limits.values()) > 0
    assert all(t.keypoint in KEYPOINTS and t.root_keypoint in KEYPOINTS for t in m.tasks)


@SETTINGS
@given(NAMES, st.dictionaries(st.integers(min_value=-5, max_value=200), st.sampled_from(["toggle", "success", "x"]),
                              max_size=3))
def test_joy_maps_are_refused_in_one_line_or_usable(tmp_path_factory, topic, buttons):
    from robot_capture.console.commands import JoyMapper, load_joy_map

    p = _write(tmp_path_factory, "joy.yaml", {"topic": topic, "buttons": buttons})
    try:
        joy = load_joy_map(p)
    except ConfigError as exc:
        _refused_well(exc, str(p), ["topic", "buttons"])
        return
    assert ros_name_problem(joy.topic) is None, joy.topic
    mapper = JoyMapper(joy)
    mapper.on_buttons([0] * joy.needed_buttons)
    assert set(mapper.on_buttons([1] * joy.needed_buttons)) <= {"toggle", "success"}
