"""Every shipped clip onto G1 and Kuavo: joint limits hold and the p95 wrist error is bounded.

The wrist error is the IK residual between the robot wrist frame and the human wrist target
after per-limb scaling (what retargeting can achieve). Offline (URDF limits inside the IK, no
filter) the command keeps up: its p95 error is at most 1.5x the IK's (issue 13).
"""
from __future__ import annotations

import numpy as np
import pytest

from robot_capture.retarget.offline import retarget_clip

# p95 IK wrist position error bounds (m), per robot
BOUND = {"g1": 0.05, "kuavo": 0.12}
CLIPS = ["cmu_02_01_walk.bvh", "cmu_02_05_punch_strike.bvh", "cmu_02_06_bend_scoop_up_lift_arm.bvh",
         "cmu_02_10_wash_self.bvh", "cmu_05_02_dance_expressive_arms.bvh",
         "cmu_06_02_basketball_forward_dribble.bvh", "cmu_131_01_start_walk_stop.bvh"]


def test_clip_list_is_complete(data_dir):
    assert sorted(p.name for p in (data_dir / "motion").glob("*.bvh")) == sorted(CLIPS)


@pytest.mark.parametrize("robot", ["g1", "kuavo"])
@pytest.mark.parametrize("clip", CLIPS)
def test_clip_retargets_within_limits(data_dir, robot, clip):
    res = retarget_clip(data_dir / "motion" / clip, robot=robot, source="bvh")
    n = len(res)
    assert n > 100 and res.q.shape == (n, len(res.joint_names))
    assert np.isfinite(res.q).all() and np.isfinite(res.qd).all()
    # no joint-limit violation, ever (command and raw IK)
    assert (res.q >= res.lower - 1e-9).all() and (res.q <= res.upper + 1e-9).all()
    assert (res.q_ik >= res.lower - 1e-9).all() and (res.q_ik <= res.upper + 1e-9).all()
    # the robot really moves with the human
    assert np.ptp(res.q, axis=0).max() > 0.3
    assert res.wrist_frames and res.wrist_errors.shape == (n, 2)
    p95_ik = np.percentile(res.wrist_ik_errors, 95, axis=0)
    p95_cmd = np.percentile(res.wrist_errors, 95, axis=0)
    print(f"\n{robot} {clip}: p95 wrist error after scaling (IK) "
          + ", ".join(f"{f}={e * 100:.1f} cm" for f, e in zip(res.wrist_frames, p95_ik))
          + " | command "
          + ", ".join(f"{e * 100:.1f} cm" for e in p95_cmd))
    assert (p95_ik < BOUND[robot]).all(), p95_ik
    assert (p95_cmd <= 1.5 * p95_ik + 1e-6).all(), (p95_cmd, p95_ik)
    assert not any("held" in f for f in res.flags)
