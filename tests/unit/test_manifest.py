"""The release manifest notices every change to the instructor's files, and only those."""

from __future__ import annotations

import shutil

import pytest

from interp_course.security import manifest
from interp_course.course import CHECKOUT, Course


@pytest.fixture
def course(tmp_path) -> Course:
    for name in ("source", "release", "solutions", "grader_tests"):
        shutil.copytree(CHECKOUT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CHECKOUT / "nbgrader_config.py", tmp_path)
    course = Course(tmp_path)
    manifest.write(course)
    return course


def test_a_fresh_manifest_matches(course):
    assert manifest.differences(course) == []


def test_state_and_corpus_notebooks_are_not_covered(course):
    (course.root / "gradebook").mkdir()
    (course.root / "gradebook" / "gradebook.db").write_text("state")
    (course.corpus("puzzle1") / "new-student.ipynb").write_text("{}")
    assert manifest.differences(course) == []


@pytest.mark.parametrize("change", ["content", "mode", "added", "removed", "link", "config"])
def test_each_kind_of_change_is_reported(course, change):
    checks = course.grader_tests("puzzle1") / "checks.py"
    if change == "content":
        checks.write_text(checks.read_text() + "\n# changed\n")
    elif change == "mode":
        checks.chmod(0o444)
    elif change == "added":
        (course.source("puzzle1") / "extra.txt").write_text("copied into every kernel's folder")
    elif change == "removed":
        (course.solutions("puzzle1") / "__init__.py").unlink()
    elif change == "link":
        checks.unlink()
        checks.symlink_to("/etc/hostname")
    elif change == "config":
        (course.root / "nbgrader_config.py").write_text("raise SystemExit\n")
    found = manifest.differences(course)
    assert len(found) == 1, found


def test_missing_manifest_says_what_to_run(course):
    course.manifest.unlink()
    assert "make release" in manifest.differences(course)[0]
