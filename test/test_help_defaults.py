"""`--help` of every verb and sub-verb shows each option's default exactly once (those of up
come from config/floor.yaml), and every verb and sub-verb has a description.

The rule lives in the dispatcher (robot_capture/cli/__init__.py), so no verb can double a
default again: a verb's ArgumentDefaultsHelpFormatter used to append `(default: None)` after
its own `(default: unchanged)`."""
import argparse
import re

import pytest

from robot_capture.cli import build_parser


def _tree(parser=None, path=()):
    """(path, parser) of the top-level parser, every verb and every sub-verb."""
    parser = parser or build_parser()
    yield path, parser
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, child in a.choices.items():
                yield from _tree(child, (*path, name))


PARSERS = dict((" ".join(path), p) for path, p in _tree() if path)


def _verb(name):
    return PARSERS[name]


def _options(parser):
    return [a for a in parser._actions
            if a.option_strings and a.help != argparse.SUPPRESS and a.nargs != 0
            and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


def test_the_tree_holds_every_verb_and_sub_verb():
    assert {"episode purge", "episode start", "batch qa", "batch export", "up", "export"} <= set(PARSERS)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_option_shows_its_default_once(name):
    parser = PARSERS[name]
    fmt = parser._get_formatter()
    doubled, missing = [], []
    for a in _options(parser):
        own = (a.help or "").replace("%(default)s", "").lower().count("default")  # what the verb wrote
        shown = fmt._expand_help(a).lower().count("default")
        if own and shown != own:
            doubled.append((a.option_strings, fmt._expand_help(a)))
        if not shown and not a.required:
            missing.append(a.option_strings)
    assert not doubled, doubled
    assert not missing, missing
    text = " ".join(parser.format_help().split())
    assert not re.search(r"\(default[^)]*\) \(default[^)]*\)", text), text


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_verb_and_sub_verb_has_a_description(name):
    assert (PARSERS[name].description or "").strip(), f"`robot-capture {name} --help` has no description"


def test_episode_help_reads_as_written():
    text = " ".join(_verb("episode start").format_help().split())
    assert "seconds to wait for the recorder (default: 10)" in text and "(default: 10.0)" not in text
    assert "task label (default: unchanged)" in text and "(default: None)" not in text
    assert "Delete the episode bags" in _verb("episode purge").format_help()


def test_up_defaults_come_from_the_shipped_config():
    from robot_capture.floor import graph

    cfg = graph.load_config(None)
    text = _verb("up").format_help().replace("\n", " ")
    text = " ".join(text.split())
    assert f"(default: {cfg['robot']}, from the config)" in text
    assert f"(default: {cfg['output_dir']}, from the config)" in text
    assert f"(default: {cfg['episode']['task']!r}, from the config)" in text
