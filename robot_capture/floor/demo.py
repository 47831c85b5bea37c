"""``robot-capture demo``: the simulated training floor on a real clip, end to end.

1. Builds the sim graph (:func:`robot_capture.floor.graph.build` with ``sim=True``) for
   the robot (default G1) on a shipped CMU clip, and starts it with the process
   supervisor, the same one ``robot-capture up`` uses. Node output goes to
   ``<output_dir>/floor.log``.
2. As the operator, through the recorder's services (:class:`EpisodeClient`), records
   ``episodes`` episodes of ``episode_s`` seconds, each with task, operator and a
   success label.
3. Shuts the graph down (the recorder's episode first), then prints ``robot-capture info`` of every
   bag and the QA verdict of each episode with its reasons (:func:`robot_capture.qa.run.qa_episode`,
   judged against the rates the graph expects; stored in ``<bag>/qa.json``).
   Exit code 1 when an episode fails QA (with ``strict``, also when one warns).
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TextIO

from robot_capture.floor import graph
from robot_capture.floor.launcher import Supervisor

DEFAULT_CLIP = "cmu_02_06_bend_scoop_up_lift_arm.bvh"
TASK = "scoop_lift"
OPERATOR = "demo_operator"


def _say(out: TextIO, msg: str) -> None:
    out.write(f"[demo] {msg}\n")
    out.flush()


def _watch_types(expected: dict) -> dict:
    """Message classes for the topics the operator client watches before recording."""
    from sensor_msgs.msg import CompressedImage, Image, JointState

    types = {}
    for topic in expected:
        if topic in ("/joint_states", "/retarget/joint_command", "/exo/joint_states"):
            types[topic] = JointState
        elif topic.endswith("/image_raw"):
            types[topic] = Image
        elif topic.endswith("/compressed"):
            types[topic] = CompressedImage
    return types


class DemoSetupError(ValueError):
    """The demo cannot start: bad arguments, robot, clip or config (nothing was started)."""


def list_bags(output_dir: Path) -> list[Path]:
    """Episode bag directories (holding a metadata.yaml) under ``output_dir``, by name."""
    return sorted(p.parent for p in Path(output_dir).glob("*/metadata.yaml"))


def run_demo(output_dir: str | Path | None = None, robot: str = "g1", clip: str = DEFAULT_CLIP,
             episodes: int = 3, episode_s: float = 5.0, config: str | None = None,
             out: TextIO | None = None, strict: bool = False, nice: int = 0) -> int:
    """Run the demo; return 0 when every episode was recorded, is readable and does not fail QA
    (with ``strict``: passes QA without a warning), else 1.

    Raises:
        DemoSetupError: ``episodes < 1``, ``episode_s <= 0``, or a bad robot, clip or config
            (checked before anything is started or created; the message is one line per problem).
    """
    if episodes < 1 or episode_s <= 0:
        raise DemoSetupError(f"need episodes >= 1 and episode seconds > 0, got {episodes}, {episode_s}")
    out = out or sys.stdout
    t_start = time.monotonic()
    if output_dir is None:
        output_dir = Path("demo_recordings") / datetime.now().strftime("%Y%m%d-%H%M%S")
    output_dir = Path(output_dir).resolve()
    try:
        specs = graph.build(config, sim=True, overrides={
            "robot": robot, "clip": clip, "output_dir": str(output_dir), "task": TASK, "operator": OPERATOR,
            "nice": str(nice) if nice else ""})
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise DemoSetupError(exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)) from None
    output_dir.mkdir(parents=True, exist_ok=True)
    expected = graph.expected_topics(specs)
    clip_path = next(s.parameters["clip"] for s in specs if s.role == "mocap_replay")
    _say(out, f"robot {robot}, clip {Path(clip_path).name}, {len(specs)} nodes: "
              f"{', '.join(s.name for s in specs)}")
    _say(out, f"episodes -> {output_dir} (node output: floor.log)")

    log_path = output_dir / "floor.log"
    old_term = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM stops the demo like Ctrl-C
        old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return _run(specs, expected, output_dir, log_path, episodes, episode_s, out, strict, t_start)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _raise_interrupt(_signum, _frame):
    raise KeyboardInterrupt


def _run(specs, expected, output_dir: Path, log_path: Path, episodes: int, episode_s: float, out: TextIO,
         strict: bool, t_start: float) -> int:
    recorded: list[str] = []
    failed = False
    from robot_capture.floor.station_guard import StationBusyError, claim_for_specs

    try:  # one station per domain: the demo's simulators must not publish into a running station
        claim = claim_for_specs(specs, "robot-capture demo", log=lambda m: print(f"[demo] {m}", file=out))
    except StationBusyError as exc:
        print(f"[demo] not starting: {exc}", file=out)
        return 2
    with claim, open(log_path, "w", encoding="utf-8") as log:
        sup = Supervisor(specs, out=log)
        client = None
        try:
            sup.start()
            from robot_capture.floor.client import EpisodeClient

            client = EpisodeClient(timeout_s=15.0, discovery_timeout_s=30.0, node_name="demo_operator")
            client.watch(_watch_types(expected))
            client.wait_for_recorder()
            client.wait_for_data(list(client.counts), min_messages=5, timeout_s=40.0)
            client.unwatch()  # the recorder is the one that listens from here on
            if sup.check():
                raise RuntimeError("a node died during start-up")
            client.spin_for(2.0)  # let the recorder match every publisher and start-up load settle
            _say(out, f"floor up in {time.monotonic() - t_start:.1f} s; data flowing on {len(client.counts)} topics")
            for i in range(episodes):
                success = i % 2 == 0  # a failed demonstration too, to show the label
                state = client.wait_ready(timeout_s=20.0)  # the console's READY: every stream fresh
                force = not state["ready"]
                if force:  # a demo records anyway; the episode is flagged "forced" and says why
                    _say(out, f"streams not fresh after 20 s ({'; '.join(state['reasons'])}): recording anyway")
                msg = client.start_episode(force=force, task=TASK, operator=OPERATOR,
                                           notes=f"demo episode {i + 1}/{episodes}")
                _say(out, f"episode {i + 1}/{episodes} started ({msg})")
                t0 = time.monotonic()
                while time.monotonic() - t0 < episode_s:
                    client.spin_for(0.25)
                    if sup.check():
                        raise RuntimeError("a node died while recording")
                msg = client.stop_episode(success=success)
                recorded.append(msg)
                _say(out, f"episode {i + 1}/{episodes} stopped, success={str(success).lower()} ({msg})")
                client.spin_for(0.3)
        except Exception as exc:  # noqa: BLE001 - report, shut down, show the node log
            failed = True
            _say(out, f"ERROR: {exc}")
        except KeyboardInterrupt:
            failed = True
            _say(out, "interrupted")
        finally:
            if client is not None:
                client.close()
            _say(out, "shutting down the floor (the recorder's episode first)")
            codes = sup.shutdown()
    if any(c not in (0,) for c in codes.values()) or failed:
        _say(out, f"node exit codes: {codes}; last lines of {log_path}:")
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]:
            out.write(f"    {line}\n")
        failed = True

    bags = list_bags(output_dir)
    from robot_capture.cli.info import format_text, summarize
    from robot_capture.qa.run import qa_episode

    from robot_capture.episodes import load_episode

    verdicts = []
    for bag in bags:
        # one verdict (issue 18): the QA verdict the recorder stored at stop, which `info` shows too;
        # the QA runs here only for a bag without one (as `robot-capture qa BAG` would)
        try:
            stored = load_episode(bag).verdict
        except (OSError, ValueError):
            stored = None
        out.write(f"\n$ robot-capture info {bag}\n")
        try:
            out.write(format_text(summarize(bag)) + "\n")
        except Exception as exc:  # noqa: BLE001 - an unreadable bag is a demo failure, reported
            failed = True
            out.write(f"unreadable bag: {exc}\n")
        try:
            verdicts.append((bag, stored if stored is not None and not stored.provisional else qa_episode(bag)))
        except Exception as exc:  # noqa: BLE001
            failed = True
            out.write(f"QA could not run on {bag.name}: {exc}\n")
    out.write("\n")
    for bag, v in verdicts:
        ep = v.metrics.get("duration_s", 0.0)
        out.write(f"QA {v.verdict.upper()} {bag.name} ({ep:.1f} s)\n")
        for reason in v.reasons:
            out.write(f"    - {reason}\n")
    if len(bags) < episodes:
        failed = True
        _say(out, f"expected {episodes} episode bags, found {len(bags)}")
    n = {k: sum(v.verdict == k for _b, v in verdicts) for k in ("pass", "warn", "fail")}
    _say(out, f"{len(bags)} episodes in {output_dir}, QA {n['pass']} pass, {n['warn']} warn, {n['fail']} fail "
              f"(verdicts in <bag>/qa.json), total {time.monotonic() - t_start:.1f} s")
    qa_bad = n["fail"] > 0 or (strict and n["warn"] > 0) or not verdicts
    return 1 if failed or qa_bad else 0
