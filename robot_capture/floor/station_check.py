"""``robot-capture station check``: judge a few seconds of every declared stream (ROS-free).

The sampler (:mod:`robot_capture.floor.station_sample`, rclpy) fills one :class:`Sample` per
declared topic; :func:`judge` turns them into one :class:`Report` against the station contract
(:mod:`robot_capture.floor.contract`):

* **present**: a required stream with no message in the window fails (an optional one is shown);
* **type**: a topic advertised with another type than declared fails (required) or warns;
* **rate** against expected: under ``(1 - tolerance) x rate_hz`` fails (the gate's *slow*, so
  ``up`` would refuse a start), outside 0.95-1.05x warns (the QA's rate warn, qa.yaml ``rate``);
* **stamp offset**: median of (receive time - header stamp) on the station clock; beyond
  ``check.stamp_offset_fail_s`` fails, beyond ``check.stamp_offset_warn_s`` warns: a PC whose
  clock is off (no NTP/PTP) makes every stamp of its streams off by that much;
* **robot joints**: the joint names of each robot JointState stream against the robot mapping's
  joints (the IK's joints; a missing one fails: the QA and export cannot line state and command up);
* **disk**: free space at ``output_dir`` in hours at the declared data rate (declared rates x the
  measured, else typical, message size); under ``disk_fail_hours`` fails, ``disk_warn_hours`` warns.

The station can record a valid episode when nothing fails (:attr:`Report.ok`).
"""
from __future__ import annotations

import os
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from robot_capture.floor.contract import Contract, Stream

__all__ = ["Sample", "Row", "Report", "judge", "free_bytes", "robot_joint_names"]

# the QA's rate warn band (config/qa.yaml rate.warn_below / warn_above)
RATE_WARN_LOW, RATE_WARN_HIGH = 0.95, 1.05


@dataclass
class Sample:
    """What the sampler saw of one topic during ``window_s`` (times in s, sizes in bytes)."""

    topic: str
    types: list[str] = field(default_factory=list)   # types advertised on the graph
    count: int = 0
    bytes_total: int = 0
    offsets_s: list[float] = field(default_factory=list)   # receive time - header stamp, per message
    joint_names: list[str] | None = None              # the last JointState's names


@dataclass
class Row:
    """One stream of the table."""

    stream: Stream
    count: int
    rate_hz: float | None
    offset_s: float | None
    type_seen: str
    status: str            # ok | warn | fail | absent (an optional stream that is not there)
    problems: list[str] = field(default_factory=list)


@dataclass
class Report:
    rows: list[Row]
    lines: list[str]                    # robot joints, disk
    failures: list[str]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        """No failure: the station can record a valid episode."""
        return not self.failures

    def text(self) -> str:
        """The table, the joint and disk lines, then ``station check: PASS|WARN|FAIL`` and the reasons."""
        head = ("stream", "topic", "type", "rate Hz (got/expected)", "stamp offset", "status")
        body = []
        for r in self.rows:
            exp = f"{r.stream.rate_hz:g}" if r.stream.rate_hz else "-"
            got = f"{r.rate_hz:.1f}" if r.rate_hz is not None else "-"
            off = f"{r.offset_s * 1e3:+.0f} ms" if r.offset_s is not None else "-"
            name = r.stream.name + ("" if r.stream.required else " (optional)")
            body.append((name, r.stream.topic, (r.stream.type or r.type_seen).split("/")[-1], f"{got} / {exp}",
                         off, r.status))
        widths = [max(len(str(x[i])) for x in [head] + body) for i in range(len(head))]
        out = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head] + body]
        out += self.lines
        verdict = "FAIL" if self.failures else "WARN" if self.warnings else "PASS"
        out.append(f"station check: {verdict}")
        out += [f"  - {m}" for m in self.failures + self.warnings]
        return "\n".join(out)


def free_bytes(path: str | os.PathLike) -> int:
    """Free bytes on the file system of ``path`` (its nearest existing parent)."""
    p = Path(os.path.abspath(os.path.expanduser(str(path))))
    while not p.exists() and p != p.parent:
        p = p.parent
    return int(shutil.disk_usage(p).free)


def robot_joint_names(robot: str) -> list[str]:
    """The joints the robot mapping's IK solves for (what ``/joint_states`` must carry).

    Raises:
        KeyError, FileNotFoundError, ValueError: as :func:`robot_capture.sim.robots.load_robot`.
    """
    from robot_capture.sim.robots import load_robot

    model, _locked = load_robot(robot, "")
    return list(model.joint_names)


def _judge_stream(s: Stream, smp: Sample | None, window_s: float, limits) -> Row:
    smp = smp or Sample(s.topic)
    problems: list[tuple[str, str]] = []   # (severity, text)
    hard = "fail" if s.required else "warn"
    seen = ",".join(t for t in smp.types if t) or ""
    if s.type and smp.types and s.type not in smp.types:
        problems.append((hard, f"{s.label()}: published as {seen}, declared {s.type}"))
    rate = smp.count / window_s if window_s > 0 and smp.count else None
    if not smp.count:
        if s.required and not any(sev == "fail" for sev, _ in problems):
            problems.append(("fail", f"{s.label()}: no message in {window_s:.1f} s"))
    elif s.rate_hz and rate is not None:
        ratio = rate / s.rate_hz
        if s.min_rate_hz and rate < s.min_rate_hz:
            problems.append((hard, f"{s.label()}: {rate:.1f} Hz, expected {s.rate_hz:g} Hz "
                                   f"(under {s.min_rate_hz:.3g} Hz a start is refused)"))
        elif not RATE_WARN_LOW <= ratio <= RATE_WARN_HIGH:
            problems.append(("warn", f"{s.label()}: {rate:.1f} Hz, expected {s.rate_hz:g} Hz ({ratio:.2f}x)"))
    offset = statistics.median(smp.offsets_s) if smp.offsets_s else None
    if offset is not None:
        if abs(offset) > limits.stamp_offset_fail_s:
            problems.append((hard, f"{s.label()}: header stamps {offset * 1e3:+.0f} ms off the station clock "
                                   f"(limit {limits.stamp_offset_fail_s * 1e3:.0f} ms): is that PC's clock synced?"))
        elif abs(offset) > limits.stamp_offset_warn_s:
            problems.append(("warn", f"{s.label()}: header stamps {offset * 1e3:+.0f} ms off the station clock"))
    sev = "fail" if any(p[0] == "fail" for p in problems) else "warn" if problems else "ok"
    if not smp.count and not s.required and sev == "ok":
        sev = "absent"
    return Row(stream=s, count=smp.count, rate_hz=rate, offset_s=offset, type_seen=seen, status=sev,
               problems=[f"{p[0]}: {p[1]}" for p in problems])


def judge(contract: Contract, samples: dict[str, Sample], window_s: float, robot_joints: list[str] | None = None,
          free: int | None = None) -> Report:
    """One report of the station against its contract.

    Args:
        samples: topic -> :class:`Sample` (a declared topic without one had no message).
        window_s: how long the sampler counted (s).
        robot_joints: the robot mapping's joint names (None: not checked).
        free: free bytes at ``contract.output_dir`` (None: measured here).
    """
    rows = [_judge_stream(s, samples.get(s.topic), window_s, contract.check) for s in contract.streams]
    failures = [p[len("fail: "):] for r in rows for p in r.problems if p.startswith("fail: ")]
    warnings = [p[len("warn: "):] for r in rows for p in r.problems if p.startswith("warn: ")]
    lines = []
    if robot_joints is not None:
        for s in contract.streams:
            smp = samples.get(s.topic)
            if s.role != "robot" or not s.type.endswith("/JointState") or smp is None or smp.joint_names is None:
                continue
            missing = [j for j in robot_joints if j not in smp.joint_names]
            lines.append(f"robot joints: {len(robot_joints) - len(missing)}/{len(robot_joints)} of the "
                         f"{contract.robot} mapping in {s.topic} ({len(smp.joint_names)} names)")
            if missing:
                failures.append(f"{s.label()}: joints of the {contract.robot} mapping missing: "
                                f"{', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''} "
                                f"({len(missing)} of {len(robot_joints)}): wrong robot or driver?")
    sizes = {t: smp.bytes_total / smp.count for t, smp in samples.items() if smp.count}
    rate_b = contract.data_rate_bytes_s(sizes)
    free = free_bytes(contract.output_dir) if free is None else int(free)
    hours = free / rate_b / 3600.0 if rate_b > 0 else float("inf")
    lines.append(f"disk: {free / 1e9:.1f} GB free at {contract.output_dir}: {hours:.1f} h at the declared "
                 f"{rate_b / 1e6:.2f} MB/s")
    if hours < contract.check.disk_fail_hours:
        failures.append(f"disk: {hours * 60:.0f} min of recording left at {contract.output_dir} "
                        f"(limit {contract.check.disk_fail_hours * 60:.0f} min)")
    elif hours < contract.check.disk_warn_hours:
        warnings.append(f"disk: {hours:.1f} h of recording left at {contract.output_dir}")
    return Report(rows=rows, lines=lines, failures=failures, warnings=warnings)
