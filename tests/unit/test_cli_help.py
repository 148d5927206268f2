"""``python -m interp_course --help`` and every command's ``--help`` say what it does in one line."""

from __future__ import annotations

import contextlib
import functools
import io
import re

import pytest

from interp_course import cli


@functools.cache
def help_text(*command: str) -> str:
    """What ``python -m interp_course [command] --help`` prints on an 80-column terminal."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit:
        patch.setenv("COLUMNS", "80")
        cli.main([*command, "--help"])
    assert exit.value.code == 0
    return out.getvalue()


def description(text: str) -> list[str]:
    """The lines of the paragraph after argparse's usage paragraph."""
    return text.split("\n\n")[1].splitlines()


@functools.cache
def listed_commands() -> dict[str, str]:
    """{command: its line} from the top-level help's COMMAND list."""
    block = help_text().split("  COMMAND\n")[1].split("\n\n")[0]
    entries = [re.fullmatch(r" {4}(\S+) +(\S.*)", line) for line in block.splitlines()]
    assert all(entries), f"an entry of the command list spans several lines:\n{block}"
    return {m[1]: m[2] for m in entries}


def test_the_top_level_help_says_what_the_tool_does_and_lists_every_command_in_one_line():
    assert description(help_text()) == ["Release, collect, grade and export an nbgrader course graded in a sandbox."]
    assert list(listed_commands()) == ["setup", "release", "collect", "grade", "refresh", "canvas", "formgrader", "demo", "corpus"]


@pytest.mark.parametrize("command", ["setup", "release", "collect", "grade", "refresh", "canvas", "formgrader", "demo", "corpus"])
def test_each_command_help_says_what_it_does_in_one_line(command):
    lines = description(help_text(command))
    assert len(lines) == 1 and lines[0].endswith("."), lines
    assert lines == [listed_commands()[command]]
