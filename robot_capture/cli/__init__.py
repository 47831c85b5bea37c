"""``robot-capture <verb>``: one CLI for recording, inspection, retargeting and bring-up.

Each verb lives in its own module ``robot_capture.cli.<verb>`` exposing
``add_parser(subparsers)`` (registers the verb with its ``--help``) and
``run(args) -> int`` (exit code). Modules are imported lazily so that
``robot-capture info`` never pays for rclpy and ``--help`` is instant.

What every verb gets from this dispatcher (so no verb can get it wrong on its own):

* **One default per option** in ``--help``: each parser's formatter appends
  ``(default: X)`` only when the option's help does not already say its default and the
  default is a value (not None, "", False or an empty list). A verb's own
  ``ArgumentDefaultsHelpFormatter`` used to double it: ``(default: 10) (default: 10.0)``.
* **Mistakes answered by the parser that owns them**: an unknown option gets the usage of
  the verb or sub-verb it was typed for, with "did you mean" (:mod:`difflib` over that
  parser's options); an unknown verb, action or stage gets "did you mean" over the choices.
* **No traceback for an OS error** a verb did not handle (a folder that cannot be made, a
  full disk): one line in words, exit 1.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import re
import sys

# verb -> one-line summary (shown by `robot-capture --help`)
VERBS = {
    "demo": "bring up the simulated floor on a real clip, record 3 episodes, print QA",
    "up": "bring up the floor graph from a config without `launch` installed",
    "record": "record ROS 2 topics into episode bags (fronts the recorder node)",
    "play": "publish a bag's stored CDR bytes back onto ROS 2 topics",
    "info": "summarize a bag (topics, rates, gaps, labels, verdict), or a table of the episodes in folders",
    "qa": "judge episodes (pass/warn/fail with reasons) and store the verdict in each bag",
    "report": "one self-contained HTML report of a folder of episodes (the day, and each episode)",
    "recover": "rebuild readable MCAP files and metadata.yaml after a crash",
    "retarget": "retarget a BVH clip or a bag's human topics onto a robot offline",
    "robot": "check a robot mapping: chains, joints, limits, task frames, a PNG at q=0 and the calibration pose",
    "batch": "run qa, export or retarget over every bag of some folders (process pool or Ray cluster)",
    "export": "export episode bags to a LeRobot v3.0 dataset (parquet + AV1 video)",
    "episode": "start/stop/label/discard episodes through the recorder's services",
    "console": "operator console: single keys (--keys) or a web page for the floor tablet (--web)",
    "station": "the pre-shift check: every declared stream (rate, clock offset), robot joints, disk",
    "view": "serve the station's topics live to Foxglove: joints, /tf, robot model, cameras, episode state",
    "config": "copy the shipped configs to a folder for editing (config init DIR)",
    "xr": "serve the headset page over HTTPS: a real VR headset drives the robot (WebXR)",
}


class _OneDefault(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the help already names its default
    or there is no default worth showing (mixed in before each parser's own formatter)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or action.nargs == 0 or action.default is argparse.SUPPRESS:
            return text
        if action.default is None or action.default is False or action.default in ("", [], ()):
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


_FORMATTERS: dict = {}


def _one_default(cls):
    """``cls`` with :class:`_OneDefault`'s rule first (keeps its description layout)."""
    if issubclass(cls, _OneDefault):
        return cls
    if cls not in _FORMATTERS:
        _FORMATTERS[cls] = type(f"OneDefault{cls.__name__}", (_OneDefault, cls), {})
    return _FORMATTERS[cls]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose mistakes are reported by the parser they were typed for (verb
    and sub-verb parsers are of this class too: argparse makes sub-parsers of the parent's class)."""

    _seen: list = []

    def parse_known_args(self, args=None, namespace=None):
        self._seen = list(sys.argv[1:] if args is None else args)
        ns, extras = super().parse_known_args(args, namespace)
        if extras:  # the innermost parser sees them first: its usage, its options
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras

    def _choices(self) -> list[str]:
        out = []
        for a in self._actions:
            if isinstance(a, argparse._SubParsersAction):
                out += list(a.choices)
        return out

    def _unknown_options(self) -> list[str]:
        """The option-like words of this parser's arguments it does not know (up to its sub-verb)."""
        stop = set(self._choices())
        longs = [o for o in self._option_string_actions if o.startswith("--")]
        out = []
        for word in self._seen:
            if word in stop or word == "--":
                break
            if not word.startswith("-") or word == "-" or _is_number(word):
                continue
            name = word.split("=", 1)[0]
            if name in self._option_string_actions:
                continue
            if self.allow_abbrev and name.startswith("--") and sum(o.startswith(name) for o in longs) == 1:
                continue
            out.append(name)
        return out

    def _hint(self, message: str) -> str:
        m = re.search(r"invalid choice: '([^']*)'", message)
        if m:
            close = difflib.get_close_matches(m.group(1), self._choices(), n=1)
            return f"did you mean {close[0]}?" if close else ""
        options = [o for o in self._option_string_actions if o.startswith("--")]
        pairs = [(u, difflib.get_close_matches(u, options, n=1)) for u in self._unknown_options()]
        pairs = [(u, c[0]) for u, c in pairs if c]
        if len(pairs) == 1:
            return f"did you mean {pairs[0][1]}?"
        if pairs:
            return "did you mean " + ", ".join(f"{c} (for {u})" for u, c in pairs) + "?"
        return ""

    def error(self, message: str):
        hint = self._hint(message)
        super().error(f"{message}; {hint}" if hint else message)


def _harmonize(parser: argparse.ArgumentParser) -> None:
    """Every parser of the tree gets the one-default formatter rule."""
    parser.formatter_class = _one_default(parser.formatter_class)
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for child in {id(c): c for c in a.choices.values()}.values():
                _harmonize(child)


def build_parser(load_verbs=None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="robot-capture",
        description="ROS 2 recording stack for humanoid teleoperation data.",
        epilog="Run `robot-capture <verb> --help` for a verb's options.",
    )
    from robot_capture import __version__

    parser.add_argument("--version", action="version", version=f"robot-capture {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="<verb>")
    for verb, summary in VERBS.items():
        if load_verbs is not None and verb not in load_verbs:
            sub.add_parser(verb, help=summary)
            continue
        try:
            mod = importlib.import_module(f"robot_capture.cli.{verb}")
        except ModuleNotFoundError as exc:
            if exc.name != f"robot_capture.cli.{verb}":
                raise
            continue  # verb not built in this checkout
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    _harmonize(parser)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(load_verbs=None if verb is None or verb not in VERBS else {verb})
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2 if args.verb is None else 1
    from robot_capture.ros_env import ensure_ament_prefix

    ensure_ament_prefix()
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `robot-capture ... | head`: the reader left
        return 1
    except OSError as exc:  # a folder that cannot be made, a full disk: in words, no traceback
        from robot_capture.cli.outputs import os_error_text

        where = f"{exc.filename}: " if exc.filename else ""
        print(f"robot-capture {args.verb}: {where}{os_error_text(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
