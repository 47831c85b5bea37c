"""Export episode bags to datasets policy trainers load (LeRobot v3.0), ROS-free.

Modules, one concern each:

* :mod:`.cdr`: direct CDR parsing of the message types read (JointState, Image,
  CompressedImage, PoseArray, PoseStamped);
* :mod:`.mapping`: the stream -> feature mapping YAML (``config/export/lerobot_default.yaml``);
* :mod:`.grid`: the fixed frame grid and the sampling rules (interpolate, hold, nearest frame);
* :mod:`.video`: camera messages -> RGB, AV1/h264 encoding, appending to rolling MP4 files;
* :mod:`.stats`: per-episode and dataset statistics in LeRobot's layout;
* :mod:`.dataset`: the parquet and meta files of a v3.0 dataset (new or appended);
* :mod:`.extract`: one bag -> one episode on the grid;
* :mod:`.selection`: which episodes are delivered (verdict, success);
* :mod:`.lerobot`: ``export_episodes`` (the CLI and batch entry point);
* :mod:`.merge`: ``merge_datasets`` (per-bag shards -> one dataset).

DESIGN.md "export" is the contract.
"""
