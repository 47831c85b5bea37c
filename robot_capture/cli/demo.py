"""``robot-capture demo``: the simulated training floor on a real clip, 3 labelled episodes, QA."""
from __future__ import annotations

import argparse

DESCRIPTION = """\
Bring up the simulated training floor (the graph of `robot-capture up --sim`): a real
CMU mocap clip replayed as exoskeleton and VR input, the retarget node driving a
simulated humanoid (default Unitree G1), a synthetic head camera rendered from the
robot's joint states, and the recorder. Then, like an operator, record episodes
through the recorder's services, each with task, operator and success label; shut
down (the recorder's episode first); and print `robot-capture info` for each bag plus the QA verdict of
each episode (pass, warn or fail, with reasons; stored in <bag>/qa.json). Exits 1 when
an episode fails QA.
Node output is written to <output-dir>/floor.log. Takes about 25-60 s on a 2-core machine
(the README's figure; the longer end when other work loads the machine).
"""


def _at_least_one(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _positive(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return x


def add_parser(sub):
    from robot_capture.floor.demo import DEFAULT_CLIP

    p = sub.add_parser("demo", help="bring up the simulated floor on a real clip, record 3 episodes, print QA",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-dir", default=None,
                   help="where the episode bags go (default: ./demo_recordings/<date-time>)")
    p.add_argument("--robot", default="g1", help="robot mapping in config/robots (default g1)")
    p.add_argument("--clip", default=DEFAULT_CLIP, help=f"BVH clip in shared/data/motion or a path (default {DEFAULT_CLIP})")
    p.add_argument("--episodes", type=_at_least_one, default=3, help="number of episodes (default 3)")
    p.add_argument("--episode-seconds", type=_positive, default=5.0, help="length of each episode in s (default 5)")
    p.add_argument("--config", default=None, help="station config YAML (default: the shipped config/floor.yaml)")
    p.add_argument("--nice", type=int, default=0,
                   help="niceness of the floor's nodes, e.g. -5 to keep other work on the machine from "
                        "starving them (needs CAP_SYS_NICE; default 0)")
    p.add_argument("--strict", action="store_true", help="exit 1 also when an episode only warns in QA")
    return p


def run(args) -> int:
    import sys

    from robot_capture.floor.demo import DemoSetupError, run_demo

    try:
        return _run(args, run_demo)
    except DemoSetupError as exc:  # bad robot, clip or config: one line, nothing started
        print(f"robot-capture demo: {exc}", file=sys.stderr)
        return 2


def _run(args, run_demo) -> int:
    from robot_capture.cli.flags import robot_flag_problem

    problem = robot_flag_problem(args.robot)  # named as the flag, not as floor.yaml's robot
    if problem:
        import sys

        print(f"robot-capture demo: {problem}", file=sys.stderr)
        return 2
    if args.output_dir:  # in words before the floor starts (a traceback with `[Errno 2] ... '/proc/nope'`)
        from robot_capture.cli.outputs import OutputPathError, check_output_dir

        try:
            check_output_dir(args.output_dir, "--output-dir")  # made by the demo once every check passed
        except OutputPathError as exc:
            import sys

            print(f"robot-capture demo: {exc}", file=sys.stderr)
            return 2
    return run_demo(output_dir=args.output_dir, robot=args.robot, clip=args.clip, episodes=args.episodes,
                    episode_s=args.episode_seconds, config=args.config, strict=args.strict,
                    nice=args.nice)
