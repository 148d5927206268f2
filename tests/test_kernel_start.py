"""Grading checks that a sandboxed kernel can start where the batch's runs will run before it
judges anyone, and refuses (exit 2) with the cause when it cannot; limits fail closed.

A course whose sandboxes can get no cgroup (here: a cgroup parent that set-up never made) is
refused, with the fix; with ALLOW_NO_CGROUP=1 it is graded with per-process limits, and the
closing lines say so.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PUZZLE1
from interp_course.security import manifest
from interp_course.cli import nbgrader_env
from interp_course.course import Course
from interp_course.preprocessors.resilient_execute import KernelStartFailed
from interp_course.sandbox.kernel_manager import SandboxedKernelManager
from test_grade_command import AUTO_MAX, FULL_MARKS, hand_in, released_course


def grade(root: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interp_course", "--root", str(root), "grade", "--assignment",
                           PUZZLE1, "--no-cache"], env={**nbgrader_env(), **env}, capture_output=True, text=True)


@pytest.fixture(scope="module")
def no_cgroup_course(courses_dir) -> Path:
    course = released_course(courses_dir / "no-cgroup")
    with open(course / "nbgrader_config.py", "a") as f:
        f.write('\nc.SandboxedKernelManager.cgroup_parent = "/interp-course-never-made"\n')
    manifest.write(Course(course))
    hand_in(course, {f"jdoe/{PUZZLE1}/{PUZZLE1}.ipynb": FULL_MARKS})
    return course


@pytest.mark.skipif(os.geteuid() != 0, reason="grading as the unprivileged account needs root")
def test_without_a_cgroup_grading_refuses_before_anyone_is_judged(no_cgroup_course):
    refused = grade(no_cgroup_course)
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert "refused: no sandboxed kernel could start" in refused.stderr
    assert "ALLOW_NO_CGROUP=1" in refused.stderr and "make setup" in refused.stderr
    assert not (no_cgroup_course / "grades.csv").read_text().strip()  # the grading account's empty file
    assert not list((no_cgroup_course / "feedback").rglob("*.html"))


@pytest.mark.skipif(os.geteuid() != 0, reason="grading as the unprivileged account needs root")
def test_allow_no_cgroup_grades_and_says_so(no_cgroup_course):
    allowed = grade(no_cgroup_course, ALLOW_NO_CGROUP="1")
    assert allowed.returncode == 0, allowed.stdout[-2000:] + allowed.stderr[-2000:]
    assert "WITHOUT cgroup limits" in allowed.stdout and "ALLOW_NO_CGROUP=1" in allowed.stdout
    with open(no_cgroup_course / "grades.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["student_id"] == "jdoe"]
    assert [float(r["score"]) for r in rows] == [AUTO_MAX]  # all but the hand-graded answers


def test_a_kernel_that_died_at_start_is_reported_with_its_own_last_lines():
    km = SandboxedKernelManager()
    km._sbx_last_log = ("[IPKernelApp] starting\nTraceback (most recent call last):\n  File \"x.py\", line 1\n"
                        "ModuleNotFoundError: No module named 'numpy.random'\n")
    message = str(KernelStartFailed(RuntimeError("Kernel died before replying to kernel_info"), km))
    assert "\n" not in message
    assert message.startswith("the sandboxed kernel did not start (RuntimeError: Kernel died before replying")
    assert message.endswith("File \"x.py\", line 1 | ModuleNotFoundError: No module named 'numpy.random'")
