"""mocap_replay node: a BVH clip (real human motion) standing in for an operator.

Publishes, at the clip's frame rate times ``speed`` (stamps = now: each frame's nominal
time on a fixed grid from the start, :class:`robot_capture.sim.ticker.Ticker`, so a late
timer call catches up instead of dropping frames):

* ``/exo/joint_states`` (sensor_msgs/JointState): the readings the exoskeleton arm model
  would give (``ExoArmModel.angles_from_pose``), if ``publish_exo``;
* ``/vr/head``, ``/vr/left_wrist``, ``/vr/right_wrist`` (geometry_msgs/PoseStamped,
  frame ``vr_world``), if ``publish_vr``;
* ``/vr/left_hand``, ``/vr/right_hand`` (geometry_msgs/PoseArray, 26 OpenXR joints, ``vr_world``),
  if ``hand_poses`` names recorded WebXR hand poses (at the replayed wrists, a list taken in turn;
  published before the trackers of the same frame, so the retarget node uses it with them).

Per-frame data comes from :class:`robot_capture.sim.replay.ClipReplay`. With ``loop: false``
the node stops publishing after the last frame and keeps running.
"""
from __future__ import annotations

from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState

from robot_capture.nodes._convert import joint_state_msg, matrix_to_pose, ns_to_stamp, pose_array_msg
from robot_capture.nodes._run import StartupError, declare, run
from robot_capture.sim.replay import VR_NAMES, ClipReplay
from robot_capture.sim.ticker import Ticker

DEFAULT_CLIP = "cmu_02_06_bend_scoop_up_lift_arm.bvh"


class MocapReplayNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("mocap_replay", **kwargs)
        p = lambda name, default, text: declare(self, name, default, text)  # noqa: E731
        clip = p("clip", DEFAULT_CLIP, "BVH clip: a name in shared/data/motion or a path")
        loop = p("loop", True, "restart the clip after its last frame")
        speed = p("speed", 1.0, "playback speed factor")
        publish_exo = p("publish_exo", True, "publish /exo/joint_states")
        publish_vr = p("publish_vr", True, "publish /vr/head, /vr/left_wrist, /vr/right_wrist")
        exo_config = p("exo_config", "", "exoskeleton arm model YAML ('' = config/human/exo_arm.yaml)")
        hand_poses = p("hand_poses", "", "recorded WebXR hand pose name (e.g. rest, fist) published on "
                                         "/vr/{left,right}_hand at the wrists, or a comma-separated list taken "
                                         "in turn ('' = none; needs publish_vr)")
        hand_pose_s = p("hand_pose_s", 1.0, "clip time each pose of a hand_poses list is held, s")
        self.frame_id = p("frame_id", "vr_world", "frame of the VR poses")
        try:
            self.replay = ClipReplay(clip, exo=publish_exo, vr=publish_vr, exo_config=exo_config,
                                     speed=speed, loop=loop, hand_poses=hand_poses,
                                     hand_pose_s=hand_pose_s)
        except (OSError, ValueError, KeyError) as e:
            raise StartupError(f"mocap_replay: cannot load clip {clip!r}: {e}") from e
        self.exo_pub = self.create_publisher(JointState, "/exo/joint_states", 10) if publish_exo else None
        self.vr_pubs = {n: self.create_publisher(PoseStamped, f"/vr/{n}", 10) for n in VR_NAMES} if publish_vr else {}
        self.hand_pubs = {s: self.create_publisher(PoseArray, f"/vr/{s}_hand", 10) for s in self.replay.hands}
        self._ended = False
        self._last_i: int | None = None  # the clip frame published last
        self.ticker = Ticker(self.replay.rate_hz, self.get_clock().now().nanoseconds)
        self.create_timer(self.replay.period_s, self._on_timer)
        self.get_logger().info(
            f"mocap_replay: {self.replay.path.name} {self.replay.n_frames} frames at {self.replay.rate_hz:.3f} Hz"
            f"{' (loop)' if loop else ''}; exo={publish_exo} vr={publish_vr} hands={hand_poses or 'none'}"
        )

    def _on_timer(self) -> None:
        for k, stamp_ns in self.ticker.due(self.get_clock().now().nanoseconds):
            self._publish(k, stamp_ns)

    def _publish(self, tick: int, stamp_ns: int) -> None:
        i = self.replay.frame_to_publish(tick, self._last_i)
        self._last_i = i if i is not None else self._last_i
        if i is None:
            if not self._ended:
                self._ended = True
                self.get_logger().info("mocap_replay: clip ended (loop: false)")
            return
        stamp = ns_to_stamp(stamp_ns)
        if self.exo_pub is not None:
            self.exo_pub.publish(joint_state_msg(stamp, self.replay.exo_names, self.replay.exo_positions[i]))
        for side, pub in self.hand_pubs.items():
            pub.publish(pose_array_msg(stamp, self.frame_id, self.replay.hands[side][i]))
        for name, pub in self.vr_pubs.items():
            msg = PoseStamped()
            msg.header.stamp = stamp
            msg.header.frame_id = self.frame_id
            msg.pose = matrix_to_pose(self.replay.vr[name][i])
            pub.publish(msg)


def main(args=None) -> int:
    return run(MocapReplayNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
