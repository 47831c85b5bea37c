"""Verify an export with lerobot itself (run with a lerobot venv's python, offline).

    .venv-lerobot/bin/python test/lerobot/verify.py DATASET [--train] [--out DIR]      # lerobot 0.4.4
    .venv-lerobot06/bin/python test/lerobot/verify.py DATASET [--train] [--edit DIR]   # lerobot 0.6.1

1. ``LeRobotDataset(repo_id, root=DATASET)`` loads; every frame of every episode decodes
   (video frames through lerobot's default backend, torchcodec, at from_timestamp +
   timestamp within its 0.1 ms tolerance);
2. ``episodes=[...]`` (the last episode alone) and ``delta_timestamps`` (action chunk of
   the next 5 frames, the previous camera frame) work;
3. with ``--train``: ``lerobot-train --policy.type=act --policy.device=cpu --steps=2``
   runs on the dataset (no pretrained backbone: nothing is downloaded);
4. with ``--edit DIR`` (lerobot >= 0.6: ``lerobot-edit-dataset``): ``delete_episodes`` of the
   middle episode and a ``split`` into train (all but the last episode) and val (the last) are
   written under DIR; each result loads, every frame decodes, and each kept episode's rows
   equal the source episode's (every column but ``index``/``episode_index``, which are
   renumbered), with the same task and length, and the same video frames (re-encoded by
   lerobot where a file mixes kept and dropped episodes: within 1.2/255 on average, and
   closer than the frames one index off; see ``edit_check.py``).

The same checks run on every lerobot version (``lerobot.__version__`` is printed); where the
API differs the script adapts (0.6 keeps the video backend private), and ``--edit`` requires
lerobot >= 0.6 (exit 2 otherwise).

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
    ap.add_argument("--edit", default=None, metavar="DIR",
                    help="also run lerobot-edit-dataset delete_episodes and split into DIR (lerobot >= 0.6)")
    args = ap.parse_args()
    root = Path(args.dataset).resolve()

    import lerobot
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from edit_check import decode_all, lerobot_version

    version = lerobot_version(lerobot)
    print(f"lerobot {'.'.join(map(str, version))}, torch {torch.__version__}")
    if args.edit and version < (0, 6):
        print(f"--edit needs lerobot >= 0.6 (lerobot-edit-dataset); this is {lerobot.__version__}")
        return 2
    ds = decode_all(LeRobotDataset, "robot_capture/export", root)
    fps = ds.fps
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
    if args.edit:
        from edit_check import check_edits

        check_edits(LeRobotDataset, ds, Path(args.edit).resolve())
    print("lerobot verification PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
