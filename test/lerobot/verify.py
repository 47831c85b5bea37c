"""Verify an export with lerobot itself (run with .venv-lerobot's python, offline).

    .venv-lerobot/bin/python test/lerobot/verify.py DATASET [--train] [--out DIR]

1. ``LeRobotDataset(repo_id, root=DATASET)`` loads; every frame of every episode decodes
   (video frames through lerobot's default backend, torchcodec, at from_timestamp +
   timestamp within its 0.1 ms tolerance);
2. ``episodes=[...]`` (the last episode alone) and ``delta_timestamps`` (action chunk of
   the next 5 frames, the previous camera frame) work;
3. with ``--train``: ``lerobot-train --policy.type=act --policy.device=cpu --steps=2``
   runs on the dataset (no pretrained backbone: nothing is downloaded).

Exit code 0 when all passed. Not part of the normal suite (needs torch): ``make test-lerobot``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--train", action="store_true", help="also run lerobot-train (ACT, CPU, 2 steps)")
    ap.add_argument("--out", default=None, help="lerobot-train output dir (default: DATASET/../lerobot_train)")
    args = ap.parse_args()
    root = Path(args.dataset).resolve()

    import lerobot
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    print(f"lerobot {lerobot.__version__ if hasattr(lerobot, '__version__') else '?'}, torch {torch.__version__}")
    t = time.perf_counter()
    ds = LeRobotDataset("robot_capture/export", root=root)
    fps = ds.fps
    print(f"LeRobotDataset: {ds.num_episodes} episodes, {ds.num_frames} frames, fps {fps}, "
          f"video keys {ds.meta.video_keys}, backend {ds.video_backend} ({time.perf_counter() - t:.1f} s)")
    t = time.perf_counter()
    for i in range(len(ds)):
        item = ds[i]
        for key in ds.meta.video_keys:
            assert item[key].ndim == 3 and item[key].shape[0] == 3, (key, item[key].shape)
    print(f"decoded every frame: {len(ds)} frames x {len(ds.meta.video_keys)} cameras "
          f"({time.perf_counter() - t:.1f} s); last item task {item['task']!r}")
    last = ds.num_episodes - 1
    delta = {"action": [k / fps for k in range(5)], "observation.state": [-1 / fps, 0.0]}
    for key in ds.meta.video_keys:
        delta[key] = [-1 / fps, 0.0]
    sub = LeRobotDataset("robot_capture/export", root=root, episodes=[last], delta_timestamps=delta)
    first, final = sub[0], sub[len(sub) - 1]
    assert int(first["episode_index"]) == last and len(sub) == int(ds.meta.episodes[last]["length"])
    assert first["action"].shape[0] == 5 and bool(first["observation.state_is_pad"][0])
    assert bool(final["action_is_pad"][-1])
    shapes = {k: tuple(first[k].shape) for k in delta}
    print(f"episodes=[{last}] + delta_timestamps: {len(sub)} frames, shapes {shapes}, padding at the "
          f"episode ends ok")
    if args.train:
        out = Path(args.out) if args.out else root.parent / "lerobot_train"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        exe = Path(sys.executable).parent / "lerobot-train"
        cmd = [str(exe), "--dataset.repo_id=robot_capture/export", f"--dataset.root={root}", "--policy.type=act",
               "--policy.device=cpu", "--policy.push_to_hub=false", "--policy.pretrained_backbone_weights=null",
               "--steps=2", "--batch_size=2", "--num_workers=0", "--save_checkpoint=false", "--wandb.enable=false",
               f"--output_dir={out}"]
        print("$ " + " ".join(cmd[1:]).join(["lerobot-train ", ""]), flush=True)
        t = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in (res.stdout + res.stderr).splitlines() if "ot_train.py" in ln or "Error" in ln]
        print("\n".join(lines[-12:]))
        if res.returncode != 0:
            print((res.stdout + res.stderr)[-4000:])
            print(f"lerobot-train FAILED (exit {res.returncode})")
            return 1
        print(f"lerobot-train: 2 steps ok ({time.perf_counter() - t:.0f} s)")
    print("lerobot verification PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
