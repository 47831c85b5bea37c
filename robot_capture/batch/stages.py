"""The per-stage steps around the jobs: checks before, a pre-pass, and the final step.

* :func:`check`: refuse a run that cannot work (e.g. two bags with one name for
  ``retarget``, whose outputs are named after the bag).
* :func:`prepare`: what every job of the run needs, computed once; returned as the
  pipeline parameters, so it is part of each job's pipeline id.
* :func:`finish`: after the jobs. Returns extra failures ``[(what, reason)]`` and fills
  ``extra`` (figures for the summary).
"""
from __future__ import annotations

from collections import Counter


def check(stage: str, bags, params: dict) -> None:
    """Raises ValueError when the run cannot produce distinct outputs."""
    if stage == "retarget":
        dup = sorted(n for n, c in Counter(b.name for b in bags).items() if c > 1)
        if dup:
            raise ValueError(f"retarget names each new bag after its input; these names occur more than once: "
                             f"{', '.join(dup[:5])}{' ...' if len(dup) > 5 else ''} (run the folders separately)")


def prepare(stage: str, bags, params: dict) -> dict:
    return dict(params)


def finish(stage: str, done_bags, done_rows, out, params, ledger, extra: dict) -> list:
    if stage == "retarget":
        extra["retargeted bags"] = str(out / "bags")
    return []
