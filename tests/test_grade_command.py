"""`python -m interp_course grade` (what `make grade` runs) on what a real class hands in.

Each case below once exited 0 with a table as if all went well. Grading is the slow part (a
sandboxed kernel per notebook), so one scratch course holds every case of a fresh term and is
graded in one run; the tests read its output, grades.csv and folders.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import PUZZLE1, make_course
from interp_course.security import manifest
from interp_course.cli import nbgrader_env
from interp_course.course import Course
from interp_course.judging.judge import graded_test_cells

CORPUS = Course().corpus(PUZZLE1)
FULL_MARKS = (CORPUS / "full-marks.ipynb").read_bytes()
BLANK = (CORPUS / "blank.ipynb").read_bytes()
SOURCE = nbformat.read(Course().source(PUZZLE1) / "puzzle1.ipynb", as_version=4)
# What autograding gives a full-marks notebook: every test cell, not the hand-graded explanation.
AUTO_MAX = sum(float(SOURCE.cells[i].metadata["nbgrader"]["points"]) for i, _ in graded_test_cells(SOURCE))


def run_grade(root: Path, assignment: str = PUZZLE1, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interp_course", "--root", str(root), "grade",
                           "--assignment", assignment, *options], env=nbgrader_env(), capture_output=True, text=True)


def released_course(dest: Path) -> Path:
    """A scratch course as it is after `make release`: release/ is the committed student version,
    and the manifest that grading checks the course files against."""
    course = make_course(dest)
    shutil.copytree(Course().release(PUZZLE1), course / "release" / PUZZLE1)
    manifest.write(Course(course))
    return course


def hand_in(course: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = course / "submitted" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def scores(course: Path) -> dict[str, float]:
    with open(course / "grades.csv", newline="") as f:
        return {r["student_id"]: float(r["score"]) for r in csv.DictReader(f) if r["assignment"] == PUZZLE1}


def old_format(notebook: bytes) -> bytes:
    return nbformat.writes(nbformat.convert(nbformat.reads(notebook.decode(), as_version=4), 3)).encode()


class FreshTerm:
    """A copied course folder without gradebook.db, and a class's hand-ins, graded in one run."""

    def __init__(self, root: Path):
        self.root = root
        hand_in(root, {
            "renamed/puzzle1/puzzle1 (1).ipynb": FULL_MARKS,  # a browser's name for a second download
            "old-format/puzzle1/puzzle1.ipynb": old_format(FULL_MARKS),
            "blank/puzzle1/puzzle1.ipynb": BLANK,
            "truncated/puzzle1/puzzle1.ipynb": FULL_MARKS[:-500],
            "two-copies/puzzle1/Copy of puzzle1.ipynb": BLANK,
            "two-copies/puzzle1/puzzle1-final.ipynb": FULL_MARKS,
            "pdf-only/puzzle1/puzzle1.pdf": b"%PDF-1.4\n",
        })
        self.submitted_before, self.release_before = tree(root / "submitted"), tree(root / "release")
        self.result = run_grade(root)
        self.lines = self.result.stdout.splitlines()


@pytest.fixture(scope="module")
def fresh_term(courses_dir) -> FreshTerm:
    return FreshTerm(released_course(courses_dir / "fresh-term"))


def test_some_ungraded_exits_3_and_grades_all_the_others(fresh_term):
    assert fresh_term.result.returncode == 3, fresh_term.result.stdout[-3000:] + fresh_term.result.stderr[-3000:]
    assert scores(fresh_term.root) == {"renamed": AUTO_MAX, "old-format": AUTO_MAX, "blank": 0}
    assert "Autograded 3 of 6 submissions of puzzle1 in " in fresh_term.result.stdout
    for student in ["renamed", "old-format", "blank"]:
        assert (fresh_term.root / "feedback" / student / PUZZLE1 / "puzzle1.html").stat().st_size > 10_000


def test_a_missing_gradebook_is_rebuilt_from_source_without_touching_release(fresh_term):
    assert ("Rebuilt the gradebook's record of puzzle1 from source/puzzle1/ (there is no gradebook.db), as "
            "nbgrader generate_assignment does; release/ was not touched.") in fresh_term.lines
    assert tree(fresh_term.root / "release") == fresh_term.release_before


def test_rescues_are_graded_and_flagged(fresh_term):
    assert '  renamed: graded "puzzle1 (1).ipynb" as puzzle1.ipynb' in fresh_term.lines
    assert '  old-format: "puzzle1.ipynb" is nbformat 3: graded a copy upgraded to nbformat 4' in fresh_term.lines


def test_the_closing_lines_name_each_ungraded_student_with_reason_and_fix(fresh_term):
    closing = fresh_term.lines[fresh_term.lines.index("NOT GRADED: 3 submissions of puzzle1:"):]
    assert [line.split(":")[0].strip() for line in closing[1:4]] == ["pdf-only", "truncated", "two-copies"]
    pdf_only, truncated, two_copies = closing[1:4]
    assert "no notebook (.ipynb) in submitted/pdf-only/puzzle1/ (it holds \"puzzle1.pdf\")" in pdf_only
    assert f'"puzzle1.ipynb" is cut off after {len(FULL_MARKS) - 500:,} bytes' in truncated
    assert 'no puzzle1.ipynb, and 2 notebooks that could be it: "Copy of puzzle1.ipynb", "puzzle1-final.ipynb"' in two_copies
    assert all(" Fix: " in line for line in closing[1:4])
    assert closing[4].startswith("Exit status 3: ") and len(closing) == 5


def test_the_student_is_told_what_was_wrong_with_the_file(fresh_term):
    page = (fresh_term.root / "feedback/truncated/puzzle1/puzzle1.html").read_text()
    assert "could not be graded" in page and f"stops after {len(FULL_MARKS) - 500:,} bytes" in page
    assert (fresh_term.root / "feedback/pdf-only/puzzle1/puzzle1.html").exists()
    assert not (fresh_term.root / "feedback/two-copies").exists()  # the instructor decides, not the student


def test_the_log_file_has_every_nbgrader_step_and_no_config_warnings(fresh_term):
    (log,) = (fresh_term.root / "logs").glob("grade-*.log")
    text = log.read_text()
    assert all(f"$ nbgrader {step} " in text for step in ("autograde", "generate_feedback", "export"))
    assert "not recognized by" not in text  # the course config sets only options its classes have


def test_submitted_stays_byte_identical_and_no_staging_is_left(fresh_term):
    assert tree(fresh_term.root / "submitted") == fresh_term.submitted_before
    assert not list(fresh_term.root.glob(".staged-*"))


def test_all_graded_from_an_empty_gradebook_exits_0(courses_dir):
    course = released_course(courses_dir / "empty-gradebook")
    Course(course).gradebook.parent.mkdir()
    Course(course).gradebook.touch()
    hand_in(course, {"blank/puzzle1/puzzle1.ipynb": BLANK})
    result = run_grade(course)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "(gradebook.db is empty)" in result.stdout and "NOT GRADED" not in result.stdout
    assert result.stdout.splitlines()[-1].startswith("Autograded 1 of 1 submissions of puzzle1 in ")
    assert scores(course) == {"blank": 0}


def test_a_batch_out_of_time_names_the_notebooks_it_did_not_run_and_the_next_run_grades_them(courses_dir):
    course = released_course(courses_dir / "time-limit")
    hand_in(course, {"blank/puzzle1/puzzle1.ipynb": BLANK, "full-marks/puzzle1/puzzle1.ipynb": FULL_MARKS})
    # One second: starting the batch's first kernel takes longer, so no run starts.
    limited = run_grade(course, PUZZLE1, "--time-limit", "1s")
    assert limited.returncode == 3, limited.stdout[-3000:] + limited.stderr[-3000:]
    for student in ("blank", "full-marks"):
        assert (f"{student}: not run: the batch's time limit (1 s) ran out before its notebook ran. Fix: run "
                "`make grade` again") in limited.stdout
        assert not (course / "autograded" / student / PUZZLE1).exists()  # no blank verdicts, no feedback page
        assert not (course / "feedback" / student / PUZZLE1).exists()
    assert "Kept 0 of 0 run(s); 2 not started: the batch's time limit ran out" in limited.stdout
    assert "Autograded 0 of 2 submissions" in limited.stdout
    again = run_grade(course)
    assert again.returncode == 0 and "2 submission(s) run in the sandbox" in again.stdout
    assert scores(course) == {"blank": 0, "full-marks": AUTO_MAX}


def test_a_gradebook_that_is_not_a_database_is_refused_with_exit_2(courses_dir):
    course = released_course(courses_dir / "not-a-database")
    gradebook = Course(course).gradebook
    gradebook.parent.mkdir()
    gradebook.write_text("grades I typed in\n")
    hand_in(course, {"blank/puzzle1/puzzle1.ipynb": BLANK})
    result = run_grade(course)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("python -m interp_course grade: refused: ") and "is not an SQLite database" in line
    assert gradebook.read_text() == "grades I typed in\n"
    csv_file = course / "grades.csv"  # set-up may have made it, empty, for the grading account
    assert not list((course / "autograded").glob("*")) and (not csv_file.exists() or not csv_file.stat().st_size)


def test_an_unknown_assignment_is_refused_with_exit_2(courses_dir):
    course = released_course(courses_dir / "unknown-assignment")
    result = run_grade(course, "puzzle9")
    assert result.returncode == 2 and "puzzle9 is not an assignment of the course" in result.stderr
