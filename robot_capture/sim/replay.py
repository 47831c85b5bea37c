"""A BVH clip as an operator stand-in: per-frame exoskeleton readings and VR poses.

``ClipReplay`` loads a clip (``robot_capture.retarget.bvh.load_bvh``) and precomputes, for
every frame, exactly what the offline path uses (``robot_capture.retarget.offline``
``exo_replay_messages`` / ``vr_replay_messages``), so a live recording of the clip and
its offline retarget agree:

* exoskeleton readings: ``exo_names`` (14) and ``exo_positions`` ``(N, 14)`` rad, as
  ``ExoArmModel.angles_from_pose`` gives them;
* VR poses: ``vr[name]`` ``(N, 4, 4)`` for ``head``, ``left_wrist``, ``right_wrist`` in the
  ``vr_world`` frame (z up, m);
* optional hands (``hand_poses``): ``hands[side]`` ``(N, 26, 4, 4)`` OpenXR joints in
  ``vr_world``: recorded WebXR hand poses (``retarget.hand_tracking``, the Quest samples)
  carried by the replayed wrist; a comma-separated list cycles through them, ``hand_pose_s``
  of clip time each (a clip has no finger motion: the cycle makes the fingers move).

Frame ``i`` plays at ``i * frame_time / speed`` s after the start; with ``loop`` the
clip restarts after its last frame.
"""
from __future__ import annotations

import math

import numpy as np

from robot_capture.floor.graph import resolve_clip  # clip name or path -> path (one implementation)

VR_NAMES = ("head", "left_wrist", "right_wrist")


def _hand_local(side: str, name: str) -> np.ndarray:
    """(26,4,4) OpenXR joints of the recorded pose ``name`` in the wrist frame. ValueError if absent."""
    from robot_capture.retarget.hand_tracking import load_webxr_hand_poses, webxr_sample_path, webxr_to_openxr

    poses = load_webxr_hand_poses(webxr_sample_path(side))
    for p in poses:
        if name in p.names:
            return webxr_to_openxr(p.positions, np.eye(4), side)
    known = sorted({n for p in poses for n in p.names})
    raise ValueError(f"hand pose {name!r} not in {webxr_sample_path(side).name}; known: {', '.join(known)}")


class ClipReplay:
    """Precomputed per-frame replay of one BVH clip.

    Args:
        clip: clip name in ``shared/data/motion`` (with or without ``.bvh``) or a path.
        exo: compute exoskeleton readings; ``exo_config``: exo arm model YAML ('' = shipped).
        vr: compute VR head/wrist poses.
        speed: playback speed factor (> 0).
        loop: restart after the last frame.
        hand_poses: name of a recorded WebXR hand pose (e.g. ``"rest"``, ``"fist"``) in
            ``data_dir()/hand_tracking/webxr_quest_hand_poses_{left,right}.jsonl`` attached at
            both replayed wrists, or a comma-separated list of them taken in turn; ``""`` = no
            hands. Needs ``vr``.
        hand_pose_s: clip time (s, > 0) each pose of a ``hand_poses`` list is held.

    Raises:
        FileNotFoundError: clip not found. ValueError: malformed BVH (``file:line: ...``),
        ``speed <= 0``, ``hand_pose_s <= 0``, unknown hand pose name or ``hand_poses`` without ``vr``.
    """

    def __init__(self, clip: str, exo: bool = True, vr: bool = True, exo_config: str = "",
                 speed: float = 1.0, loop: bool = True, hand_poses: str = "", hand_pose_s: float = 1.0) -> None:
        from robot_capture.retarget import offline
        from robot_capture.retarget.bvh import load_bvh
        from robot_capture.retarget.exo import ExoArmModel

        if not 0 < speed < math.inf:  # NaN and .inf too
            raise ValueError(f"speed must be finite and > 0, got {speed}")
        self.path = resolve_clip(clip)
        self.clip = load_bvh(self.path)
        self.n_frames = int(self.clip.n_frames)
        self.frame_time = float(self.clip.frame_time)
        self.speed = float(speed)
        self.loop = bool(loop)
        self.exo_names: list[str] = []
        self.exo_positions = np.zeros((self.n_frames, 0))
        self.vr: dict[str, np.ndarray] = {}
        self.hands: dict[str, np.ndarray] = {}
        if exo:
            model = ExoArmModel.load(exo_config or None)
            names, positions = offline.exo_replay_messages(self.clip, model)
            self.exo_names = list(names)
            self.exo_positions = np.asarray(positions, dtype=float).reshape(self.n_frames, len(self.exo_names))
        if vr:
            poses = offline.vr_replay_messages(self.clip)
            self.vr = {k: np.asarray(poses[k], dtype=float).reshape(self.n_frames, 4, 4) for k in VR_NAMES}
        names = [n.strip() for n in str(hand_poses).split(",") if n.strip()]
        if names:
            if not vr:
                raise ValueError("hand_poses needs the VR poses (vr=True)")
            if not 0 < hand_pose_s < math.inf:
                raise ValueError(f"hand_pose_s must be finite and > 0, got {hand_pose_s}")
            which = (np.arange(self.n_frames) * self.frame_time // float(hand_pose_s)).astype(int) % len(names)
            self.hands = {side: self.vr[f"{side}_wrist"][:, None] @ np.stack([_hand_local(side, n) for n in names])[which]
                          for side in ("left", "right")}

    @property
    def period_s(self) -> float:
        """Wall-clock time between published frames (s)."""
        return self.frame_time / self.speed

    @property
    def rate_hz(self) -> float:
        return 1.0 / self.period_s

    def frame_index(self, tick: int) -> int | None:
        """Clip frame for the ``tick``-th publication (0-based); None once a non-looping clip ended."""
        if tick < self.n_frames:
            return tick
        return tick % self.n_frames if self.loop else None

    def frame_to_publish(self, tick: int, last_published: int | None) -> int | None:
        """``frame_index(tick)``, except that a non-looping clip always ends on its last frame: a
        starved publisher's ticker skips samples (``Ticker.max_catchup``), and a skip over the clip's
        end used to lose the last frame (test_mocap_replay, loaded runs). So the first tick past the
        end publishes the last frame once if it was not published yet; None after that."""
        i = self.frame_index(tick)
        if i is None and last_published != self.n_frames - 1:
            return self.n_frames - 1
        return i
