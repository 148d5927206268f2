"""Staging reads student bytes within bounds and refuses folder names that are not student ids
(issue 28, rows 6, 12 and 13): one student's file or folder never stops the batch."""

from __future__ import annotations

import json
import time

import nbformat
import pytest

from interp_course.security import student_id
from interp_course.grading.staging import MAX_JSON_DEPTH, json_problem, parse_notebook, stage_all, timestamp_problem


def notebook_text(metadata=None) -> str:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nb.metadata.update(metadata or {})
    return nbformat.writes(nb)


def deep(levels: int) -> str:
    return notebook_text({"x": "DEEP"}).replace('"DEEP"', "[" * levels + "]" * levels)


def test_a_whole_notebook_is_within_bounds():
    assert json_problem(notebook_text({"plotly": {"a": [[{"b": [1.5, -2e-308, True, None]}]]}})) is None
    assert parse_notebook(notebook_text().encode(), "p.ipynb", "ann")[2] is None


@pytest.mark.parametrize("text, why", [
    (deep(2000), f"is nested more than {MAX_JSON_DEPTH} levels deep"),
    (notebook_text({"n": 1}).replace('"n": 1', '"n": ' + "9" * 5000), "holds a number of 5,000 characters"),
    ("[" + "{}," * 5_000_000 + "{}]", "holds more than 4,000,000 values"),
])
def test_a_notebook_past_a_bound_is_that_students_problem_not_an_exception(text, why):
    assert why in json_problem(text)
    notebook, _, problem = parse_notebook(text.encode(), "p.ipynb", "ann")
    assert notebook is None and why in problem.reason and "could not be graded" in problem.for_student


def test_within_the_depth_bound_is_read():
    assert parse_notebook(deep(MAX_JSON_DEPTH - 5).encode(), "p.ipynb", "ann")[2] is None


def test_the_scan_is_linear_whatever_the_quotes():
    start = time.perf_counter()
    for text in ('"' + '\\"' * 2_000_000, '["' + "a" * 8_000_000, "[" + '"\\' * 1_000_000):
        json_problem(text)
    assert time.perf_counter() - start < 5


def test_a_timestamp_is_parsed_only_when_short():
    assert timestamp_problem(b"2025-01-31 12:00:00") is None
    assert "not a time" in timestamp_problem(b"2025-01-31 " + b"9" * 5000)


def test_student_ids_outside_the_safe_set_are_named_escaped():
    for good in ("jdoe", "j.doe@uni.edu", "+1+1", "-rf", "a_b-c"):
        assert student_id.is_safe(good) and student_id.shown(good) == good
    assert student_id.why_unsafe("eve\nlater") == "holds a line break"
    assert student_id.shown("eve\nlater") == "'eve\\nlater'"
    assert student_id.why_unsafe("red\x1b[31m") == "holds control characters"
    assert "','" in student_id.why_unsafe("mallory,,,,25.0,0.0,25.0,25.0")
    assert "'='" in student_id.why_unsafe('=HYPERLINK("evil.example","y")')
    assert not student_id.is_safe(".hidden") and not student_id.is_safe("Points Possible")
    assert not student_id.is_safe("a" * 129)


def test_unsafe_folders_are_refused_and_the_students_after_them_still_staged(tmp_path):
    submitted, staging = tmp_path / "submitted", tmp_path / "staged"
    names = ["aa\nbb", "mallory,,,,25.0,0.0,25.0,25.0", '=HYPERLINK("evil.example","y")', "-rf", "zed"]
    for name in names:
        (submitted / name / "p").mkdir(parents=True)
        (submitted / name / "p" / "p.ipynb").write_text(notebook_text())
    subs = {s.student: s for s in stage_all(submitted, "p", ["p"], staging)}
    assert set(subs) == set(names)
    assert [s for s in names if subs[s].problem is None] == ["-rf", "zed"]
    assert sorted(p.name for p in staging.iterdir()) == ["-rf", "zed"]
    newline = subs["aa\nbb"]
    assert newline.shown == "'aa\\nbb'" and "holds a line break" in newline.problem.reason
    assert "\n" not in newline.problem.reason + newline.problem.fix
    assert newline.problem.for_student == ""  # no feedback folder is made under such a name
    assert "holds ','" in subs["mallory,,,,25.0,0.0,25.0,25.0"].problem.reason
    json.dumps([s.problem.reason for s in subs.values() if s.problem])  # plain strings
