"""ROS-free tests of the first-order joint follower (robot_capture.sim.robot_sim)."""
import math

import numpy as np
import pytest

from robot_capture.sim.robot_sim import FirstOrderFollower


def _follower(**kw):
    names = ["a", "b", "c"]
    args = dict(lower=[-1.0, -2.0, -3.0], upper=[1.0, 2.0, 3.0], velocity_limit=[100.0, 1.0, 100.0], tau=0.05)
    args.update(kw)
    return FirstOrderFollower(names, **args)


def test_step_response_is_first_order():
    f = _follower()
    f.set_command(["a"], [0.5])
    dt = 0.002
    t = 0.0
    for _ in range(int(round(0.05 / dt))):  # one time constant
        f.step(dt)
        t += dt
    expected = 0.5 * (1.0 - math.exp(-t / 0.05))
    assert f.q[0] == pytest.approx(expected, rel=1e-9)
    for _ in range(500):
        f.step(dt)
    assert f.q[0] == pytest.approx(0.5, abs=1e-6)


def test_velocity_limit_caps_slew_rate():
    f = _follower()
    f.set_command(["b"], [1.5])
    dt = 0.002
    prev = f.q.copy()
    for _ in range(100):
        f.step(dt)
        assert abs(f.q[1] - prev[1]) <= 1.0 * dt + 1e-12
        assert abs(f.qd[1]) <= 1.0 + 1e-9
        prev = f.q.copy()
    assert f.q[1] == pytest.approx(0.2, abs=1e-9)  # 100 steps x 2 ms x 1 rad/s


def test_position_limits_and_bad_commands():
    f = _follower()
    ignored = f.set_command(["a", "nope", "c"], [5.0, 1.0, float("nan")])
    assert ignored == ["nope", "c"]
    for _ in range(2000):
        f.step(0.002)
    assert f.q[0] == pytest.approx(1.0)
    assert f.q[2] == 0.0  # NaN command held the previous target
    assert np.all(f.q <= f.upper) and np.all(f.q >= f.lower)


def test_locked_joints_hold_their_value():
    f = _follower(locked={"c": 0.3})
    assert f.q[2] == pytest.approx(0.3)
    assert f.set_command(["c"], [1.0]) == ["c"]
    for _ in range(100):
        f.step(0.01)
    assert f.q[2] == pytest.approx(0.3)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError):
        _follower(tau=0.0)
    with pytest.raises(ValueError):
        _follower(lower=[0.0, 0.0])
    with pytest.raises(KeyError):
        _follower(locked={"zz": 0.0})


def test_follows_g1_urdf_limits(g1_urdf):
    """The follower built from the real G1 URDF limits keeps every joint within them."""
    from robot_capture.kinematics.model import RobotModel

    model = RobotModel.from_urdf(g1_urdf)
    names = model.joint_names
    lo, hi, vmax = model.lower, model.upper, model.velocity_limit
    assert len(names) == 29
    f = FirstOrderFollower(names, lo, hi, vmax, tau=0.05)
    rng = np.random.default_rng(0)
    for _ in range(50):
        f.set_command(names, rng.uniform(-4, 4, len(names)))
        for _ in range(10):
            q_prev = f.q.copy()
            f.step(0.002)
            assert np.all(f.q >= lo - 1e-12) and np.all(f.q <= hi + 1e-12)
            assert np.all(np.abs(f.q - q_prev) <= vmax * 0.002 + 1e-12)


def test_load_robot_from_the_mapping_locks_the_legs():
    from robot_capture.retarget.mapping import RobotMapping
    from robot_capture.sim.robots import load_robot

    model, locked = load_robot("g1")
    assert model.nq == 29, "the simulator models every movable joint"
    assert set(locked) == set(RobotMapping.load("g1").locked_joints)
    assert all("hip" in n or "knee" in n or "ankle" in n for n in locked)
    with pytest.raises(KeyError):
        load_robot("g2")
    with pytest.raises(FileNotFoundError):
        load_robot("g1", urdf="/nonexistent.urdf")


def test_ticker_returns_every_due_sample_on_the_grid():
    from robot_capture.sim.ticker import Ticker

    t = Ticker(500.0, t0_ns=1_000_000_000, max_catchup=10)
    assert t.due(999_000_000) == []
    assert t.due(1_000_000_000) == [(0, 1_000_000_000)]
    assert t.due(1_001_000_000) == []  # half a period later
    assert t.due(1_006_500_000) == [(1, 1_002_000_000), (2, 1_004_000_000), (3, 1_006_000_000)]  # a late call catches up
    got = t.due(1_100_000_000)  # a 94 ms stall: only the last 10 samples, the rest skipped
    assert [k for k, _ in got] == list(range(41, 51)) and t.skipped == 37
    assert got[-1][1] == 1_100_000_000
    with pytest.raises(ValueError):
        Ticker(0.0, 0)


def test_ticker_restarts_its_grid_when_the_clock_jumps():
    """Sim time starts at 0 and then follows /clock; a looped bag steps the clock back. Either
    way the grid restarts at the new time (counted in ``jumps``), nothing is skipped, and the
    samples keep coming (a grid left behind would publish nothing until the clock caught up)."""
    from robot_capture.sim.ticker import Ticker

    t = Ticker(100.0, t0_ns=0, max_catchup=5)
    assert t.due(0) == [(0, 0)]
    T = 1_800_000_000_000_000_000  # /clock arrives: decades later
    assert t.due(T) == [(0, T)] and t.jumps == 1 and t.skipped == 0
    assert t.due(T + 20_000_000) == [(1, T + 10_000_000), (2, T + 20_000_000)]
    back = T - 5_000_000_000  # the bag loops: 5 s back
    assert t.due(back) == [(0, back)] and t.jumps == 2 and t.skipped == 0
    assert t.due(back + 10_000_000) == [(1, back + 10_000_000)]
    assert t.due(back + 10_000_000 - 1) == []  # early by less than a period: no jump, nothing due
    assert t.jumps == 2
