"""Every CSV the course writes reads back as the gradebook holds it (issue 28, row 12).

nbgrader's own export joins cells with "," unquoted: a student id ``mallory,,,,25.0,0.0,25.0,25.0``
made a row that read as 25/25. Staging now refuses such ids, and every CSV is written by the csv
module with cells that would start a formula neutralised; these tests put hostile ids straight
into a real gradebook, as if staging had not been there.
"""

from __future__ import annotations

import csv
import os
import sys
from datetime import datetime
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from nbgrader.plugins.export import CsvExportPlugin

from interp_course.course import Course
from interp_course.lms.exports import csv_cell, write_csv, write_grades_by_question
from interp_course.lms.grades_csv import GradesCsv

FORGER = "mallory,,,,25.0,0.0,25.0,25.0"
HOSTILE = [FORGER, '=HYPERLINK("http://evil.example","click")', "+1+1", "-rf", "@SUM(A1)", "\tx", "\rx", "jdoe"]


def read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Course:
    course = Course(tmp_path_factory.mktemp("csv") / "course")
    course.gradebook.parent.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as patch:  # nbgrader runs alembic from PATH to create a gradebook
        patch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        with Gradebook(course.db_url, course_id="c") as gb:
            gb.add_assignment("puzzle1")
            gb.add_notebook("puzzle1", "puzzle1")
            gb.add_grade_cell("test_a", "puzzle1", "puzzle1", max_score=25, cell_type="code")
            for i, student in enumerate(HOSTILE):
                gb.add_student(student, first_name="=cmd|' /C calc'!A0" if i == 0 else "Ann")
                gb.add_submission("puzzle1", student, timestamp=datetime(2025, 1, 31, 12, 0))
                gb.find_grade("test_a", "puzzle1", "puzzle1", student).auto_score = float(i)
            gb.db.commit()
    return course


def test_cells_that_would_start_a_formula_are_neutralised_and_numbers_kept():
    assert [csv_cell(v) for v in ("=1+1", "+1+1", "-rf", "@x", "\tx", "\rx")] == \
        ["'=1+1", "'+1+1", "'-rf", "'@x", "'\tx", "'\rx"]
    assert [csv_cell(v) for v in ("-1.5", "+2", "1e-3", "-.5", 25.0, None, "jdoe", "")] == \
        ["-1.5", "+2", "1e-3", "-.5", "25.0", "", "jdoe", ""]


def test_nbgraders_own_export_is_forged_by_a_comma_in_an_id(course, tmp_path):
    """Why grades.csv is no longer nbgrader's writer's: the row reads as someone else's 25/25."""
    with Gradebook(course.db_url) as gb:
        CsvExportPlugin(to=str(tmp_path / "nbgrader.csv")).export(gb)
    rows = read(tmp_path / "nbgrader.csv")
    assert any(r["student_id"] == "mallory" and r["score"] == "25.0" for r in rows)


def test_grades_csv_reads_back_the_gradebooks_numbers(course, tmp_path):
    with Gradebook(course.db_url) as gb:
        GradesCsv(to=str(tmp_path / "grades.csv")).export(gb)
        want = {s.id: gb.find_submission("puzzle1", s.id).score for s in gb.students}
    rows = read(tmp_path / "grades.csv")
    assert list(rows[0]) == ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                             "raw_score", "late_submission_penalty", "score", "max_score"]
    assert len(rows) == len(HOSTILE)
    got = {r["student_id"]: float(r["score"]) for r in rows}
    assert got == {csv_cell(s): score for s, score in want.items()}
    assert got[FORGER] == 0.0 and "mallory" not in got
    assert all(not r[c].startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for c in r)
    assert {r["first_name"] for r in rows} == {"'=cmd|' /C calc'!A0", "Ann"}


def test_grades_by_question_is_neutralised_too(course):
    rows = read(write_grades_by_question(course))
    students = {r["student_id"] for r in rows}
    assert {"'+1+1", "'-rf", "'@SUM(A1)", FORGER} <= students
    assert float(next(r for r in rows if r["student_id"] == "'-rf")["test_a"]) == float(HOSTILE.index("-rf"))
    assert all(not r[c].startswith(("=", "+", "-", "@")) for r in rows for c in r)


def test_write_csv_quotes_and_never_follows_a_link(tmp_path):
    write_csv(tmp_path / "out.csv", [["a", "b"], ["x,y", 'say "hi"\nthere']])
    assert read(tmp_path / "out.csv") == [{"a": "x,y", "b": 'say "hi"\nthere'}]
    (tmp_path / "link.csv").symlink_to(tmp_path / "target")
    with pytest.raises(OSError):
        write_csv(tmp_path / "link.csv", [["a"]])
    assert not (tmp_path / "target").exists()
