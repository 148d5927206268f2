"""Root never writes through a path the grading account controls (issue 28, row 11): the
"not graded" feedback page and the hand-over of the grading account's folders open every
component without following a link."""

from __future__ import annotations

import os
from pathlib import Path

from interp_course.course import Course
from interp_course.grading.batch import _write_not_graded_feedback
from interp_course.grading.staging import Problem, Submission
from interp_course.security import grader_user


def _submission(student: str) -> Submission:
    return Submission(student, Path("/nonexistent"), problem=Problem("unreadable", "fix it", for_student="It is cut off."))


def test_the_not_graded_page_is_written_where_it_belongs(tmp_path):
    course = Course(tmp_path)
    course.feedback.mkdir()
    _write_not_graded_feedback(course, "hw1", _submission("jdoe"), ["hw1"])
    assert "It is cut off." in (course.feedback / "jdoe" / "hw1" / "hw1.html").read_text()


def test_a_link_anywhere_on_the_way_is_never_written_through(tmp_path):
    course = Course(tmp_path / "course")
    course.feedback.mkdir(parents=True)
    protected = tmp_path / "root-only"
    (protected / "hw1").mkdir(parents=True)
    (course.feedback / "mallory").symlink_to(protected)  # the student's folder is a link
    (course.feedback / "eve").mkdir()
    (course.feedback / "eve" / "hw1").symlink_to(protected / "hw1")  # the assignment's folder is a link
    for student in ("mallory", "eve"):
        _write_not_graded_feedback(course, "hw1", _submission(student), ["hw1"])
    assert list(protected.rglob("*")) == [protected / "hw1"]


def test_handing_over_never_follows_a_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("x")
    before = os.stat(outside / "secret")
    tree = tmp_path / "state"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "link").symlink_to(outside)
    grader_user._chown_tree(tree, 12345, 12345)
    assert os.stat(tree / "a").st_uid == 12345 and os.lstat(tree / "a" / "link").st_uid == 12345
    after = os.stat(outside / "secret")
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)


def test_refresh_finds_not_graded_pages_without_following_links(tmp_path):
    from interp_course.cli import _not_graded_pages

    course = Course(tmp_path / "course")
    course.feedback.mkdir(parents=True)
    _write_not_graded_feedback(course, "hw1", _submission("jdoe"), ["hw1"])
    elsewhere = tmp_path / "elsewhere" / "hw1"
    elsewhere.mkdir(parents=True)
    (elsewhere / "hw1.html").write_bytes((course.feedback / "jdoe" / "hw1" / "hw1.html").read_bytes())
    (course.feedback / "mallory").symlink_to(elsewhere.parent)  # a linked student folder
    (course.feedback / "eve" / "hw1").mkdir(parents=True)
    (course.feedback / "eve" / "hw1" / "hw1.html").symlink_to(elsewhere / "hw1.html")  # a linked page
    (course.feedback / "ann" / "hw1").mkdir(parents=True)
    (course.feedback / "ann" / "hw1" / "hw1.html").write_text("<!DOCTYPE html><p>graded</p>")
    assert _not_graded_pages(course, "hw1") == ["jdoe"]
