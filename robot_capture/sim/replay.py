"""A BVH clip as an operator stand-in: per-frame exoskeleton readings and VR poses.

``ClipReplay`` loads a clip (``robot_capture.retarget.bvh.load_bvh``) and precomputes, for
every frame, exactly what the offline path uses (``robot_capture.retarget.offline``
``exo_replay_messages`` / ``vr_replay_messages``), so a live recording of the clip and
its offline retarget agree:

* exoskeleton readings: ``exo_names`` (14) and ``exo_positions`` ``(N, 14)`` rad, as
  ``ExoArmModel.angles_from_pose`` gives them;
* VR poses: ``vr[name]`` ``(N, 4, 4)`` for ``head``, ``left_wrist``, ``right_wrist`` in the
  ``vr_world`` frame (z up, m).

Frame ``i`` plays at ``i * frame_time / speed`` s after the start; with ``loop`` the
clip restarts after its last frame.
"""
from __future__ import annotations

import numpy as np

from robot_capture.floor.graph import resolve_clip  # clip name or path -> path (one implementation)

VR_NAMES = ("head", "left_wrist", "right_wrist")


class ClipReplay:
    """Precomputed per-frame replay of one BVH clip.

    Args:
        clip: clip name in ``shared/data/motion`` (with or without ``.bvh``) or a path.
        exo: compute exoskeleton readings; ``exo_config``: exo arm model YAML ('' = shipped).
        vr: compute VR head/wrist poses.
        speed: playback speed factor (> 0).
        loop: restart after the last frame.

    Raises:
        FileNotFoundError: clip not found. ValueError: malformed BVH (``file:line: ...``),
        ``speed <= 0``.
    """

    def __init__(self, clip: str, exo: bool = True, vr: bool = True, exo_config: str = "",
                 speed: float = 1.0, loop: bool = True) -> None:
        from robot_capture.retarget import offline
        from robot_capture.retarget.bvh import load_bvh
        from robot_capture.retarget.exo import ExoArmModel

        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.path = resolve_clip(clip)
        self.clip = load_bvh(self.path)
        self.n_frames = int(self.clip.n_frames)
        self.frame_time = float(self.clip.frame_time)
        self.speed = float(speed)
        self.loop = bool(loop)
        self.exo_names: list[str] = []
        self.exo_positions = np.zeros((self.n_frames, 0))
        self.vr: dict[str, np.ndarray] = {}
        if exo:
            model = ExoArmModel.load(exo_config or None)
            names, positions = offline.exo_replay_messages(self.clip, model)
            self.exo_names = list(names)
            self.exo_positions = np.asarray(positions, dtype=float).reshape(self.n_frames, len(self.exo_names))
        if vr:
            poses = offline.vr_replay_messages(self.clip)
            self.vr = {k: np.asarray(poses[k], dtype=float).reshape(self.n_frames, 4, 4) for k in VR_NAMES}

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
