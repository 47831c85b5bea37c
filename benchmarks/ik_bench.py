#!/usr/bin/env python3
"""Benchmark the C IK solver on the teleop workload and compare baselines in the same run.

Workload (issue 3): a humanoid with legs and waist locked (G1 29-DoF by default: 7 + 7 arm
DoF); both wrists get full 6-D pose targets and both elbows a low-weight position target.
Targets are FK of smooth random joint trajectories within limits (sums of sines, 0.05-0.4 Hz
at normal speed, all frequencies x3 at 3x speed), sampled at --rate Hz for --duration s.
Every frame is one solve warm-started from the previous frame's solution, with velocity
limits over dt = 1/rate.

Figures: median and p99 microseconds per frame around exactly one Python call
(``solver.solve_into(q0, targets, out, dt)`` for the C fast path; ``solver.solve(...)`` for
the convenience path; one full per-frame solve for each baseline), p99 wrist position and
orientation error, and success = both wrists under 1 mm and 0.01 rad. Errors are recomputed
for every method from its returned q with our FK (checked against finite differences and a
separate NumPy FK in test/test_kinematics.py).

Baselines (when installed; ``pip install robot_capture[bench]``): NumPy implementation of the
same algorithm (always), Pinocchio + NumPy DLS loop (``pin``), ``pin-pink`` (QP differential
IK, iterated to the same tolerances), ``placo``.

    python benchmarks/ik_bench.py                # full run (6 seeds x 30 s x 2 speeds)
    python benchmarks/ik_bench.py --quick        # short run
    python benchmarks/ik_bench.py --urdf h1.urdf --frames left_elbow_link right_elbow_link ...
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

# single-threaded BLAS: idle OpenBLAS worker threads spin and steal the core being timed
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from _installed import require_installed  # noqa: E402

require_installed()

from robot_capture.kinematics.ik import FrameTask, IKSolver, PositionTask  # noqa: E402
from robot_capture.kinematics.model import RobotModel  # noqa: E402
from robot_capture.kinematics.reference import ReferenceIKSolver, log_so3  # noqa: E402
from robot_capture.paths import data_dir  # noqa: E402

G1 = "robots/unitree_g1/g1_29dof_rev_1_0.urdf"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--urdf", default=None, help=f"URDF path (default: <data>/{G1})")
    p.add_argument("--base-link", default=None, help="model root frame (default: URDF root)")
    p.add_argument("--frames", nargs=2, metavar=("LEFT_WRIST", "RIGHT_WRIST"),
                   default=["left_wrist_yaw_link", "right_wrist_yaw_link"], help="6-D pose target frames")
    p.add_argument("--elbows", nargs=2, metavar=("LEFT", "RIGHT"), default=["left_elbow_link", "right_elbow_link"],
                   help="low-weight position target frames")
    p.add_argument("--lock", nargs="*", default=None, metavar="JOINT",
                   help="joints to lock at 0 (default: every joint not strictly below the wrists' common ancestor)")
    p.add_argument("--elbow-cost", type=float, default=0.05, help="elbow position cost relative to wrists (1.0)")
    p.add_argument("--seeds", type=int, default=6, help="trajectories per speed for the C solver")
    p.add_argument("--baseline-seeds", type=int, default=2, help="trajectories per speed for the baselines")
    p.add_argument("--duration", type=float, default=30.0, help="seconds per trajectory")
    p.add_argument("--rate", type=float, default=100.0, help="frames per second (dt = 1/rate)")
    p.add_argument("--speeds", type=float, nargs="+", default=[1.0, 3.0], help="trajectory speed factors")
    p.add_argument("--max-iterations", type=int, default=20)
    p.add_argument("--error-damping", type=float, default=None,
                   help="IKSolver error_damping (default: the solver's default)")
    p.add_argument("--baselines", nargs="*", default=["numpy", "pin", "pink", "placo"],
                   help="baselines to run when installed (numpy, pin, pink, placo)")
    p.add_argument("--quick", action="store_true", help="short run: 5 s, 2 seeds, 1 baseline seed")
    a = p.parse_args(argv)
    if a.quick:
        a.duration, a.seeds, a.baseline_seeds = 5.0, 2, 1
    return a


def default_lock(model: RobotModel, frames) -> list[str]:
    """Joints not strictly below the lowest common ancestor of the target frames."""
    chains = []
    for f in frames:
        i, c = model.frame_index(f), []
        while i >= 0:
            c.append(i)
            i = model.link_parent[i]
        chains.append(c[::-1])
    lca = 0
    for k in range(min(map(len, chains))):
        if all(c[k] == chains[0][k] for c in chains):
            lca = chains[0][k]
    keep = {model.link_joint[i] for c in chains for i in c[c.index(lca) + 1:]}
    return [n for n in model.joint_names if n not in keep]


def trajectory(model: RobotModel, seed: int, speed: float, n: int, rate: float) -> np.ndarray:
    """(n, nq) smooth random joint trajectory within limits (5% margin)."""
    rng = np.random.default_rng(seed)
    lo = np.where(np.isfinite(model.lower), model.lower, -math.pi)
    hi = np.where(np.isfinite(model.upper), model.upper, math.pi)
    margin = 0.05 * (hi - lo)
    c, h = 0.5 * (lo + hi), 0.5 * (hi - lo) - margin
    t = np.arange(n) / rate
    q = np.empty((n, model.nq))
    for j in range(model.nq):
        f = rng.uniform(0.05, 0.4, 3) * speed
        a = rng.uniform(0.3, 1.0, 3)
        ph = rng.uniform(0, 2 * math.pi, 3)
        s = (a[:, None] * np.sin(2 * math.pi * f[:, None] * t + ph[:, None])).sum(0) / a.sum()
        q[:, j] = c[j] + h[j] * s
    return q


class Workload:
    def __init__(self, args):
        path = Path(args.urdf) if args.urdf else data_dir() / G1
        probe = RobotModel.from_urdf(path, base_link=args.base_link)
        lock = default_lock(probe, args.frames) if args.lock is None else args.lock
        self.path, self.lock = path, lock
        self.model = RobotModel.from_urdf(path, base_link=args.base_link, locked_joints=lock)
        m = self.model
        self.frames, self.elbows = list(args.frames), list(args.elbows)
        self.weights = [1.0, 1.0, args.elbow_cost, args.elbow_cost]
        self.tasks = [FrameTask(self.frames[0]), FrameTask(self.frames[1]),
                      PositionTask(self.elbows[0], args.elbow_cost), PositionTask(self.elbows[1], args.elbow_cost)]
        self.fi = [m.frame_index(f) for f in self.frames + self.elbows]
        self.n = int(round(args.duration * args.rate))
        self.dt = 1.0 / args.rate
        self.args = args

    def targets(self, seed, speed):
        qs = trajectory(self.model, seed, speed, self.n, self.args.rate)
        T = np.empty((self.n, 4, 4, 4))
        for k in range(self.n):
            T[k] = self.model.fk_all(qs[k])[self.fi]
        return qs, T

    def errors(self, q, T):
        """(pos_err (2,), ori_err (2,)) of the two wrists at q."""
        P = self.model.fk_all(q)
        pe = [np.linalg.norm(T[k, :3, 3] - P[self.fi[k], :3, 3]) for k in range(2)]
        oe = [np.linalg.norm(log_so3(T[k, :3, :3] @ P[self.fi[k], :3, :3].T)) for k in range(2)]
        return pe, oe


# ------------------------------------------------------------------------- methods
def run_c_fast(w: Workload, qs, T, solver):
    m = w.model
    q, out = qs[0].copy(), np.empty(m.nq)
    Tv = [np.ascontiguousarray(T[k]) for k in range(len(T))]
    solve_into, dt, clock = solver.solve_into, w.dt, time.perf_counter_ns
    times = np.empty(len(T))
    sol = np.empty((len(T), m.nq))
    iters = np.empty(len(T))
    core = solver._core
    for k in range(len(T)):
        t0 = clock()
        solve_into(q, Tv[k], out, dt)
        times[k] = clock() - t0
        q, out = out, q
        sol[k] = q
        iters[k] = core.iterations
    return times / 1e3, sol, iters


def run_c_solve(w: Workload, qs, T, solver):
    q = qs[0].copy()
    times, sol, iters = np.empty(len(T)), np.empty((len(T), w.model.nq)), np.empty(len(T))
    clock = time.perf_counter_ns
    for k in range(len(T)):
        t0 = clock()
        r = solver.solve(q, T[k], w.dt)
        times[k] = clock() - t0
        q = r.q
        sol[k], iters[k] = q, r.iterations
    return times / 1e3, sol, iters


def run_numpy(w: Workload, qs, T, solver):
    q = qs[0].copy()
    times, sol, iters = np.empty(len(T)), np.empty((len(T), w.model.nq)), np.empty(len(T))
    clock = time.perf_counter_ns
    for k in range(len(T)):
        t0 = clock()
        q, st, it, _, _ = solver.solve(q, T[k], w.dt)
        times[k] = clock() - t0
        sol[k], iters[k] = q, it
    return times / 1e3, sol, iters


class PinDLS:
    """Pinocchio FK/Jacobians + a NumPy damped least squares loop (same tasks, damping, tolerances)."""

    name, call = "pin DLS", "pinocchio FK/J + NumPy DLS loop"

    def __init__(self, w: Workload):
        import pinocchio as pin

        self.pin, self.w = pin, w
        full = pin.buildModelFromUrdf(str(w.path))
        qlock = pin.neutral(full)
        for n, v in w.model.locked.items():
            qlock[full.idx_qs[full.getJointId(n)]] = v
        ids = [full.getJointId(n) for n in w.model.locked]
        self.model = pin.buildReducedModel(full, ids, qlock)
        self.data = self.model.createData()
        self.fids = [self.model.getFrameId(f) for f in w.frames + w.elbows]
        self.idx = np.array([self.model.idx_qs[self.model.getJointId(n)] for n in w.model.joint_names])
        self.lo, self.hi = self.model.lowerPositionLimit, self.model.upperPositionLimit
        self.vmax = self.model.velocityLimit
        self.W = [np.r_[np.full(3, wt), np.full(3, wt if k < 2 else 0.0)] for k, wt in enumerate(w.weights)]

    def to_pin(self, q):
        out = np.zeros(self.model.nq)
        out[self.idx] = q
        return out

    def solve(self, q0, T, dt, max_iter=20, tol_p=1e-4, tol_o=1e-3):
        pin, M, D = self.pin, self.model, self.data
        q = q0.copy()
        lo = np.maximum(self.lo, q0 - self.vmax * dt)
        hi = np.minimum(self.hi, q0 + self.vmax * dt)
        for it in range(max_iter + 1):
            pin.framesForwardKinematics(M, D, q)
            es, conv = [], True
            for k, fid in enumerate(self.fids):
                oMf = D.oMf[fid]
                e = np.r_[T[k, :3, 3] - oMf.translation, pin.log3(T[k, :3, :3] @ oMf.rotation.T)]
                es.append(e)
                if np.linalg.norm(e[:3]) > tol_p or (k < 2 and np.linalg.norm(e[3:]) > tol_o):
                    conv = False
            if conv or it == max_iter:
                return q, it
            pin.computeJointJacobians(M, D, q)
            H = np.zeros((M.nv, M.nv))
            g = np.zeros(M.nv)
            E = 0.0
            for k, fid in enumerate(self.fids):
                J = pin.getFrameJacobian(M, D, fid, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED)
                H += J.T @ (self.W[k][:, None] * J)
                g += J.T @ (self.W[k] * es[k])
                E += 0.5 * es[k] @ (self.W[k] * es[k])
            H[np.diag_indices_from(H)] += E + 1e-6
            q = np.clip(q + np.linalg.solve(H, g), lo, hi)  # DLS step, then clip
        return q, max_iter

    def run(self, qs, T):
        q = self.to_pin(qs[0])
        n = len(T)
        times, sol, iters = np.empty(n), np.empty((n, self.w.model.nq)), np.empty(n)
        clock = time.perf_counter_ns
        for k in range(n):
            t0 = clock()
            q, it = self.solve(q, T[k], self.w.dt)
            times[k] = clock() - t0
            sol[k], iters[k] = q[self.idx], it
        return times / 1e3, sol, iters


class Pink(PinDLS):
    """pin-pink: QP differential IK (daqp), stepped until the same tolerances (max 20 steps)."""

    name, call = "pink", "pink.solve_ik + integrate, iterated"

    def __init__(self, w: Workload):
        super().__init__(w)
        import pink
        import qpsolvers
        from pink.tasks import FrameTask as PinkFrameTask

        self.pink = pink
        self.qp = "daqp" if "daqp" in qpsolvers.available_solvers else qpsolvers.available_solvers[0]
        self.tasks = [PinkFrameTask(f, position_cost=1.0, orientation_cost=1.0) for f in w.frames]
        self.tasks += [PinkFrameTask(f, position_cost=math.sqrt(w.weights[2]), orientation_cost=0.0) for f in w.elbows]

    def solve(self, q0, T, dt, max_iter=20, tol_p=1e-4, tol_o=1e-3):
        pin, pink = self.pin, self.pink
        for k, task in enumerate(self.tasks):
            task.set_target(pin.SE3(T[k, :3, :3].copy(), T[k, :3, 3].copy()))
        conf = pink.Configuration(self.model, self.data, q0)
        for it in range(max_iter + 1):
            conv = True
            for k, fid in enumerate(self.fids):
                oMf = conf.data.oMf[fid]
                if np.linalg.norm(T[k, :3, 3] - oMf.translation) > tol_p or (
                        k < 2 and np.linalg.norm(pin.log3(T[k, :3, :3] @ oMf.rotation.T)) > tol_o):
                    conv = False
            if conv or it == max_iter:
                return conf.q, it
            v = pink.solve_ik(conf, self.tasks, dt, solver=self.qp, damping=1e-6, safety_break=False)
            conf.integrate_inplace(v, dt)
        return conf.q, max_iter


class Placo:  # noqa: D101 (docstring below)
    """placo KinematicsSolver (soft frame/position tasks, joint and velocity limits), iterated."""

    name, call = "placo", "placo KinematicsSolver.solve(True), iterated to the same tolerances"
    iterate = True

    def __init__(self, w: Workload):
        import placo

        self.w, self.placo = w, placo
        # placo loads meshes; the shipped URDFs have none: hand it a temporary copy without geometry
        import tempfile
        import xml.etree.ElementTree as ET

        tree = ET.parse(w.path)
        for link in tree.getroot().iter("link"):
            for tag in ("visual", "collision"):
                for el in link.findall(tag):
                    link.remove(el)
        self._tmp = tempfile.TemporaryDirectory(prefix="ik_bench_placo_")
        urdf = Path(self._tmp.name) / w.path.name
        tree.write(urdf)
        self.robot = placo.RobotWrapper(str(urdf), placo.Flags.ignore_collisions)
        for n, v in w.model.locked.items():
            self.robot.set_joint(n, v)
        self.robot.update_kinematics()
        s = self.solver = placo.KinematicsSolver(self.robot)
        s.mask_fbase(True)
        for n in w.model.locked:
            s.mask_dof(n)
        s.enable_joint_limits(True)
        s.enable_velocity_limits(True)
        s.dt = w.dt
        self.ftasks = [s.add_frame_task(f, np.eye(4)) for f in w.frames]
        for t in self.ftasks:
            t.configure(t.name if hasattr(t, "name") else "wrist", "soft", 1.0, 1.0)
        self.ptasks = [s.add_position_task(f, np.zeros(3)) for f in w.elbows]
        for t in self.ptasks:
            t.configure("elbow", "soft", w.weights[2])

    def run(self, qs, T):
        w, robot, s = self.w, self.robot, self.solver
        names = w.model.joint_names
        for n, v in zip(names, qs[0]):
            robot.set_joint(n, v)
        robot.update_kinematics()
        n = len(T)
        times, sol, iters = np.empty(n), np.empty((n, w.model.nq)), np.empty(n)
        clock = time.perf_counter_ns
        for k in range(n):
            t0 = clock()
            for i, t in enumerate(self.ftasks):
                t.T_world_frame = T[k, i]
            for i, t in enumerate(self.ptasks):
                t.target_world = T[k, 2 + i, :3, 3]
            it = 0
            for it in range(1, (w.args.max_iterations if self.iterate else 1) + 1):
                s.solve(True)
                robot.update_kinematics()
                if not self.iterate:
                    break
                ok = True
                for i, f in enumerate(w.frames):
                    Tc = robot.get_T_world_frame(f)
                    if np.linalg.norm(T[k, i, :3, 3] - Tc[:3, 3]) > 1e-4 or np.linalg.norm(
                            log_so3(T[k, i, :3, :3] @ Tc[:3, :3].T)) > 1e-3:
                        ok = False
                if ok:
                    break
            times[k] = clock() - t0
            sol[k] = [robot.get_joint(nm) for nm in names]
            iters[k] = it
        return times / 1e3, sol, iters


class PlacoOneStep(Placo):
    """placo with one ``solve`` per frame (its usual teleop use; no convergence loop)."""

    name, call, iterate = "placo-1", "placo KinematicsSolver.solve(True), 1 step/frame", False


class PinkOneStep(Pink):
    """pink with one QP step per frame."""

    name, call = "pink-1", "pink.solve_ik + integrate, 1 step/frame"

    def solve(self, q0, T, dt, max_iter=1, tol_p=0.0, tol_o=0.0):
        return super().solve(q0, T, dt, max_iter=1, tol_p=0.0, tol_o=0.0)


# ------------------------------------------------------------------------- main
def summarize(w: Workload, T, sol, times, iters):
    pe, oe = np.empty((len(T), 2)), np.empty((len(T), 2))
    for k in range(len(T)):
        pe[k], oe[k] = w.errors(sol[k], T[k])
    lim_ok = bool(np.all(sol >= w.model.lower - 1e-12) and np.all(sol <= w.model.upper + 1e-12))
    # velocity limits over dt (the first frame starts from the trajectory's first sample)
    lim_ok &= bool(np.all(np.abs(np.diff(sol, axis=0)) <= w.model.velocity_limit * w.dt * (1 + 1e-9) + 1e-12))
    ok = (pe.max(1) < 1e-3) & (oe.max(1) < 0.01)
    return dict(times=times, pe=pe.ravel(), oe=oe.ravel(), ok=ok, iters=iters, lim_ok=lim_ok)


def merge(rs):
    return {k: (np.concatenate([r[k] for r in rs]) if k != "lim_ok" else all(r[k] for r in rs)) for k in rs[0]}


def main(argv=None) -> int:
    args = parse_args(argv)
    w = Workload(args)
    m = w.model
    print(f"URDF {w.path.name}: nq={m.nq} active ({', '.join(m.joint_names[:3])}, ...), "
          f"{len(w.lock)} locked; wrists {w.frames} (6-D, cost 1), elbows {w.elbows} "
          f"(position, cost {args.elbow_cost}); {args.duration:g} s at {args.rate:g} Hz; dt={w.dt:g} s")
    kw = dict(max_iterations=args.max_iterations, position_tolerance=1e-4, orientation_tolerance=1e-3)
    if args.error_damping is not None:
        kw["error_damping"] = args.error_damping
    solver = IKSolver(m, w.tasks, backend="c", **kw)  # ImportError (how to build) if _ik is not built
    if solver.backend != "c":
        print(f"error: the rows labelled 'C _ik' would run backend {solver.backend!r}", file=sys.stderr)
        return 1
    methods = [("C _ik", "solver.solve_into(q0, targets, out, dt)", lambda qs, T: run_c_fast(w, qs, T, solver),
                args.seeds),
               ("C _ik", "solver.solve(q0, targets, dt) -> IKResult", lambda qs, T: run_c_solve(w, qs, T, solver),
                args.seeds)]
    if "numpy" in args.baselines:
        ref = ReferenceIKSolver(m, w.tasks, **kw)
        methods.append(("NumPy", "ReferenceIKSolver.solve (same algorithm)", lambda qs, T: run_numpy(w, qs, T, ref),
                        args.baseline_seeds))
    notes = []
    for key, cls in (("pin", PinDLS), ("pink", Pink), ("pink", PinkOneStep), ("placo", Placo), ("placo", PlacoOneStep)):
        if key not in args.baselines:
            continue
        try:
            b = cls(w)
            methods.append((b.name, b.call, b.run, args.baseline_seeds))
        except Exception as e:  # noqa: BLE001 - an optional baseline that cannot run is reported, not fatal
            notes.append(f"{key}: not run ({type(e).__name__}: {str(e).splitlines()[0][:100]})")
    rows, failed = [], []
    for speed in args.speeds:
        data = [w.targets(seed, speed) for seed in range(args.seeds)]
        over = np.mean([np.any(np.abs(np.diff(qs, axis=0)) > m.velocity_limit * w.dt, axis=1).mean() for qs, _ in data])
        if over > 0:
            notes.append(f"at {speed:g}x the reference trajectories exceed the URDF velocity limits in {100 * over:.1f}% "
                         "of frames: those targets cannot be tracked with velocity limits on")
        for name, call, fn, nseeds in methods:
            t0 = time.perf_counter()
            res = []
            for seed in range(nseeds):
                qs, T = data[seed]
                try:
                    times, sol, iters = fn(qs, T)
                except Exception as e:  # noqa: BLE001
                    notes.append(f"{name} at {speed:g}x failed: {type(e).__name__}: {e}")
                    failed.append(name)
                    res = []
                    break
                res.append(summarize(w, T, sol, times, iters))
            if res:
                rows.append((name, call, speed, nseeds, merge(res)))
                print(f"  ran {name:8s} {speed:g}x on {nseeds} seed(s) in {time.perf_counter() - t0:.1f} s",
                      file=sys.stderr, flush=True)
    np_median = {r[2]: float(np.median(r[4]["times"])) for r in rows if r[0] == "NumPy"}
    hdr = (f"{'method':8s} {'speed':>5s} {'seeds':>5s} {'median us':>10s} {'p99 us':>9s} {'iters':>5s} "
           f"{'success %':>9s} {'p99 pos mm':>10s} {'p99 ori mrad':>12s} {'limits':>6s} {'vs NumPy':>8s}  call")
    legend = ("iters: mean solver iterations per frame; success: both wrists < 1 mm and < 0.01 rad; "
              "limits: position and velocity-over-dt limits held on every frame")
    print()
    print(hdr)
    print("-" * len(hdr))
    for name, call, speed, nseeds, r in rows:
        med = float(np.median(r["times"]))
        ratio = f"{np_median[speed] / med:7.0f}x" if speed in np_median else "       -"
        print(f"{name:8s} {speed:4g}x {nseeds:5d} {med:10.2f} {np.percentile(r['times'], 99):9.2f} "
              f"{r['iters'].mean():5.2f} {100 * r['ok'].mean():9.3f} {1e3 * np.percentile(r['pe'], 99):10.4f} "
              f"{1e3 * np.percentile(r['oe'], 99):12.4f} {'ok' if r['lim_ok'] else 'VIOL':>6s} {ratio}  {call}")
    print(legend)
    for n in notes:
        print("note:", n)
    c_rows = [r for r in rows if r[0] == "C _ik" and r[1].startswith("solver.solve_into")]
    if c_rows:
        normal = [r for r in c_rows if r[2] == 1.0]
        med = float(np.median(np.concatenate([r[4]["times"] for r in c_rows])))
        print(f"\ntargets: median <= 5 us (C fast path, all speeds: {med:.2f} us)"
              + (f"; success >= 99.9% at 1x ({100 * normal[0][4]['ok'].mean():.3f}%)" if normal else "")
              + (f"; >= 100x NumPy ({np_median[1.0] / float(np.median(normal[0][4]['times'])):.0f}x at 1x)"
                 if normal and 1.0 in np_median else ""))
    if "C _ik" in failed or "NumPy" in failed:
        # a row that names a backend which did not run is not a figure: fail, do not footnote
        print(f"error: {', '.join(sorted(set(failed) & {'C _ik', 'NumPy'}))} failed (see the notes above)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
