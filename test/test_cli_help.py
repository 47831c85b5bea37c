"""Every verb of the CLI answers --help, and the top-level help lists them."""
import subprocess

import pytest

from robot_capture.cli import VERBS, main
from _cmd import module_command


def test_top_level_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_verb_help(verb):
    proc = subprocess.run([*module_command("robot_capture.cli"), verb, "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage: robot-capture " + verb in proc.stdout
    assert len(proc.stdout.splitlines()) > 3, "help should explain the options"
