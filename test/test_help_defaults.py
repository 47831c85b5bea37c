"""`--help` of up, record and play shows every option's default, including those that come
from config/floor.yaml (up)."""
import argparse

import pytest

from robot_capture.cli import build_parser


def _verb(name):
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("verb", ["up", "record", "play"])
def test_every_option_shows_its_default(verb):
    missing = [a.option_strings for a in _verb(verb)._actions
               if a.option_strings and not isinstance(a, (argparse._HelpAction, argparse._StoreTrueAction))
               and a.help != argparse.SUPPRESS and "default" not in (a.help or "")]
    assert not missing, missing


def test_up_defaults_come_from_the_shipped_config():
    from robot_capture.floor import graph

    cfg = graph.load_config(None)
    text = _verb("up").format_help().replace("\n", " ")
    text = " ".join(text.split())
    assert f"(default: {cfg['robot']}, from the config)" in text
    assert f"(default: {cfg['output_dir']}, from the config)" in text
    assert f"(default: {cfg['episode']['task']!r}, from the config)" in text
