"""Scores read from the gradebook: per question (``grades_by_question.csv``) and per assignment.

``nbgrader export`` writes totals only (grades.csv; nbgrader issues #938 and #799). The
gradebook holds every graded cell's score, so ``grades_by_question.csv`` is written next to
grades.csv after each export, with the same rows: one per student and assignment, everyone the
gradebook knows, including students with no submission (blank cells, score 0, as grades.csv)::

    assignment,student_id,timestamp,<grade_id>...,late_submission_penalty,score,max_score
    hw1,jdoe,2025-01-31 12:00:00,2.0,1.5,...,0.0,19.5,25.0

Students only, so a spreadsheet's average of a column is the class's. Each question's maximum is in
``points_possible.csv`` beside it, one row per assignment with the same question columns::

    assignment,<grade_id>...,max_score
    hw1,2.0,2.0,...,25.0

A question's column holds its final score: the TA's manual score where one was given, else the
autograder's (plus any extra credit), as nbgrader totals it. Columns are the assignments' graded
cells (autograded tests, hand-graded answers, tasks) in notebook order, named by grade_id; a
grade_id used in more than one notebook is qualified as ``<notebook>/<grade_id>`` (or
``<assignment>/<notebook>/<grade_id>``). ``score`` is grades.csv's: the total less any late
penalty.

The gradebook belongs to the grading account; it is only ever opened read-only here. Every CSV the
course writes (these, grades.csv through ``grades_csv.GradesCsv``, canvas_grades.csv) goes through
``write_csv``: quoted by the ``csv`` module, and no cell a spreadsheet would run as a formula.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from interp_course.course import Course
from interp_course.exit_status import Refusal

TOTALS = ["late_submission_penalty", "score", "max_score"]
# nbgrader's exporter of grades.csv, quoted (``nbgrader export --exporter=...``): grades_csv.GradesCsv,
# named here so that choosing it does not import nbgrader.
GRADES_EXPORTER = "interp_course.lms.grades_csv.GradesCsv"


@contextlib.contextmanager
def read_only_gradebook(course: Course) -> Iterator:
    """nbgrader's Gradebook on the course's database, opened read-only (SQLite ``mode=ro``)."""
    from nbgrader.api import Gradebook

    if course.gradebook.is_symlink():  # the grading account's folder: never follow a link it made
        raise Refusal(f"{course.gradebook} is a link, not the gradebook: remove it")
    if not course.gradebook.is_file() or course.gradebook.stat().st_size == 0:
        raise Refusal(f"there is no gradebook at {course.gradebook}: grade first (make grade)")
    # course_id "": nbgrader would otherwise add a course row, a write.
    with Gradebook(f"sqlite:///file:{quote(str(course.gradebook))}?mode=ro&uri=true", course_id="") as gb:
        yield gb


def cell_order(course: Course, assignment: str, notebook: str) -> list[str]:
    """grade_ids of the source notebook's graded cells, top to bottom ([] without a source)."""
    try:
        cells = json.loads((course.source(assignment) / f"{notebook}.ipynb").read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return []
    order = []
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") or meta.get("task"):
            order.append(meta.get("grade_id"))
    return order


def _questions(course: Course, assignments) -> list[tuple[str, str, str, float]]:
    """(assignment, notebook, grade_id, max score) of every graded cell, in notebook order."""
    questions = []
    for assignment in assignments:
        for notebook in assignment.notebooks:  # nbgrader orders them by name
            cells = {c.name: c.max_score for c in notebook.grade_cells + notebook.task_cells}
            order = [n for n in cell_order(course, assignment.name, notebook.name) if n in cells]
            order += sorted(set(cells) - set(order))  # in the gradebook, no longer in source/
            questions += [(assignment.name, notebook.name, name, cells[name]) for name in order]
    return questions


def _labels(questions) -> list[str]:
    """Column names: the grade_id, qualified only where it would be ambiguous."""
    by_id = Counter(q[2] for q in questions)
    by_notebook = Counter(q[1:3] for q in questions)
    return [grade_id if by_id[grade_id] == 1 else
            f"{notebook}/{grade_id}" if by_notebook[(notebook, grade_id)] == 1 else
            f"{assignment}/{notebook}/{grade_id}"
            for assignment, notebook, grade_id, _ in questions]


def number(value: float | None) -> str:
    """A score as a CSV cell: blank for none, else as nbgrader's export writes floats."""
    return "" if value is None else str(float(value))


def grades_by_question(course: Course) -> tuple[list[list[str]], list[list[str]]]:
    """The rows of grades_by_question.csv and of points_possible.csv, each header first."""
    from nbgrader.api import MissingEntry

    with read_only_gradebook(course) as gb:
        assignments = gb.assignments  # by due date, then name, as grades.csv
        questions = _questions(course, assignments)
        labels = _labels(questions)
        rows = [["assignment", "student_id", "timestamp", *labels, *TOTALS]]
        possible = [["assignment", *labels, "max_score"]]
        students = sorted(s.id for s in gb.students)
        for assignment in assignments:
            mine = [i for i, q in enumerate(questions) if q[0] == assignment.name]
            cells = [""] * len(questions)
            for i in mine:
                cells[i] = number(questions[i][3])
            possible.append([assignment.name, *cells, number(assignment.max_score)])
            for student in students:
                cells = [""] * len(questions)
                try:
                    submission = gb.find_submission(assignment.name, student)
                except MissingEntry:  # nothing handed in: grades.csv's 0
                    rows.append([assignment.name, student, "", *cells, "0.0", "0.0", number(assignment.max_score)])
                    continue
                scores = {(g.notebook.name, g.name): g.score for nb in submission.notebooks for g in nb.grades}
                for i in mine:
                    cells[i] = number(scores.get(questions[i][1:3]))
                penalty = submission.late_submission_penalty or 0.0
                rows.append([assignment.name, student, str(submission.timestamp or ""), *cells, number(penalty),
                             number(max(0.0, submission.score - penalty)), number(assignment.max_score)])
    return rows, possible


def assignment_scores(course: Course, assignment: str) -> tuple[dict[str, float | None], float]:
    """({student id: score as in grades.csv, None where nothing was handed in}, the max score)."""
    from nbgrader.api import MissingEntry

    with read_only_gradebook(course) as gb:
        try:
            record = gb.find_assignment(assignment)
        except MissingEntry:
            raise Refusal(f"the gradebook has no assignment {assignment}: grade it first "
                          f"(make grade ASSIGNMENT={assignment})") from None
        scores = {}
        for student in gb.students:
            try:
                submission = gb.find_submission(assignment, student.id)
            except MissingEntry:
                scores[student.id] = None
                continue
            scores[student.id] = max(0.0, submission.score - (submission.late_submission_penalty or 0.0))
        return scores, record.max_score


# A cell a spreadsheet would run as a formula (= + - @; tab and CR start one in some of them, after
# the field is split): a student id such as `=HYPERLINK(...)`, `+1+1` or `-rf`, or a name in a roster.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(value) -> str:
    """A value as a CSV cell a spreadsheet shows as text: one that would start a formula gets a
    leading ``'`` (OWASP's CSV-injection defence); a plain number (``-1.5``) is left a number."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    """Replace ``path`` with ``rows``, never writing through a link planted there. Written by the
    ``csv`` module (a cell holding ``,``, ``"``, ``\\n`` or ``\\r`` is quoted, so it cannot make columns
    or rows of its own: rows end in ``\\r\\n`` as RFC 4180 has them, which is what makes the csv
    module quote a lone ``\\r``), every cell through ``csv_cell``."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([[csv_cell(cell) for cell in row] for row in rows])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
        f.write(buffer.getvalue())
    return path


def write_grades_by_question(course: Course) -> Path:
    """grades_by_question.csv, and points_possible.csv beside it."""
    rows, possible = grades_by_question(course)
    write_csv(course.points_possible_csv, possible)
    return write_csv(course.grades_by_question_csv, rows)
