"""grades_by_question.csv and the CSV for Canvas's gradebook import, from a small real gradebook.

The gradebook is built with nbgrader's own API (no kernel), as autograde and formgrader leave it:
auto scores, a TA's manual score, a late penalty, a student with no submission.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import sys
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from nbgrader.plugins.export import CsvExportPlugin

from interp_course import cli
from interp_course.lms.canvas_grades import choose_column, write_canvas_grades
from interp_course.course import Course
from interp_course.exit_status import REFUSED, SOME_UNGRADED, Refusal
from interp_course.lms.exports import grades_by_question, write_grades_by_question

ROSTER = Path(__file__).parent / "data" / "canvas_roster.csv"

# Each assignment's graded cells in notebook order (not alphabetical): (grade_id, points, type).
CELLS = {
    "puzzle1": [("test_normalize", 2, "code"), ("hypothesis", 2, "markdown"), ("test_center", 2, "code")],
    "vectors": [("test_cosine", 3, "code"), ("hypothesis", 1, "markdown")],
}


def write_source(course: Course, assignment: str) -> None:
    cells = [nbformat.v4.new_markdown_cell("# intro")]
    for grade_id, points, kind in CELLS[assignment]:
        cell = (nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell)("...")
        cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "points": points, "solution": kind == "markdown",
                                     "locked": kind == "code", "schema_version": 3}
        cells.append(cell)
    course.source(assignment).mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), course.source(assignment) / f"{assignment}.ipynb")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Course:
    """The course, built once (a new gradebook takes seconds); each test gets a copy."""
    with pytest.MonkeyPatch.context() as patch:  # nbgrader runs alembic from PATH to create a gradebook
        patch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        return build(Course(tmp_path_factory.mktemp("built") / "course"))


@pytest.fixture
def course(built, tmp_path) -> Course:
    shutil.copytree(built.root, tmp_path / "course")
    return Course(tmp_path / "course")


def build(course: Course) -> Course:
    course.gradebook.parent.mkdir(parents=True)
    for assignment in CELLS:
        write_source(course, assignment)
    with Gradebook(course.db_url, course_id="mech-interp-puzzles") as gb:
        for assignment, cells in CELLS.items():
            gb.add_assignment(assignment)
            gb.add_notebook(assignment, assignment)
            for grade_id, points, kind in cells:
                gb.add_grade_cell(grade_id, assignment, assignment, max_score=points, cell_type=kind)
        for student in ("jdoe", "rsmith", "aabsent", "ghost"):
            gb.add_student(student)

        def submit(assignment, student, scores, manual=None, penalty=0.0):
            gb.add_submission(assignment, student, timestamp=datetime(2025, 1, 31, 12, 0))
            for grade_id, score in scores.items():
                grade = gb.find_grade(grade_id, assignment, assignment, student)
                grade.auto_score = score
                grade.manual_score = (manual or {}).get(grade_id)
            gb.find_submission_notebook(assignment, assignment, student).late_submission_penalty = penalty
            gb.db.commit()

        # jdoe: a TA gave 1.5 for the hypothesis; rsmith's is not graded by hand yet, and was late.
        submit("puzzle1", "jdoe", {"test_normalize": 2, "hypothesis": None, "test_center": 1.5}, {"hypothesis": 1.5})
        submit("puzzle1", "rsmith", {"test_normalize": 0.5, "hypothesis": None, "test_center": 2}, penalty=1.0)
        submit("puzzle1", "ghost", {"test_normalize": 2, "hypothesis": None, "test_center": 2})
        submit("vectors", "jdoe", {"test_cosine": 3, "hypothesis": None}, {"hypothesis": 0.5})
    return course


def read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_grades_by_question_has_a_column_per_question_in_notebook_order(course):
    digest = hashlib.sha256(course.gradebook.read_bytes()).hexdigest()
    path = write_grades_by_question(course)
    assert path == course.root / "grades_by_question.csv"
    lines = path.read_text().splitlines()
    # A grade_id in both assignments is qualified by its notebook; the rest keep their grade_id.
    assert lines[0] == ("assignment,student_id,timestamp,test_normalize,puzzle1/hypothesis,test_center,test_cosine,"
                        "vectors/hypothesis,late_submission_penalty,score,max_score")
    rows = {(r["assignment"], r["student_id"]): r for r in read(path)}
    questions = ["test_normalize", "puzzle1/hypothesis", "test_center", "test_cosine", "vectors/hypothesis"]

    def cells(key):
        return [rows[key][q] for q in questions] + [rows[key][t] for t in ("late_submission_penalty", "score", "max_score")]

    # Students only (a column's average is the class's); each question's maximum is beside it.
    possible = {r["assignment"]: [r[q] for q in questions] + [r["max_score"]] for r in read(course.points_possible_csv)}
    assert possible == {"puzzle1": ["2.0", "2.0", "2.0", "", "", "6.0"], "vectors": ["", "", "", "3.0", "1.0", "4.0"]}
    # The TA's manual score where there is one, else the autograder's; the total less the late penalty.
    assert cells(("puzzle1", "jdoe")) == ["2.0", "1.5", "1.5", "", "", "0.0", "5.0", "6.0"]
    assert cells(("puzzle1", "rsmith")) == ["0.5", "0.0", "2.0", "", "", "1.0", "1.5", "6.0"]
    assert cells(("vectors", "jdoe")) == ["", "", "", "3.0", "0.5", "0.0", "3.5", "4.0"]
    # No submission: blank questions, and grades.csv's 0.
    assert cells(("vectors", "rsmith")) == ["", "", "", "", "", "0.0", "0.0", "4.0"]
    assert (rows[("vectors", "rsmith")]["timestamp"], rows[("puzzle1", "jdoe")]["timestamp"]) == ("", "2025-01-31 12:00:00")
    assert cells(("puzzle1", "aabsent")) == ["", "", "", "", "", "0.0", "0.0", "6.0"]
    # Rows sorted: per assignment, students by id.
    assert [(r["assignment"], r["student_id"]) for r in read(path)] == [
        ("puzzle1", "aabsent"), ("puzzle1", "ghost"), ("puzzle1", "jdoe"), ("puzzle1", "rsmith"),
        ("vectors", "aabsent"), ("vectors", "ghost"), ("vectors", "jdoe"), ("vectors", "rsmith")]
    assert hashlib.sha256(course.gradebook.read_bytes()).hexdigest() == digest, "the gradebook was written"
    assert os.listdir(course.gradebook.parent) == ["gradebook.db"]


def test_totals_are_those_of_nbgraders_own_export(course, tmp_path):
    with Gradebook(course.db_url, course_id="mech-interp-puzzles") as gb:
        CsvExportPlugin(to=str(tmp_path / "grades.csv")).export(gb)
    nbgrader_rows = {(r["assignment"], r["student_id"]): (r["timestamp"], r["score"], r["max_score"])
                     for r in read(tmp_path / "grades.csv")}
    header, *rows = grades_by_question(course)[0]
    ours = {(r[0], r[1]): (r[2], r[-2], r[-1]) for r in rows}
    assert ours == nbgrader_rows and len(ours) == 8


def test_a_question_in_the_gradebook_but_no_longer_in_source_comes_last(course):
    (course.source("vectors") / "vectors.ipynb").unlink()
    header = grades_by_question(course)[0][0]
    assert header[6:8] == ["vectors/hypothesis", "test_cosine"]  # by name, without a notebook to order them


def test_canvas_csv_fills_the_assignment_column_and_names_who_it_cannot(course, capsys):
    out = course.root / "canvas_grades.csv"
    status = write_canvas_grades(course, "puzzle1", ROSTER, out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines == [
        "Student,ID,SIS User ID,SIS Login ID,Section,Puzzle 1 (12345)",
        "    Points Possible,,,,,25.00",  # Canvas's own row, as Canvas wrote it
        '"Doe, Jane",1234,S001,jdoe,Section A,5.0',
        '"Roe, Smith",2345,S002,rsmith,Section A,1.5',
        '"Absent, Al",3456,S003,aabsent,Section B,',  # nothing handed in: blank, not 0
        '"Newcomer, Nia",4567,S004,nnew,Section B,',  # not in the gradebook
        '"Student, Test",9999,,,Section A,',
    ]
    printed = capsys.readouterr().out
    assert f"Wrote {out}: 2 scores of puzzle1 in column 'Puzzle 1 (12345)', matched by the roster's 'SIS Login ID'." in printed
    assert "Left blank (nothing graded, or no usable 'SIS Login ID'): Absent, Al; Newcomer, Nia; Student, Test." in printed
    assert "Canvas gives Puzzle 1 (12345) 25.00 points, nbgrader's puzzle1 has 6" in printed
    assert "NOT IN THE ROSTER: 1 graded student, whose scores are not in canvas_grades.csv: ghost." in printed
    assert status == SOME_UNGRADED


def test_canvas_matches_students_by_the_chosen_roster_column(course, capsys):
    out = course.root / "by-sis-user-id.csv"
    assert write_canvas_grades(course, "vectors", ROSTER, out, roster_column="SIS User ID") == SOME_UNGRADED
    assert [r["Vectors (12346)"] for r in read(out)] == ["3.00", "", "", "", "", ""]  # no S00x in the gradebook
    assert "NOT IN THE ROSTER: 1 graded student, whose scores are not in by-sis-user-id.csv: jdoe." in capsys.readouterr().out


def test_the_canvas_command_writes_canvas_grades_csv_in_the_course(course, capsys):
    status = cli.main(["--root", str(course.root), "canvas", "--roster", str(ROSTER), "--assignment", "vectors",
                       "--column", "Vectors (12346)"])
    assert status == 0  # everyone graded is in the roster
    assert [(r["SIS Login ID"], r["Vectors (12346)"]) for r in read(course.root / "canvas_grades.csv")] == [
        ("", "3.00"), ("jdoe", "3.5"), ("rsmith", ""), ("aabsent", ""), ("nnew", ""), ("", "")]
    assert cli.main(["--root", str(course.root), "canvas", "--roster", str(ROSTER)]) == REFUSED
    assert "say which assignment to export: --assignment (make canvas ASSIGNMENT=...)" in capsys.readouterr().err


def test_the_assignment_column_is_found_by_name_or_named():
    columns = ["Student", "ID", "SIS Login ID", "Section", "Puzzle 1 (12345)", "Puzzle 1 retake (12399)", "Vectors (12346)"]
    assert choose_column(columns, "puzzle1", None) == "Puzzle 1 (12345)"  # the exact name before a longer one
    assert choose_column(columns, "vectors", None) == "Vectors (12346)"
    assert choose_column(columns, "puzzle1", "Puzzle 1 retake (12399)") == "Puzzle 1 retake (12399)"
    with pytest.raises(Refusal, match=r"several roster columns match puzzle1 \(Puzzle 1a \(1\), Puzzle 1b \(2\)\)"):
        choose_column(["Student", "ID", "Puzzle 1a (1)", "Puzzle 1b (2)"], "puzzle1", None)
    with pytest.raises(Refusal, match=r"no roster columns match quiz2 \(Puzzle 1 \(12345\), .*--column"):
        choose_column(columns, "quiz2", None)
    with pytest.raises(Refusal, match="the roster has no column 'Puzzle 2'"):
        choose_column(columns, "puzzle1", "Puzzle 2")


def test_the_exports_refuse_a_missing_gradebook_and_a_link_in_its_place(course, tmp_path):
    real = tmp_path / "elsewhere.db"
    course.gradebook.rename(real)
    with pytest.raises(Refusal, match="there is no gradebook at .*: grade first"):
        grades_by_question(course)
    course.gradebook.symlink_to(real)
    with pytest.raises(Refusal, match="is a link, not the gradebook"):
        write_canvas_grades(course, "puzzle1", ROSTER, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
