"""robot_capture.floor.qa on bags written by the real BagWriter with planted defects."""
from __future__ import annotations

import numpy as np
import pytest

from robot_capture.bag.writer import BagWriter, WriterOptions
from robot_capture.floor import qa

T0 = 1_700_000_000_000_000_000


def _write(bag, topics: dict, custom=None):
    """topics: name -> (type, [(t_ns, bytes)])"""
    w = BagWriter(bag, WriterOptions(compression="none"), custom_data=custom)
    for name, (typ, msgs) in topics.items():
        w.add_topic(name, typ)
    allm = sorted((t, name, data) for name, (_typ, msgs) in topics.items() for t, data in msgs)
    for t, name, data in allm:
        w.write(name, data, t, t)
    w.close()


def _periodic(rate, secs, holes=()):
    n = int(rate * secs)
    idx = [i for i in range(n) if not any(a <= i < b for a, b in holes)]
    return [(T0 + int(i * 1e9 / rate), b"\x00\x01\x00\x00" + bytes(8)) for i in idx]


def _diag_msgs(errors_m):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from rclpy.serialization import serialize_message

    out = []
    for i, (e_left, e_right) in enumerate(errors_m):
        arr = DiagnosticArray()
        arr.status = [
            DiagnosticStatus(name="retarget: ik", values=[
                KeyValue(key="left_wrist.position_error", value=f"{e_left:.6f}"),
                KeyValue(key="right_wrist.position_error", value=f"{e_right:.6f}"),
                KeyValue(key="left_elbow.position_error_m", value="0.5"),  # soft task: not IK error
                KeyValue(key="solve_time_us", value="12.0")]),
            DiagnosticStatus(name="recorder: episode", values=[KeyValue(key="position_error", value="9.9")]),
        ]
        out.append((T0 + i * 100_000_000, serialize_message(arr)))
    return out


def test_clean_bag_passes(tmp_path):
    pytest.importorskip("rclpy")
    rng = np.random.default_rng(0)
    errs = rng.uniform(0, 0.02, size=(20, 2))
    bag = tmp_path / "clean"
    _write(bag, {
        "/joint_states": ("sensor_msgs/msg/JointState", _periodic(500, 2.0)),
        "/camera/head/image_raw": ("sensor_msgs/msg/Image", _periodic(30, 2.0)),
        "/diagnostics": ("diagnostic_msgs/msg/DiagnosticArray", _diag_msgs(errs)),
    }, custom={"episode.task": "pick", "episode.operator": "ann", "episode.success": "true"})
    res = qa.check_bag(bag, {"/joint_states": 500.0, "/camera/head/image_raw": 30.0, "/diagnostics": None})
    assert res.ok, qa.qa_line(res)
    js = res.topics["/joint_states"]
    assert js.count == 1000 and abs(js.rate_hz - 500.0) < 1e-6 and js.gaps == 0 and js.late == 0
    assert res.drops is None  # this recorder stored no drop counters: unknown, not zero
    # only the retarget status counts, the largest task error per status
    assert res.ik_p95_position_m == pytest.approx(np.percentile(errs.max(axis=1), 95), abs=1e-6)
    assert res.labels == {"task": "pick", "operator": "ann", "success": "true"}
    line = qa.qa_line(res)
    assert line.startswith("QA PASS") and "rates 2/2" in line and "p95 IK wrist error" in line


def test_planted_drops_gaps_rates_and_missing_topics_fail(tmp_path):
    bag = tmp_path / "bad"
    _write(bag, {
        # 5 consecutive messages missing at 100 Hz: a 60 ms hole, late periods but no >100 ms gap
        "/retarget/joint_command": ("sensor_msgs/msg/JointState", _periodic(100, 2.0, holes=[(50, 55)])),
        # a 200 ms hole at 30 Hz: one gap
        "/camera/head/image_raw": ("sensor_msgs/msg/Image", _periodic(30, 2.0, holes=[(30, 35)])),
        # 400 Hz where 500 is expected: rate out of tolerance
        "/joint_states": ("sensor_msgs/msg/JointState", _periodic(400, 2.0)),
    })
    res = qa.check_bag(bag, {"/retarget/joint_command": 100.0, "/camera/head/image_raw": 30.0,
                             "/joint_states": 500.0, "/exo/joint_states": 60.0})
    assert not res.ok
    cmd = res.topics["/retarget/joint_command"]
    assert cmd.late == 5 and cmd.gaps == 0 and cmd.max_gap_s == pytest.approx(0.06, abs=1e-6)
    cam = res.topics["/camera/head/image_raw"]
    assert cam.gaps == 1 and cam.late == 5 and cam.max_gap_s > 0.1
    assert not res.topics["/joint_states"].rate_ok
    assert res.missing == ["/exo/joint_states"]
    assert res.ik_p95_position_m is None
    line = qa.qa_line(res)
    assert line.startswith("QA FAIL") and "MISSING" in line and "p95 IK wrist error n/a" in line


def test_recorder_reported_drops_fail_the_episode(tmp_path):
    bag = tmp_path / "rec_drops"
    _write(bag, {"/joint_states": ("sensor_msgs/msg/JointState", _periodic(100, 1.0))},
           custom={"drops./joint_states": "3"})
    res = qa.check_bag(bag, {"/joint_states": 100.0})
    assert res.recorder_drops == {"/joint_states": 3} and res.drops == 3
    assert not res.ok
    assert "drops 3" in qa.qa_line(res)
