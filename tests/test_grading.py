"""The grader gives the right score for the right reason: the whole Puzzle 1 corpus, graded for real.

Each submission in grader_tests/puzzle1/corpus.py states the points every test cell must get and the
phrases its feedback must contain; here they are checked against the gradebook and the
feedback HTML that real `nbgrader autograde` / `generate_feedback` produced.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import nbformat
import pytest

from conftest import PUZZLE1, GradedCourse, grade_all
from interp_course import corpus
from interp_course.course import Course
from interp_course.judging.judge import graded_test_cells

COURSE = Course()
SUBMISSIONS = corpus.load(COURSE, PUZZLE1).SUBMISSIONS
CORPUS_DIR = COURSE.corpus(PUZZLE1)
SOURCE = nbformat.read(COURSE.source(PUZZLE1) / "puzzle1.ipynb", as_version=4)
MAX_POINTS = {gid: float(SOURCE.cells[i].metadata["nbgrader"]["points"]) for i, gid in graded_test_cells(SOURCE)}


def visible_text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


@pytest.mark.parametrize("submission", SUBMISSIONS, ids=[s.name for s in SUBMISSIONS])
def test_scores_and_feedback(graded_course: GradedCourse, submission):
    scores = graded_course.scores(submission.name)
    got = {gid: scores.get(gid) for gid in MAX_POINTS}
    assert got == submission.expected_scores(MAX_POINTS), submission.about
    text = visible_text(graded_course.feedback(submission.name))
    for phrase in submission.feedback:
        assert phrase in text, f"feedback for {submission.name} lacks {phrase!r}"


def test_release_is_what_generate_assignment_makes_from_source(released_course):
    fresh = json.loads((released_course / "release" / PUZZLE1 / "puzzle1.ipynb").read_text())
    committed = json.loads((COURSE.release(PUZZLE1) / "puzzle1.ipynb").read_text())
    assert committed == fresh, "release/ is stale: run `make release` and commit it"


def test_batch_finished_and_every_submission_is_in_grades_csv(graded_course: GradedCourse):
    rows = {r["student_id"]: r for r in graded_course.grades_csv()}
    assert sorted(rows) == sorted(s.name for s in SUBMISSIONS)
    assert "Removing failed assignment" not in graded_course.log


def test_feedback_hides_grader_internals(graded_course: GradedCourse):
    # Hidden-test source, paths into the grader (as a traceback through it would show), answer keys.
    secrets = ["BEGIN HIDDEN TESTS", "hand_in(", "grader_tests", "interp_course/", "interp_course.handin",
               "CAUSE_ANSWER", "import solutions", "from solutions", "Rubric", "Instructor notes", "Model answer"]
    for submission in SUBMISSIONS:
        html = graded_course.feedback(submission.name)
        # A cheat's own code may name these; only what the student did not write counts as a leak.
        written = (CORPUS_DIR / f"{submission.name}.ipynb").read_text()
        leaked = [s for s in secrets if s in html and s not in written]
        assert not leaked, f"{submission.name} feedback shows {leaked}"


def readme_demo_table() -> dict[str, tuple[float, float]]:
    """The README's `make demo` table: student -> (score, max score)."""
    text = (COURSE.root / "README.md").read_text()
    block = text.split("`make demo` ends with")[1].split("```")[1]
    rows = [line.split() for line in block.strip().splitlines()[1:]]
    return {name: (float(score), float(max_score)) for name, score, max_score in rows}


def test_demo_students_score_as_the_readme_says(graded_course: GradedCourse):
    """README's demo table = the autograded points here + the TA's scores the demo enters by hand."""
    rows = {r["student_id"]: r for r in graded_course.grades_csv()}
    by_hand = sum(float(c.metadata["nbgrader"]["points"]) for c in SOURCE.cells
                  if c.cell_type == "markdown" and c.metadata["nbgrader"].get("grade"))
    maximum = sum(MAX_POINTS.values()) + by_hand
    assert (sum(MAX_POINTS.values()), by_hand) == (18, 7)  # as the notebook's first cell and README say
    demo = {s.name: s for s in SUBMISSIONS if s.group == "demo"}
    table = readme_demo_table()
    assert set(table) == set(demo)
    for name, submission in demo.items():
        assert float(rows[name]["max_score"]) == maximum
        assert table[name] == (float(rows[name]["score"]) + sum(submission.manual.values()), maximum), name
    assert table["blank"][0] == 0 and table["full-marks"][0] == maximum


# Run again in full (a kernel each): the demo's students and one of each other kind. Every other
# submission is re-judged from its kept run. (The whole corpus again in kernels would double the
# suite's longest part; running the rest twice proves no more.)
REGRADED = {s.name for s in SUBMISSIONS if s.group == "demo"} | {
    "normalize-no-keepdim", "correct-einsum", "cheat-forge-hand-in", "fault-kernel-exit"}


def _kept_runs(course: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime for p in Course(course).run_cache.iterdir() if not p.name.startswith(".")}


def _autograded_times(course: Path) -> dict[str, float]:
    return {s.name: (course / "autograded" / s.name / PUZZLE1 / "puzzle1.ipynb").stat().st_mtime for s in SUBMISSIONS}


def test_regrading_gives_identical_grades(graded_course: GradedCourse):
    """Determinism: every submission re-judged from its kept run, and a few run again in a fresh
    kernel (`reuse_runs=False`, what `make grade NO_CACHE=1` does), give the same cells and grades.csv."""
    assert REGRADED <= {s.name for s in SUBMISSIONS}
    root = graded_course.root
    first_csv = (root / "grades.csv").read_text()
    first_cells = {s.name: graded_course.scores(s.name) for s in SUBMISSIONS}
    kept, written = _kept_runs(root), _autograded_times(root)
    assert kept

    # Scores and grades.csv are compared; feedback pages are the other tests' business.
    judged = grade_all(root)  # everything kept: no kernel starts
    assert judged.result.returncode == 0, judged.result.stdout[-3000:]
    assert "Running" not in judged.result.stdout, judged.result.stdout
    assert _kept_runs(root) == kept
    assert all(t > written[name] for name, t in _autograded_times(root).items())  # really judged again
    assert {s.name: judged.scores(s.name) for s in SUBMISSIONS} == first_cells
    assert (root / "grades.csv").read_text() == first_csv

    written = _autograded_times(root)
    again = grade_all(root, only=sorted(REGRADED), rerun=True)
    ran = re.search(r"Kept \d+ of (\d+) run", again.result.stdout)
    assert ran, again.result.stdout
    # Each notebook regraded ran once more and replaced its kept run (identical notebooks share one).
    assert int(ran[1]) == len({k for k, t in _kept_runs(root).items() if t > max(kept.values())}) >= 2
    for name in REGRADED:  # really run again, not left from the first run
        assert _autograded_times(root)[name] > written[name]
    assert {s.name: again.scores(s.name) for s in SUBMISSIONS} == first_cells
    assert (root / "grades.csv").read_text() == first_csv


def test_no_submission_touched_another_and_no_process_outlived_grading(graded_course: GradedCourse):
    for submission in SUBMISSIONS:  # cheat-tamper-gradebook tried to overwrite them all
        path = graded_course.root / "submitted" / submission.name / PUZZLE1 / "puzzle1.ipynb"
        assert path.read_bytes() == (CORPUS_DIR / f"{submission.name}.ipynb").read_bytes()
    # fault-processes-network-disk started a detached `sleep 1000`; it must have died with its sandbox.
    ps = subprocess.run(["ps", "-eo", "stat,args"], capture_output=True, text=True).stdout.splitlines()
    alive = [line for line in ps if str(graded_course.root) in line and not line.startswith("Z")]
    alive += [line for line in ps if "sleep 1000" in line and not line.startswith("Z")]
    assert alive == []
