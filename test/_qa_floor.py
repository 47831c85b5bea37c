"""Record one short clean episode on the simulated floor (for the QA planted-defect tests).

The floor is the real sim graph (mocap_replay on a CMU clip -> retarget -> robot_sim, two
synthetic cameras: ``head`` raw rgb8 and ``front`` JPEG, the recorder) under the process
supervisor that ``robot-capture up`` uses, as in test/test_e2e_floor.py. One episode of
``seconds`` is recorded through the recorder's services with task, operator and success.
"""
from __future__ import annotations

from pathlib import Path

CLIP = "cmu_02_06_bend_scoop_up_lift_arm.bvh"
FLOOR_NICE = -5


def floor_specs(out_dir: Path):
    from robot_capture.floor import graph

    cfg = graph.load_config(None)
    cfg["nice"] = FLOOR_NICE
    cfg["retarget"]["rate_hz"] = 0.0  # one command per exo input: command stamps on the clip's sample grid
    cfg["cameras"] = {
        "head": {"source": "synthetic", "rate_hz": 30.0, "width": 160, "height": 120, "compressed": False},
        "front": {"source": "synthetic", "rate_hz": 30.0, "width": 160, "height": 120, "compressed": True},
    }
    # a light floor (small renders, 250 Hz robot state) so that a loaded CI machine records it cleanly
    cfg["sim"]["joint_state_rate_hz"] = 250.0
    cfg["parameters"] = {"camera_front": {"view": "front"}}
    return graph.build(cfg, sim=True, overrides={"clip": CLIP, "output_dir": str(out_dir), "robot": "g1"})


def record_clean_episode(out_dir: Path, seconds: float = 4.0, log_path: Path | None = None) -> tuple[Path, dict]:
    """Record one episode; returns (bag directory, expected {topic: Hz | None} of the graph)."""
    from sensor_msgs.msg import CompressedImage, Image, JointState

    from robot_capture.floor import graph
    from robot_capture.floor.client import EpisodeClient
    from robot_capture.floor.launcher import Supervisor

    out_dir = Path(out_dir)
    specs = floor_specs(out_dir)
    expected = graph.expected_topics(specs)
    log_path = log_path or out_dir.parent / "qa_floor.log"
    with open(log_path, "w") as log:
        sup = Supervisor(specs, out=log)
        sup.start()
        try:
            with EpisodeClient(discovery_timeout_s=30.0, timeout_s=15.0, node_name="qa_operator") as client:
                client.watch({"/joint_states": JointState, "/retarget/joint_command": JointState,
                              "/exo/joint_states": JointState, "/camera/head/image_raw": Image,
                              "/camera/front/image_raw/compressed": CompressedImage})
                client.wait_for_recorder()
                client.wait_for_data(list(client.counts), min_messages=5, timeout_s=40.0)
                client.unwatch()
                client.spin_for(2.0)
                if sup.check():
                    raise RuntimeError("a floor node died at start-up; see " + str(log_path))
                path = None
                for attempt in range(6):  # the recorder refuses a start while a stream is not at rate yet
                    try:
                        path = client.start_episode(force=attempt == 5, task="pour water", operator="alice",
                                                    scene="sim")
                        break
                    except Exception:  # noqa: BLE001 - EpisodeClientError: not starting (streams)
                        client.spin_for(2.0)
                client.spin_for(seconds)
                client.stop_episode(success=True)
                client.spin_for(0.3)
        finally:
            codes = sup.shutdown()
    if any(c != 0 for c in codes.values()):
        raise RuntimeError(f"floor node exit codes {codes}; see {log_path}")
    bags = sorted(p.parent for p in out_dir.glob("*/metadata.yaml"))
    if len(bags) != 1:
        raise RuntimeError(f"expected one bag in {out_dir}, found {bags} ({path})")
    return bags[0], expected


if __name__ == "__main__":  # python test/_qa_floor.py OUT_DIR
    import json
    import sys

    bag, exp = record_clean_episode(Path(sys.argv[1]))
    print(bag)
    print(json.dumps(exp))
