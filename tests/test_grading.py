"""The grader gives the right score for the right reason: the whole corpus, graded for real.

Each submission in grader_tests/corpus.py states the points every test cell must get and the
phrases its feedback must contain; here they are checked against the gradebook and the
feedback HTML that real `nbgrader autograde` / `generate_feedback` produced.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from conftest import CORPUS_DIR, ROOT, SUBMISSIONS, GradedCourse
from grader_tests.checks import CHECKS

SOURCE = nbformat.read(ROOT / "source" / "puzzle1" / "puzzle1.ipynb", as_version=4)
MAX_POINTS = {
    cell.metadata["nbgrader"]["grade_id"]: float(cell.metadata["nbgrader"]["points"])
    for cell in SOURCE.cells
    if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code"
}


def expected_scores(submission) -> dict[str, float]:
    base = 0.0 if submission.base == "blank" else None
    scores = {gid: (MAX_POINTS[gid] if base is None else base) for gid in MAX_POINTS}
    for gid, points in submission.expected.items():
        if gid == "*":
            scores = {g: points for g in scores}
        else:
            scores[gid] = points
    return scores


def visible_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'").replace("&quot;", '"') \
        .replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@pytest.mark.parametrize("submission", SUBMISSIONS, ids=[s.name for s in SUBMISSIONS])
def test_scores_and_feedback(graded_course: GradedCourse, submission):
    scores = graded_course.scores(submission.name)
    got = {gid: scores.get(gid) for gid in MAX_POINTS}
    assert got == expected_scores(submission), submission.about
    text = visible_text(graded_course.feedback(submission.name))
    for phrase in submission.feedback:
        assert phrase in text, f"feedback for {submission.name} lacks {phrase!r}"


def test_every_test_cell_has_a_check_worth_its_points():
    assert {gid: check.points for gid, check in CHECKS.items()} == MAX_POINTS


def test_batch_finished_and_every_submission_is_in_grades_csv(graded_course: GradedCourse):
    rows = {r["student_id"]: r for r in graded_course.grades_csv()}
    assert sorted(rows) == sorted(s.name for s in SUBMISSIONS)
    assert "Removing failed assignment" not in graded_course.autograde.stderr


def test_feedback_hides_grader_internals(graded_course: GradedCourse):
    # Hidden-test source, paths into the grader (as a traceback through it would show), answer keys.
    secrets = ["BEGIN HIDDEN TESTS", "hand_in(", "grader_tests", "interp_course/", "interp_course.handin",
               "CAUSE_ANSWER", "import solutions"]
    for submission in SUBMISSIONS:
        html = graded_course.feedback(submission.name)
        # A cheat's own code may name these; only what the student did not write counts as a leak.
        written = (CORPUS_DIR / f"{submission.name}.ipynb").read_text()
        leaked = [s for s in secrets if s in html and s not in written]
        assert not leaked, f"{submission.name} feedback shows {leaked}"


def test_demo_students_score_as_the_readme_says(graded_course: GradedCourse):
    totals = {r["student_id"]: float(r["score"]) for r in graded_course.grades_csv()}
    assert totals["blank"] == 0
    # 18 points in all, 3 of them hand-graded: the autograder alone gives the full-marks notebook 15.
    assert totals["full-marks"] == sum(MAX_POINTS.values()) == 15


def test_regrading_the_whole_corpus_gives_identical_grades(graded_course: GradedCourse):
    """Determinism: a second `nbgrader autograde --force` of every submission changes nothing."""
    from conftest import grade_all

    first_csv = (graded_course.root / "grades.csv").read_text()
    first_cells = {s.name: graded_course.scores(s.name) for s in SUBMISSIONS}
    again = grade_all(graded_course.root)
    assert {s.name: again.scores(s.name) for s in SUBMISSIONS} == first_cells
    assert (again.root / "grades.csv").read_text() == first_csv


def test_no_submission_touched_another_and_no_process_outlived_grading(graded_course: GradedCourse):
    for submission in SUBMISSIONS:  # cheat-tamper-gradebook tried to overwrite them all
        path = graded_course.root / "submitted" / submission.name / "puzzle1" / "puzzle1.ipynb"
        assert path.read_bytes() == (CORPUS_DIR / f"{submission.name}.ipynb").read_bytes()
    # fault-processes-network-disk started a detached `sleep 1000`; it must have died with its sandbox.
    import subprocess

    ps = subprocess.run(["ps", "-eo", "stat,args"], capture_output=True, text=True).stdout.splitlines()
    alive = [line for line in ps if str(graded_course.root) in line and not line.startswith("Z")]
    alive += [line for line in ps if "sleep 1000" in line and not line.startswith("Z")]
    assert alive == []
