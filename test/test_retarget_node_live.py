"""ROS-free tests of the retarget node's logic (robot_capture.retarget.live.LiveRetarget)."""
import math

import numpy as np
import pytest

from robot_capture.retarget.live import LiveRetarget
from robot_capture.retarget.mapping import RobotMapping
from robot_capture.sim.replay import ClipReplay


@pytest.fixture(scope="module")
def replay():
    return ClipReplay("cmu_02_05_punch_strike")


@pytest.fixture(scope="module")
def g1():
    return RobotMapping.load("g1")


def test_exo_outputs_carry_the_input_token(g1, replay):
    live = LiveRetarget(g1, "exo", rate_hz=0)
    assert live.step(0.0) is None, "no output before any input"
    dt = replay.frame_time
    for i in range(60):
        live.on_exo(replay.exo_names, replay.exo_positions[i], i * dt, token=("stamp", i))
        out, token = live.step(i * dt + 0.002)
        assert token == ("stamp", i)
        assert out.stamp == pytest.approx(i * dt)
        assert not out.flags, out.flags
    level, message, values = live.diagnostics()
    assert level == 0 and message == "ok"
    assert values["outputs"] == 60 and values["inputs"] == 60
    assert 0 < values["left_wrist.position_error_m"] < 0.2
    assert values["joint_limit_margin_rad"] >= 0
    assert values["iterations_max"] >= 1 and values["solve_time_ms_max"] > 0
    assert live.diagnostics()[2]["outputs"] == 0, "the window resets"


def test_stale_input_is_held_and_flagged(g1, replay):
    live = LiveRetarget(g1, "exo", rate_hz=100)
    live.on_exo(replay.exo_names, replay.exo_positions[0], 0.0, token=0)
    q0 = live.step(0.01)[0].q.copy()
    out, token = live.step(0.0 + g1.stale_after_s + 0.05)  # timer tick long after the input
    assert {"stale", "held"} <= out.flags and token == 0
    assert np.allclose(out.q, q0)
    assert live.diagnostics()[0] == 1


def test_vr_pose_assembled_when_all_trackers_are_newer(g1, replay):
    live = LiveRetarget(g1, "vr", rate_hz=0)
    dt = replay.frame_time
    outs = 0
    for i in range(30):
        t = i * dt
        ready = [live.on_vr(n, replay.vr[n][i], t, token=i) for n in ("head", "left_wrist", "right_wrist")]
        assert ready == [False, False, True], "one pose per complete tracker set"
        out, token = live.step(t + 0.002)
        assert token == i and not out.flags, out.flags
        outs += 1
    # trackers with different stamps: the pose takes the oldest stamp
    assert live.on_vr("head", replay.vr["head"][30], 30 * dt, token="h") is False
    assert live.on_vr("left_wrist", replay.vr["left_wrist"][30], 30 * dt + 0.001, token="l") is False
    assert live.on_vr("right_wrist", replay.vr["right_wrist"][30], 30 * dt + 0.002, token="r") is True
    out, token = live.step(30 * dt + 0.003)
    assert token == "h" and out.stamp == pytest.approx(30 * dt)
    # NaN tracker: held, flagged
    bad = replay.vr["head"][31].copy()
    bad[0, 3] = math.nan
    for n, T in (("head", bad), ("left_wrist", replay.vr["left_wrist"][31]), ("right_wrist", replay.vr["right_wrist"][31])):
        live.on_vr(n, T, 31 * dt + 0.01)
    out, _ = live.step(31 * dt + 0.012)
    assert {"nan_input", "held"} <= out.flags
    with pytest.raises(ValueError):
        live.on_vr("left_foot", np.eye(4), 0.0)


def test_deadman(g1, replay):
    live = LiveRetarget(g1, "exo", rate_hz=0, require_enable=True)
    dt = replay.frame_time
    live.on_exo(replay.exo_names, replay.exo_positions[0], 0.0)
    out, _ = live.step(0.001)
    assert {"disabled", "held"} <= out.flags
    live.set_enable(True)
    qs = []
    for i in range(1, 40):
        live.on_exo(replay.exo_names, replay.exo_positions[i], i * dt)
        out, _ = live.step(i * dt + 0.001)
        assert "held" not in out.flags
        qs.append(out.q.copy())
    live.set_enable(False)
    live.on_exo(replay.exo_names, replay.exo_positions[40], 40 * dt)
    out, _ = live.step(40 * dt + 0.001)
    assert "disabled" in out.flags and np.allclose(out.q, qs[-1])


def test_direct_joint_mode(g1):
    live = LiveRetarget(g1, "direct", rate_hz=100)
    names = list(live.direct.source_names)
    assert names, "the G1 mapping has a direct joint map"
    target = np.zeros(len(names))
    target[names.index("left_elbow_joint")] = 0.8
    for i in range(300):
        warning = live.on_exo(names, target, i * 0.01)
        out, _ = live.step(i * 0.01 + 0.001)
    assert warning is None
    k = live.joint_names.index("left_elbow_joint")
    assert out.q[k] == pytest.approx(0.8, abs=0.02)
    warning = live.on_exo(names + ["mystery_joint"], list(target) + [0.0], 3.01)
    assert "mystery_joint" in warning and "left_elbow_joint" in warning
    assert live.on_exo(names + ["mystery_joint"], list(target) + [0.0], 3.02) is None, "warned once"
    out, _ = live.step(3.021)
    assert "unknown_joints" in out.flags


def test_unknown_source_is_rejected(g1):
    with pytest.raises(ValueError, match="source"):
        LiveRetarget(g1, "joystick")


def test_vr_hands_join_the_next_pose(g1, replay):
    from robot_capture.retarget.pose import OPENXR_HAND_JOINTS, hand_keypoint

    live = LiveRetarget(g1, "vr", rate_hz=0)
    wrist = replay.vr["left_wrist"][0]
    hand = []
    for j in range(len(OPENXR_HAND_JOINTS)):  # joints spread 1 cm apart along the wrist's -z
        T = wrist.copy()
        T[:3, 3] -= 0.01 * j * wrist[:3, 2]
        hand.append(T)
    live.on_vr_hand("left", hand)
    for n in ("head", "left_wrist", "right_wrist"):
        live.on_vr(n, replay.vr[n][0], 0.0)
    tip = live.pose.position(hand_keypoint("left", OPENXR_HAND_JOINTS[-1]))
    base = live.pose.position(hand_keypoint("left", OPENXR_HAND_JOINTS[0]))
    assert np.linalg.norm(tip - base) == pytest.approx(0.01 * (len(OPENXR_HAND_JOINTS) - 1))
    assert not live.pose.has(hand_keypoint("right", "palm"))
    with pytest.raises(ValueError):
        live.on_vr_hand("middle", hand)


def test_diagnostics_publish_the_command_lag(g1, replay):
    """The lag the teleop safety limits cause is measured and published (issue 13)."""
    live = LiveRetarget(g1, "exo", rate_hz=0)
    dt = replay.frame_time
    lags = []
    for i in range(min(240, len(replay.exo_positions))):
        live.on_exo(replay.exo_names, replay.exo_positions[i], i * dt)
        live.step(i * dt + 0.002)
        if i % 30 == 29:
            lags.append(live.diagnostics()[2].get("command_lag_s"))
    got = [x for x in lags if x is not None]
    assert got, lags
    assert all(0.0 <= x < 1.0 for x in got), got
    assert max(got) > 0.01  # the punch clip moves faster than the 3 rad/s teleop limit allows
