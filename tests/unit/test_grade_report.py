"""The gradebook check before grading, the closing lines, and what is safe to print."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from interp_course.exit_status import Refusal
from interp_course.grading.gradebook import missing_from_gradebook
from interp_course.grading.report import closing_lines, feedback_page, nbgrader_failures
from interp_course.grading.staging import Problem, Submission
from interp_course.security.inert import one_line


# --- the gradebook ---------------------------------------------------------------------------
def _gradebook(path: Path, assignment: str | None = None, notebooks=()) -> Path:
    with Gradebook(f"sqlite:///{path}") as gb:
        if assignment:
            gb.add_assignment(assignment)
            for name in notebooks:
                gb.add_notebook(name, assignment)
    return path


def test_what_the_gradebook_lacks(tmp_path, monkeypatch):
    # nbgrader runs `alembic` from PATH when it creates a gradebook.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    path = tmp_path / "gradebook.db"
    assert missing_from_gradebook(path, "puzzle1", ["puzzle1"]) == "there is no gradebook.db"
    path.touch()
    assert missing_from_gradebook(path, "puzzle1", ["puzzle1"]) == "gradebook.db is empty"
    path.unlink()
    _gradebook(path)
    assert missing_from_gradebook(path, "puzzle1", ["puzzle1"]) == "gradebook.db has no assignment puzzle1"
    path.unlink()
    _gradebook(path, "puzzle1")
    assert missing_from_gradebook(path, "puzzle1", ["puzzle1"]) == "gradebook.db lacks puzzle1.ipynb of puzzle1"
    path.unlink()
    _gradebook(path, "puzzle1", ["puzzle1"])
    assert missing_from_gradebook(path, "puzzle1", ["puzzle1"]) is None


@pytest.mark.parametrize("content", [b"these are my grades, do not lose them\n",
                                     b"SQLite format 3\x00" + b"\x07" * 200])
def test_a_gradebook_that_is_not_a_database_is_refused_and_left_alone(tmp_path, content):
    path = tmp_path / "gradebook.db"
    path.write_bytes(content)
    with pytest.raises(Refusal) as refusal:
        missing_from_gradebook(path, "puzzle1", ["puzzle1"])
    assert str(path) in str(refusal.value) and "\n" not in str(refusal.value)
    assert path.read_bytes() == content


# --- nbgrader's log --------------------------------------------------------------------------
NBGRADER_LOG = """\
[AutogradeApp | ERROR] No assignment with ID 'puzzle1' exists in the database
[AutogradeApp | ERROR] There was an error processing assignment: /c/.staged-x/blank/puzzle1
[AutogradeApp | ERROR] Traceback (most recent call last):
      File "/v/nbgrader/api.py", line 1549, in find_assignment
        .one()
    sqlalchemy.exc.NoResultFound: No row was found when one was required

    During handling of the above exception, another exception occurred:

    Traceback (most recent call last):
      File "/v/nbgrader/converters/autograde.py", line 103, in init_assignment
        raise NbGraderException(msg)
    nbgrader.converters.base.NbGraderException: No assignment with ID 'puzzle1' exists in the database

/v/nbgrader/api.py:2229: SAWarning: Object of type <SubmittedAssignment> not in session
  for notebook in submission.assignment.notebooks:
[AutogradeApp | ERROR] There was an error processing assignment 'puzzle1' for student 'blank'
"""


def test_nbgrader_failures_are_read_from_its_log():
    assert nbgrader_failures(NBGRADER_LOG) == {
        Path("/c/.staged-x/blank/puzzle1"):
            "nbgrader.converters.base.NbGraderException: No assignment with ID 'puzzle1' exists in the database"}


# --- the closing lines -----------------------------------------------------------------------
def test_closing_lines_name_each_ungraded_student_with_reason_and_fix():
    submissions = [
        Submission("ann", Path("s/ann/p")),
        Submission("bo", Path("s/bo/p"), notes=['graded "puzzle1 (1).ipynb" as puzzle1.ipynb']),
        Submission("cy", Path("s/cy/p"), problem=Problem('"puzzle1.ipynb" is cut off after 9 bytes',
                                                          "ask cy to hand the notebook in again", "It stops.")),
        Submission("di", Path("s/di/p"), problem=Problem("no puzzle1.ipynb, and 2 notebooks", "rename one")),
    ]
    lines = closing_lines("puzzle1", submissions, 40.0, {"di": 12.0}, set())
    assert lines == [
        "Rescued (graded; have a look):",
        '  bo: graded "puzzle1 (1).ipynb" as puzzle1.ipynb',
        "Autograded 2 of 4 submissions of puzzle1 in 40 s (20.0 s each).",
        "NOT GRADED: 2 submissions of puzzle1:",
        '  cy: "puzzle1.ipynb" is cut off after 9 bytes. Fix: ask cy to hand the notebook in again; '
        "feedback/cy/puzzle1/ tells them what was wrong with the file.",
        "  di: no puzzle1.ipynb, and 2 notebooks. Fix: rename one; grades.csv lists them with 12, which is not "
        "a grade of this submission (an earlier one's, or nbgrader's 0 for the failure).",
    ]


def test_names_from_students_files_cannot_drive_the_terminal():
    evil = "eve\x1b]0;pwned\x07\x1b[2K\rgraded: 18/18\u202e\n"
    assert one_line(evil) == "evegraded: 18/18"
    submission = Submission("eve", Path("s/eve/p"), problem=Problem(f'"{evil}" is empty', "fix"))
    assert all("\x1b" not in line and "\r" not in line for line in closing_lines("p", [submission], 0, {}, set()))


def test_the_not_graded_feedback_page_escapes_what_it_quotes():
    page = feedback_page("puzzle1", 'Your file "<script>.ipynb" could not be graded')
    assert "<script>" not in page and "&lt;script&gt;" in page


# --- what a batch tells the grader ------------------------------------------------------------
def test_the_batch_report_is_read_bounded_and_only_for_safe_student_ids():
    from interp_course.grading.report import MAX_BATCH_REPORT, BatchReport

    report = BatchReport.read(b"planned bob\nplanned alice\njudged bob\nkept-fault eve KernelDied in cell 12\n"
                              b"judged ../x\nplanned \xff\nsomething else\n")
    assert report.planned == ["bob", "alice"] and report.judged == {"bob"}
    assert report.kept_faults == {"eve": "KernelDied in cell 12"} and report.refusal == ""
    refused = BatchReport.read(b"refused no sandboxed kernel could start (ImportError: x)\n")
    assert refused.refusal == "no sandboxed kernel could start (ImportError: x)"
    huge = BatchReport.read(b"planned a\n" * (MAX_BATCH_REPORT // 10 + 5))
    assert len(huge.planned) == MAX_BATCH_REPORT // 10
