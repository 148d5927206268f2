"""A started nbgrader command does nothing until it is told to go (interp_course.grading.nbgrader_process)."""

from __future__ import annotations

import nbgrader

from interp_course.course import Course
from interp_course.grading.nbgrader_process import start_nbgrader


def test_a_started_command_runs_only_when_told_to_go(tmp_path, capsys):
    course = Course(tmp_path)
    told = start_nbgrader(course, "--version", as_grader=False)
    cancelled = start_nbgrader(course, "--version", as_grader=False)
    cancelled.cancel()
    assert cancelled.proc.returncode == 0 and capsys.readouterr().out == ""  # ran nothing, said nothing
    result = told.go()
    assert result.returncode == 0 and nbgrader.__version__ in result.stdout
    assert capsys.readouterr().out.startswith("$ nbgrader --version\n")
    told.cancel()  # once told, there is nothing left to cancel


def test_arguments_known_only_later_are_given_with_go(tmp_path, capsys):
    started = start_nbgrader(Course(tmp_path), as_grader=False)  # no arguments yet: nbgrader's own defaults
    result = started.go(more=("--version",))
    assert result.returncode == 0 and nbgrader.__version__ in result.stdout
    assert capsys.readouterr().out.startswith("$ nbgrader --version\n")
