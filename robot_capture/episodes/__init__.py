"""The episode model shared by the console, QA, export and batch tools.

An *episode* is one recorded bag directory (``record/episode.py`` names it). This
package is the one owner of what is said *about* an episode after it was recorded:

* :mod:`robot_capture.episodes.store`: finding episodes, reading their labels, and the
  only code that changes labels (relabel), moves (discard) or deletes (purge) them.
  Labels live in ``metadata.yaml`` ``custom_data`` (``episode.<key>``).
* :mod:`robot_capture.episodes.verdict`: the QA verdict data model and its sidecar file
  ``<bag>/qa.json``.

DESIGN.md, "episodes", is the contract. ROS-free.
"""
from robot_capture.episodes.store import (  # noqa: F401
    DISCARDED_DIR,
    LABEL_KEYS,
    EpisodeRecord,
    EpisodeBusyError,
    discard,
    find_bags,
    load_episode,
    purge_discarded,
    relabel,
)
from robot_capture.episodes.verdict import (  # noqa: F401
    VERDICT_FILENAME,
    Finding,
    Verdict,
    read_verdict,
    write_verdict,
)
