"""A second assignment goes through the same commands with no change to the engine.

``tests/example_course/`` holds a deliberately small assignment, ``vectors``: one function of two
list arguments returning a float, its reference solution, its checks (no models) and a corpus of
a right, a wrong and a crashing submission. It is copied into a scratch course next to the
engine's own nbgrader_config.py, then released, graded and given feedback through
``python -m interp_course`` exactly as Puzzle 1 is.
"""

from __future__ import annotations

import csv
import html
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from interp_course import corpus
from interp_course.course import CHECKOUT, Course

EXAMPLE = Path(__file__).resolve().parent / "example_course"
ASSIGNMENT = "vectors"


def cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "interp_course", "--root", str(root), *args],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Course:
    root = tmp_path_factory.mktemp("second-course")
    for folder in (root, *root.parents):  # pytest makes its folders private: let the grading account in
        if folder == Path(tempfile.gettempdir()):
            break
        folder.chmod(0o755)
    for folder in ("source", "solutions", "grader_tests"):
        shutil.copytree(EXAMPLE / folder, root / folder)
    shutil.copy(CHECKOUT / "nbgrader_config.py", root / "nbgrader_config.py")
    course = Course(root)
    cli(root, "release")
    cli(root, "corpus")
    # The instructor's demo path: release, submit the corpus's demo students, grade.
    cli(root, "demo")
    return course


def test_release_hides_the_solution_and_the_hand_in(course):
    text = (course.release(ASSIGNMENT) / "vectors.ipynb").read_text()
    assert "YOUR CODE HERE" in text and "hand_in" not in text and "math.sqrt" not in text


def test_corpus_was_written_by_the_same_command(course):
    assert sorted(p.stem for p in course.corpus(ASSIGNMENT).glob("*.ipynb")) == ["crashing", "right", "wrong"]


def test_scores_and_feedback(course):
    with open(course.grades_csv, newline="") as f:
        totals = {r["student_id"]: float(r["score"]) for r in csv.DictReader(f) if r["assignment"] == ASSIGNMENT}
    submissions = corpus.load(course, ASSIGNMENT).SUBMISSIONS
    max_points = {"test_cosine": 3.0}
    assert totals == {s.name: sum(s.expected_scores(max_points).values()) for s in submissions}
    assert totals == {"right": 3.0, "wrong": 0.0, "crashing": 0.0}
    for s in submissions:
        page = (course.feedback / s.name / ASSIGNMENT / "vectors.html").read_text()
        text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
        assert "test_cosine" in text
        for phrase in s.feedback:
            assert phrase in text, f"{s.name}'s feedback lacks {phrase!r}"
        assert "hand_in(" not in text and "BEGIN HIDDEN TESTS" not in text


def test_the_right_submission_got_every_item(course):
    page = (course.feedback / "right" / ASSIGNMENT / "vectors.html").read_text()
    assert "test_cosine: 3 / 3 points" in html.unescape(page)
    assert "returns a number and leaves its inputs unchanged" in html.unescape(page)


def test_grading_wrote_the_scores_per_question(course):
    """grades_by_question.csv, written by the grade command from the grading account's gradebook."""
    with open(course.grades_by_question_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["assignment", "student_id", "timestamp", "test_cosine", "late_submission_penalty",
                             "score", "max_score"]
    with open(course.points_possible_csv, newline="") as f:
        assert [(r["assignment"], r["test_cosine"], r["max_score"]) for r in csv.DictReader(f)] == [("vectors", "3.0", "3.0")]
    with open(course.grades_csv, newline="") as f:
        totals = {r["student_id"]: r["score"] for r in csv.DictReader(f)}
    assert {r["student_id"]: (r["test_cosine"], r["score"]) for r in rows} == {
        "crashing": ("0.0", "0.0"), "right": ("3.0", "3.0"), "wrong": ("0.0", "0.0")}
    assert {r["student_id"]: r["score"] for r in rows} == totals


def test_the_canvas_command_fills_the_roster_from_the_gradebook(course, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section,Vectors (777),Current Score\n"
                      "    Points Possible,,,,,3.00,(read only)\n"
                      '"Right, Ann",11,S1,right,A,,0\n"Wrong, Bo",12,S2,wrong,A,,0\n"Later, Cy",13,S3,later,A,,0\n')
    result = subprocess.run([sys.executable, "-m", "interp_course", "--root", str(course.root), "canvas",
                             "--roster", str(roster), "--out", str(tmp_path / "canvas.csv")],
                            capture_output=True, text=True)
    assert result.returncode == 3, result.stdout + result.stderr  # crashing is graded but not in the roster
    assert (tmp_path / "canvas.csv").read_text().splitlines() == [
        "Student,ID,SIS User ID,SIS Login ID,Section,Vectors (777)", "    Points Possible,,,,,3.00",
        '"Right, Ann",11,S1,right,A,3.0', '"Wrong, Bo",12,S2,wrong,A,0.0', '"Later, Cy",13,S3,later,A,']
    assert "NOT IN THE ROSTER: 1 graded student, whose scores are not in canvas.csv: crashing." in result.stdout
