"""IKSolver (C core) on real URDFs: agreement with the NumPy twin, convergence, hard limits,
statuses (NaN input, unreachable targets, targets at the limits), relative and posture
tasks, the box-constrained step against scipy, threads and API errors."""
import threading

import numpy as np
import pytest
from scipy.optimize import lsq_linear

from robot_capture.kinematics import reference
from robot_capture.kinematics.ik import (FrameTask, IKSolver, IKStatus, PositionTask, PostureTask,
                                         RelativeFrameTask)
from robot_capture.kinematics.model import RobotModel
from robot_capture.paths import data_dir

G1 = data_dir() / "robots/unitree_g1/g1_29dof_rev_1_0.urdf"
H1 = data_dir() / "robots/unitree_h1/h1.urdf"
KUAVO = data_dir() / "robots/leju_kuavo/biped_s45.urdf"
ARMS = ("shoulder", "elbow", "wrist")


@pytest.fixture(scope="module")
def g1_full():
    return RobotModel.from_urdf(G1)


@pytest.fixture(scope="module")
def g1_arms(g1_full):
    lock = [n for n in g1_full.joint_names if not any(a in n for a in ARMS)]
    return RobotModel.from_urdf(G1, locked_joints=lock)


def teleop_tasks():
    return [FrameTask("left_wrist_yaw_link"), FrameTask("right_wrist_yaw_link"),
            PositionTask("left_elbow_link", 0.05), PositionTask("right_elbow_link", 0.05)]


def targets_at(model, q, tasks):
    return [None if t.kind == "posture" else t.current(model, q) for t in tasks]


def within_limits(model, q, q0=None, dt=None, eps=1e-12):
    ok = np.all(q >= model.lower - eps) and np.all(q <= model.upper + eps)
    if dt:
        ok = ok and np.all(np.abs(q - q0) <= model.velocity_limit * dt + eps)
    return bool(ok)


def test_converges_to_reachable_targets_and_errors_are_true(g1_arms):
    m = g1_arms
    tasks = teleop_tasks()
    solver = IKSolver(m, tasks)
    rng = np.random.default_rng(0)
    for _ in range(20):
        q_true = m.random_configuration(rng, margin=0.1)
        q0 = np.clip(q_true + rng.normal(0, 0.1, m.nq), m.lower, m.upper)
        res = solver.solve(q0, targets_at(m, q_true, tasks))
        assert res.status == IKStatus.CONVERGED, res
        assert res.iterations >= 1
        for k, t in enumerate(tasks):  # the reported errors are the real ones
            e = t.compute_error(m, res.q, targets_at(m, q_true, tasks)[k])
            assert res.position_errors[k] == pytest.approx(np.linalg.norm(e[:3]), abs=1e-12)
        assert res.position_errors[:2].max() < 1e-4 and res.orientation_errors[:2].max() < 1e-3


@pytest.mark.parametrize("path", [G1, H1, KUAVO])
def test_c_solver_matches_numpy_twin(path):
    m = RobotModel.from_urdf(path)
    rng = np.random.default_rng(1)
    leaves = [m.frame_names[i] for i in range(1, m.nframes) if i not in set(m.link_parent)]
    tasks = [FrameTask(leaves[0]), PositionTask(leaves[1], 0.3), RelativeFrameTask(leaves[2], leaves[3], 1.0, 0.5),
             PostureTask(1e-3, q_ref=m.random_configuration(rng))]
    c = IKSolver(m, tasks, max_iterations=8)
    py = IKSolver(m, tasks, max_iterations=8, backend="numpy")
    for dt in (None, 0.01):
        for _ in range(4):
            q_goal, q0 = m.random_configuration(rng), m.random_configuration(rng)
            tg = targets_at(m, q_goal, tasks)
            a, b = c.solve(q0, tg, dt=dt), py.solve(q0, tg, dt=dt)
            assert a.status == b.status and a.iterations == b.iterations
            np.testing.assert_allclose(a.q, b.q, atol=1e-8)
            np.testing.assert_allclose(a.task_errors, b.task_errors, atol=1e-8)


def test_limits_never_violated(g1_full):
    m = g1_full
    tasks = [FrameTask("left_wrist_yaw_link"), FrameTask("right_wrist_yaw_link"), FrameTask("head_link", 0.5, 0.5),
             RelativeFrameTask("left_ankle_roll_link", "torso_link"), PositionTask("right_ankle_roll_link", 0.1)]
    solver = IKSolver(m, tasks, max_iterations=15)
    rng = np.random.default_rng(2)
    n_bound = 0
    for k in range(60):
        q0 = m.random_configuration(rng)
        tg = targets_at(m, m.random_configuration(rng), tasks)
        if k % 3 == 0:  # unreachable: shift targets by up to 2 m, random rotations
            for T in tg:
                T[:3, 3] += rng.uniform(-2, 2, 3)
        dt = [None, 0.01, 0.002][k % 3]
        res = solver.solve(q0, tg, dt=dt)
        assert within_limits(m, res.q, q0, dt), (k, res.status)
        n_bound += res.status == IKStatus.LIMIT_BOUND
    assert n_bound > 0  # bounds were actually hit


def test_velocity_limits_bound_the_step(g1_arms):
    m = g1_arms
    tasks = teleop_tasks()
    solver = IKSolver(m, tasks)
    q0 = m.neutral()
    q_far = np.clip(q0 + 0.8, m.lower, m.upper)
    dt = 0.005
    res = solver.solve(q0, targets_at(m, q_far, tasks), dt=dt)
    assert res.status == IKStatus.LIMIT_BOUND
    assert within_limits(m, res.q, q0, dt)
    assert np.isclose(np.abs(res.q - q0), m.velocity_limit * dt).any()
    # a q0 outside its position limits is brought back at most vmax * dt per step
    q_bad = q0.copy()
    q_bad[0] = m.upper[0] + 0.5
    res = solver.solve(q_bad, targets_at(m, q0, tasks), dt=dt)
    assert res.q[0] == pytest.approx(q_bad[0] - m.velocity_limit[0] * dt)


@pytest.mark.parametrize("bad", ["nan_target", "inf_target", "nan_q0", "inf_q0", "nan_dt", "negative_dt",
                                 "scaled_rotation", "reflection"])
def test_invalid_input_leaves_q_unchanged(g1_arms, bad):
    m = g1_arms
    tasks = teleop_tasks()
    solver = IKSolver(m, tasks)
    q0 = m.neutral() + 0.1
    tg = targets_at(m, q0 + 0.05, tasks)
    dt = 0.01
    if bad == "nan_target":
        tg[1][0, 3] = np.nan
    elif bad == "inf_target":
        tg[3][2, 2] = np.inf
    elif bad == "nan_q0":
        q0[3] = np.nan
    elif bad == "inf_q0":
        q0[5] = -np.inf
    elif bad == "nan_dt":
        dt = float("nan")
    elif bad == "negative_dt":
        dt = -0.01
    elif bad == "scaled_rotation":
        tg[0] = tg[0].copy()
        tg[0][:3, :3] *= 1.01
    else:
        tg[1] = tg[1].copy()
        tg[1][:3, 0] *= -1
    res = solver.solve(q0, tg, dt=dt)
    assert res.status == IKStatus.INVALID_INPUT and res.iterations == 0
    np.testing.assert_array_equal(res.q, q0)
    assert np.all(np.isnan(res.position_errors))
    out = np.full(m.nq, 7.0)  # fast path: out is not written
    st = solver.solve_into(q0, solver.pack_targets(tg), out, dt)
    assert st == IKStatus.INVALID_INPUT and np.all(out == 7.0)
    # a position-only task ignores its target's rotation block
    tg = targets_at(m, q0 + 0.05 if np.all(np.isfinite(q0)) else m.neutral(), tasks)
    tg[2] = np.eye(4) * 3.0
    tg[2][3, 3], tg[2][:3, 3] = 1.0, tasks[2].current(m, m.neutral())[:3, 3]
    assert solver.solve(m.neutral(), tg).status != IKStatus.INVALID_INPUT
    # the solver still works afterwards
    good = solver.solve(m.neutral() + 0.1, targets_at(m, m.neutral() + 0.12, tasks))
    assert good.status == IKStatus.CONVERGED


def test_unreachable_target_is_best_effort_and_flagged(g1_arms):
    m = g1_arms
    tasks = [FrameTask("left_wrist_yaw_link"), FrameTask("right_wrist_yaw_link")]
    solver = IKSolver(m, tasks, max_iterations=50)
    q0 = m.neutral()
    tg = targets_at(m, q0, tasks)
    tg[0] = tg[0].copy()
    tg[0][:3, 3] += [1.5, 0.5, 0.0]  # 1.6 m away: outside the arm's reach
    res = solver.solve(q0, tg)
    assert res.status in (IKStatus.MAX_ITERATIONS, IKStatus.LIMIT_BOUND)
    assert not res.converged and np.all(np.isfinite(res.q)) and within_limits(m, res.q)
    before = np.linalg.norm(tg[0][:3, 3] - m.fk(q0, "left_wrist_yaw_link")[:3, 3])
    # it reached toward the target (a trade-off with the wrist orientation cost)
    assert res.position_errors[0] < before - 0.15
    longer = IKSolver(m, tasks, max_iterations=200).solve(q0, tg)
    assert not longer.converged
    assert np.sum(longer.task_errors ** 2) <= np.sum(res.task_errors ** 2) + 1e-6  # weighted objective
    assert res.position_errors[1] < 1e-4  # the reachable task is still solved


def test_targets_at_the_limits(g1_arms):
    m = g1_arms
    tasks = teleop_tasks()
    solver = IKSolver(m, tasks, max_iterations=50)
    j = m.joint_index("left_elbow_joint")
    q_edge = m.neutral()
    q_edge[j] = m.upper[j]  # exactly at the limit: reachable
    q0 = q_edge.copy()
    q0[j] -= 0.3
    res = solver.solve(q0, targets_at(m, q_edge, tasks))
    assert res.status == IKStatus.CONVERGED
    assert res.q[j] <= m.upper[j] and res.q[j] == pytest.approx(m.upper[j], abs=1e-3)
    # beyond the limit: the joint stops at its bound and the status says so
    beyond = q_edge.copy()
    beyond[j] = m.upper[j] + 0.4
    res = solver.solve(q0, targets_at(m, beyond, tasks))
    assert res.status == IKStatus.LIMIT_BOUND
    assert res.q[j] == m.upper[j] and within_limits(m, res.q)


def test_relative_task_with_moving_root(g1_full):
    lock = [n for n in g1_full.joint_names if "hip" in n or "knee" in n or "ankle" in n]
    m = RobotModel.from_urdf(G1, locked_joints=lock)  # waist free: torso moves
    task = RelativeFrameTask("left_wrist_yaw_link", "torso_link")
    rng = np.random.default_rng(3)
    q = m.random_configuration(rng, 0.2)
    h = 1e-6
    J = task.compute_jacobian(m, q)
    for k in range(m.nq):
        dq = np.zeros(m.nq)
        dq[k] = h
        Tp, Tm = task.current(m, q + dq), task.current(m, q - dq)
        np.testing.assert_allclose(J[:3, k], (Tp[:3, 3] - Tm[:3, 3]) / (2 * h), atol=1e-8)
        np.testing.assert_allclose(J[3:, k], reference.log_so3(Tp[:3, :3] @ Tm[:3, :3].T) / (2 * h), atol=1e-8)
    solver = IKSolver(m, [task, PostureTask(1e-6)], max_iterations=40)
    goal = m.random_configuration(rng, 0.2)
    res = solver.solve(m.neutral(), [task.current(m, goal), None])
    np.testing.assert_allclose(task.current(m, res.q), task.current(m, goal), atol=5e-4)


def test_posture_task_pulls_toward_reference(g1_arms):
    m = g1_arms
    rng = np.random.default_rng(4)
    q_ref = m.random_configuration(rng, 0.1)
    post = PostureTask(1.0)
    solver = IKSolver(m, [post], max_iterations=100)
    solver.set_posture_reference(post, q_ref)
    res = solver.solve(m.neutral(), [None])
    np.testing.assert_allclose(res.q, q_ref, atol=1e-6)
    beyond = q_ref.copy()
    beyond[0] = m.upper[0] + 1.0
    solver.set_posture_reference(0, beyond)
    res = solver.solve(m.neutral(), [None])
    assert res.q[0] == m.upper[0]


def test_box_qp_matches_scipy_bounded_least_squares():
    rng = np.random.default_rng(5)
    for _ in range(50):
        n = int(rng.integers(2, 10))
        A = rng.normal(size=(n + 4, n))
        b = rng.normal(size=n + 4) * 3
        lo, hi = -rng.uniform(0, 0.5, n), rng.uniform(0, 0.5, n)
        d, _ = reference.box_qp(A.T @ A + 1e-9 * np.eye(n), A.T @ b, lo, hi)
        ref = lsq_linear(A, b, bounds=(lo, hi), tol=1e-14, method="bvls").x
        np.testing.assert_allclose(d, ref, atol=1e-7)


def test_one_solver_per_thread_gives_sequential_results(g1_arms):
    m = g1_arms
    rng = np.random.default_rng(6)
    jobs = [(m.random_configuration(rng, 0.1), m.random_configuration(rng, 0.1)) for _ in range(200)]

    def run(solver, out):
        for q0, qg in jobs:
            out.append(solver.solve(q0, targets_at(m, qg, solver.tasks), dt=0.01).q)

    seq = []
    run(IKSolver(m, teleop_tasks()), seq)
    results = [[], []]
    threads = [threading.Thread(target=run, args=(IKSolver(m, teleop_tasks()), results[i])) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(np.array(r), np.array(seq))


def test_api_errors(g1_arms):
    m = g1_arms
    with pytest.raises(KeyError, match="left_wrist_yaw_link"):
        IKSolver(m, [FrameTask("left_wrist_yaw_lnk")])
    with pytest.raises(KeyError, match="torso_link"):
        IKSolver(m, [RelativeFrameTask("left_wrist_yaw_link", "torso_lnk")])
    solver = IKSolver(m, teleop_tasks())
    T = np.eye(4)
    with pytest.raises(ValueError, match="targets"):
        solver.solve(m.neutral(), [T, T, T])
    with pytest.raises(ValueError, match="shape"):
        solver.solve(m.neutral(), [T, T, T, np.eye(3)])
    with pytest.raises(ValueError, match="q0"):
        solver.solve(np.zeros(3), [T] * 4)
    with pytest.raises(ValueError, match="out"):
        solver.solve_into(m.neutral(), solver.pack_targets([T] * 4), np.zeros(3))
    with pytest.raises(ValueError, match="float64"):
        solver.solve_into(m.neutral(), solver.pack_targets([T] * 4), np.zeros(m.nq, dtype=np.float32))
    with pytest.raises(TypeError):
        solver.solve_into(m.neutral(), solver.pack_targets([T] * 4))
    with pytest.raises(ValueError):
        FrameTask("x", position_cost=-1)


def test_solve_releases_the_gil_and_rejects_concurrent_use(g1_arms):
    m = g1_arms
    tasks = [FrameTask("left_wrist_yaw_link"), FrameTask("right_wrist_yaw_link")]
    solver = IKSolver(m, tasks, max_iterations=150_000, step_tolerance=0.0)
    tg = targets_at(m, m.neutral(), tasks)
    tg[0] = tg[0].copy()
    tg[0][:3, 3] += [1.5, 0.5, 0.0]  # unreachable: runs all iterations
    packed = solver.pack_targets(tg)
    out = np.empty(m.nq)
    done = threading.Event()
    errors = []

    def work():
        solver.solve_into(m.neutral(), packed, out, 0.0)
        done.set()

    th = threading.Thread(target=work)
    th.start()
    count = 0
    while not done.is_set():  # this loop only runs while the C core has released the GIL
        count += 1
        if solver._core.busy and not errors:
            try:
                solver.solve_into(m.neutral(), packed, np.empty(m.nq), 0.0)
            except RuntimeError as e:
                errors.append(e)
    th.join()
    assert solver.last_iterations == 150_000
    assert count > 1000
    assert errors and "thread" in str(errors[0])
