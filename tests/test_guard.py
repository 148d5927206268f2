"""Grading fails closed: plain `nbgrader autograde` and `python -m interp_course grade` refuse with
exit status 2 and one line whenever the safe pipeline is not the one that would run.

Each case breaks a copy of a released scratch course in one way. Nothing gets graded, so each run
costs only nbgrader's start-up.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from interp_course.exit_status import Refusal

from conftest import PUZZLE1, make_course, release, run_nbgrader
from interp_course.security import grader_user, guard, manifest
from interp_course.cli import nbgrader_env
from interp_course.course import Course


@pytest.fixture(scope="module")
def pristine(courses_dir):
    return release(make_course(courses_dir / "guard-pristine"))


@pytest.fixture
def course(pristine, courses_dir, request):
    dest = courses_dir / re.sub(r"\W+", "-", request.node.name)
    shutil.copytree(pristine, dest, symlinks=True)
    grader_user.prepare_state(Course(dest))
    return dest


def _append_config(course, text: str, rerelease: bool = True) -> None:
    with open(course / "nbgrader_config.py", "a") as f:
        f.write("\n" + text + "\n")
    if rerelease:  # as if `make release` had recorded the change: only the check under test fails
        manifest.write(Course(course))


def _break(course, how: str) -> tuple[list[str], dict]:
    """Break the course one way; return extra nbgrader arguments and environment."""
    root = Course(course)
    if how == "config-raises":
        _append_config(course, "raise RuntimeError('half-edited config')")
    elif how == "config-syntax":
        _append_config(course, "c.Execute.timeout = (")
    elif how == "stock-execute":
        _append_config(course, "from nbgrader.preprocessors import Execute\n"
                               "c.Autograde.autograde_preprocessors = [Execute] + c.Autograde.autograde_preprocessors[1:]")
    elif how == "sandbox-off":
        _append_config(course, "c.GradeInSandbox.require_sandbox = False")
    elif how == "command-line":
        return ["--Autograde.autograde_preprocessors=nbgrader.preprocessors.Execute"], {}
    elif how == "no-bwrap":
        return [], {"PATH": os.path.dirname(sys.executable)}
    elif how == "tampered-checks":
        checks = root.grader_tests(PUZZLE1) / "checks.py"
        checks.write_text(checks.read_text() + "\nCHECKS.clear()\n")
    elif how == "chmod-source":
        (root.source(PUZZLE1) / "puzzle1.ipynb").chmod(0o444)
    elif how == "submitted-link":
        (course / "submitted" / "evil" / PUZZLE1).mkdir(parents=True)
        (course / "submitted" / "evil" / PUZZLE1 / "puzzle1.ipynb").symlink_to(root.source(PUZZLE1) / "puzzle1.ipynb")
    elif how == "extra-config":
        (course / "nbgrader_config.json").write_text(json.dumps({"Autograde": {"autograde_preprocessors": []}}))
    elif how == "grader-owns-solutions":
        user = grader_user.account()
        os.chown(root.solutions(PUZZLE1) / "__init__.py", user.pw_uid, user.pw_gid)
    return [], {}


REFUSALS = {
    "config-raises": "does not load",
    "config-syntax": "does not load",
    "stock-execute": "only through GradeInSandbox",
    "sandbox-off": "not the sandboxed kernel manager",
    "command-line": "only through GradeInSandbox",
    "no-bwrap": "bubblewrap",
    "tampered-checks": "differ from the release manifest",
    "chmod-source": "differ from the release manifest",
    "submitted-link": "is a link",
    "extra-config": "would be merged",
    "grader-owns-solutions": "writable by the grading account",
}


def test_the_guard_is_installed_in_this_environment():
    assert guard.ENV_GUARD_PATH.read_text() == guard.ENV_GUARD, "run `make setup`"


def test_an_intact_course_is_not_refused(course):
    result = run_nbgrader(course, "autograde", PUZZLE1, "--create")  # nothing submitted: nothing to do
    assert result.returncode != 2 and "refusing" not in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("how", REFUSALS)
def test_plain_nbgrader_autograde_refuses(course, how):
    if how == "grader-owns-solutions" and not grader_user.is_root():
        pytest.skip("needs root to hand a file to the grading account")
    args, env = _break(course, how)
    result = run_nbgrader(course, "autograde", PUZZLE1, "--create", *args, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    refusal = [line for line in result.stderr.splitlines() if "refusing" in line]
    assert len(refusal) == 1 and REFUSALS[how] in refusal[0], result.stderr[-2000:]
    assert not any((course / "autograded").iterdir())


def test_plain_nbgrader_as_root_refuses(course):
    if not grader_user.is_root():
        pytest.skip("only root can run nbgrader as root")
    result = run_nbgrader(course, "autograde", PUZZLE1, "--create", as_grader=False)
    assert result.returncode == 2 and "running as root" in result.stderr, result.stderr[-2000:]


def test_a_guard_that_cannot_even_import_refuses(course, courses_dir):
    broken = courses_dir / "broken-package" / "interp_course"
    (broken / "security").mkdir(parents=True, exist_ok=True)
    for package in (broken, broken / "security"):
        (package / "__init__.py").write_text("")
    (broken / "security" / "guard.py").write_text("raise ImportError('half-installed package')\n")
    for folder in (broken.parent, broken, broken / "security"):
        os.chmod(folder, 0o755)
    result = run_nbgrader(course, "autograde", PUZZLE1, "--create", env={"PYTHONPATH": str(broken.parent)})
    assert result.returncode == 2 and "the guard failed" in result.stderr, result.stderr[-2000:]
    # Commands that grade nothing are not held hostage by it.
    result = run_nbgrader(course, "db", "student", "list", env={"PYTHONPATH": str(broken.parent)})
    assert "refusing" not in result.stderr


def test_feedback_refuses_too(course):
    _break(course, "tampered-checks")
    result = run_nbgrader(course, "generate_feedback", PUZZLE1)
    assert result.returncode == 2 and "release manifest" in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("how", ["config-raises", "tampered-checks"])
def test_the_grade_command_refuses_with_one_line(course, how):
    _break(course, how)
    result = subprocess.run([sys.executable, "-m", "interp_course", "--root", str(course), "grade"],
                            env=nbgrader_env(), capture_output=True, text=True)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().count("\n") == 0 and REFUSALS[how] in result.stderr
    assert "$ nbgrader autograde" not in result.stdout


def test_the_grade_command_follows_no_link_in_submitted_and_names_that_student(course):
    """Plain nbgrader would follow it, so the guard refuses there (above); the grade command stages
    regular files only, so the one student with a link is not graded and the batch goes on."""
    _break(course, "submitted-link")
    source = Course(course).source(PUZZLE1) / "puzzle1.ipynb"
    before = source.read_bytes(), source.stat().st_mode
    result = subprocess.run([sys.executable, "-m", "interp_course", "--root", str(course), "grade"],
                            env=nbgrader_env(), capture_output=True, text=True)
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    assert "NOT GRADED" in result.stdout and "evil" in result.stdout.split("NOT GRADED")[1]
    assert (source.read_bytes(), source.stat().st_mode) == before


def test_the_grade_command_refuses_without_the_environment_guard(course, monkeypatch, tmp_path):
    monkeypatch.setattr(guard, "ENV_GUARD_PATH", tmp_path / "missing" / "nbgrader_config.py")
    with pytest.raises(Refusal, match="guard is not installed"):
        guard.check_grading(Course(course))
