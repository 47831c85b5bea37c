"""Hostile input to the live retarget session, ROS-free (issue 14 items 5-7).

Future, past and zero stamps; NaN and non-unit quaternions; 1e308 angles; duplicate
names; an input flood; a late step. Every case is held (or rejected) and flagged, and
no step moves a joint more than v_max * 1.5 command periods.
"""
import math

import numpy as np
import pytest

from robot_capture.nodes._convert import pose_to_matrix, quat_is_unit
from robot_capture.retarget.live import LiveRetarget
from robot_capture.retarget.mapping import RobotMapping
from robot_capture.sim.replay import ClipReplay

RATE = 100.0


@pytest.fixture(scope="module")
def replay():
    return ClipReplay("cmu_02_05_punch_strike")


@pytest.fixture(scope="module")
def g1():
    return RobotMapping.load("g1")


def _run_exo(live, replay, n, t0=0.0, k0=0):
    """n steps at RATE of real exo frames; inputs received at their stamps. Returns the outputs."""
    outs = []
    for i in range(n):
        t = t0 + i / RATE
        live.on_exo(replay.exo_names, replay.exo_positions[(k0 + i) % len(replay.exo_positions)], t, recv=t)
        outs.append(live.step(t + 0.001)[0])
    return outs


def _bound(live):
    return live.retargeter.vmax * (1.5 / RATE) + 1e-9


def test_future_stamp_is_rejected_and_the_silence_after_it_holds(g1, replay):
    live = LiveRetarget(g1, "exo", rate_hz=RATE)
    outs = _run_exo(live, replay, 50)
    q_before = outs[-1].q.copy()
    t = 50 / RATE
    far = replay.exo_positions[0] + 1.0  # a different pose, stamped an hour ahead
    live.on_exo(replay.exo_names, far, t + 3600.0, recv=t)
    out = live.step(t + 0.001)[0]
    assert "future_stamp" in out.flags
    assert np.all(np.abs(out.q - q_before) <= _bound(live)), "the future-stamped pose must not be used"
    # nothing new arrives: within the bound the last good input stands, after it the robot holds
    held = [live.step(t + k / RATE)[0] for k in range(2, 40)]
    assert {"stale", "held"} <= held[-1].flags
    assert np.allclose(held[-1].qd, 0.0)
    level, msg, values = live.diagnostics()
    assert level == 1 and "future_stamp" in values["flags"] and "stale" in values["flags"]


def test_future_stamped_vr_message_does_not_block_valid_input(g1, replay):
    live = LiveRetarget(g1, "vr", rate_hz=0)
    dt = replay.frame_time
    names = ("head", "left_wrist", "right_wrist")
    live.on_vr("head", replay.vr["head"][0], 3600.0, recv=0.0)
    assert "future_stamp" in live.diagnostics()[2]["flags"]
    assembled = 0
    for i in range(1, 20):
        t = i * dt
        assembled += [live.on_vr(n, replay.vr[n][i], t, recv=t) for n in names][-1]
        out, _tok = live.step(t + 0.001)
        assert "stale" not in out.flags
    assert assembled == 19


@pytest.mark.parametrize("stamp", [0.0, -5.0, float("nan")])
def test_zero_past_and_nan_stamps_hold(g1, replay, stamp):
    live = LiveRetarget(g1, "exo", rate_hz=RATE)
    _run_exo(live, replay, 20, t0=100.0)
    live.on_exo(replay.exo_names, replay.exo_positions[0], stamp, recv=100.3)
    out = live.step(100.3)[0]
    assert "held" in out.flags and ({"stale", "bad_stamp"} & out.flags)


def test_nan_and_non_unit_quaternions_are_bad_input():
    from geometry_msgs.msg import Pose

    for q, ok in [((0, 0, 0, 1), True), ((0, 0, 0, 1.01), True), ((math.nan, 0, 0, 1), False),
                  ((0, 0, 0, 2.0), False), ((0, 0, 0, 0), False), ((1e308, 1e308, 0, 0), False)]:
        assert quat_is_unit(*q) == ok, q
        p = Pose()
        p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = map(float, q)
        T = pose_to_matrix(p)
        assert np.isfinite(T).all() == ok, q


@pytest.mark.parametrize("quat", [(math.nan, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0, 3.0)])
def test_bad_vr_quaternion_holds_and_flags(g1, replay, quat):
    from geometry_msgs.msg import Pose

    from robot_capture.nodes._convert import matrix_to_pose

    live = LiveRetarget(g1, "vr", rate_hz=0)
    dt = replay.frame_time
    names = ("head", "left_wrist", "right_wrist")
    for i in range(10):
        for n in names:
            live.on_vr(n, replay.vr[n][i], i * dt, recv=i * dt)
        q_good = live.step(i * dt + 0.001)[0].q.copy()
    t = 10 * dt
    bad: Pose = matrix_to_pose(replay.vr["left_wrist"][10])
    bad.orientation.x, bad.orientation.y, bad.orientation.z, bad.orientation.w = quat
    live.on_vr("head", replay.vr["head"][10], t, recv=t)
    live.on_vr("left_wrist", pose_to_matrix(bad), t, recv=t)
    live.on_vr("right_wrist", replay.vr["right_wrist"][10], t, recv=t)
    out = live.step(t + 0.001)[0]
    assert {"nan_input", "held"} <= out.flags
    assert np.allclose(out.q, q_good)


@pytest.mark.parametrize("case", ["huge", "duplicate"])
def test_huge_angles_and_duplicate_names_hold(g1, replay, case):
    live = LiveRetarget(g1, "exo", rate_hz=RATE)
    outs = _run_exo(live, replay, 20)
    names, pos = list(replay.exo_names), list(replay.exo_positions[20])
    if case == "huge":
        pos[3] = 1e308
        flag = "out_of_range"
    else:
        names[1] = names[0]
        flag = "duplicate_joints"
    t = 20 / RATE
    live.on_exo(names, pos, t, recv=t)
    out = live.step(t + 0.001)[0]
    assert {flag, "held"} <= out.flags
    assert np.allclose(out.q, outs[-1].q)
    assert flag in live.diagnostics()[2]["flags"]


def test_flood_is_coalesced_flagged_and_the_newest_wins(g1, replay):
    live = LiveRetarget(g1, "exo", rate_hz=RATE)
    _run_exo(live, replay, 10)
    t = 10 / RATE
    for k in range(1500):  # 10 kHz for 0.15 s (the rate is judged over FLOOD_WINDOW_S: a 10 ms burst is no flood)
        live.on_exo(replay.exo_names, replay.exo_positions[10 + k % 5], t + k * 1e-4, recv=t + k * 1e-4)
    out = live.step(t + 0.1500)[0]
    assert "input_flood" in out.flags
    assert out.stamp == pytest.approx(t + 1499e-4), "the newest input is the one used"
    assert live.diagnostics()[2]["inputs"] >= 1510


def test_no_step_moves_a_joint_more_than_vmax_times_the_command_period(g1, replay):
    live = LiveRetarget(g1, "exo", rate_hz=RATE)
    outs = _run_exo(live, replay, 30)
    q_prev = outs[-1].q.copy()
    # a starved timer: the next step runs 0.4 s later, on a far-away fresh input
    t = 30 / RATE + 0.4
    far = np.asarray(replay.exo_positions[0]) + 0.8
    live.on_exo(replay.exo_names, far, t, recv=t)
    out = live.step(t + 0.001)[0]
    assert not out.flags & {"held", "stale"}
    step = np.abs(out.q - q_prev)
    assert np.all(step <= _bound(live)), f"max step {step.max():.3f} rad"
    assert np.all(np.abs(out.qd) <= live.retargeter.vmax + 1e-9)


def test_stale_bound_follows_the_inputs_own_period(g1, replay):
    live = LiveRetarget(g1, "exo", rate_hz=RATE, stale_after_s=0.1, stale_periods=3.0)
    for i in range(20):  # a 20 Hz input: period 50 ms, bound 150 ms
        t = i * 0.05
        live.on_exo(replay.exo_names, replay.exo_positions[i], t, recv=t)
        live.step(t + 0.001)
    assert live.stale_bound() == pytest.approx(0.15, rel=0.05)
    t_last = 19 * 0.05
    assert "stale" not in live.step(t_last + 0.12)[0].flags
    assert "stale" in live.step(t_last + 0.2)[0].flags
    with pytest.raises(ValueError):
        LiveRetarget(g1, "exo", stale_after_s=-1.0)
