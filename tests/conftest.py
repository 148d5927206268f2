"""Shared fixtures: real nbgrader courses, graded once per test session.

Grading is the slow part (a sandboxed kernel per submission), so a whole corpus is submitted and
graded in one `nbgrader autograde` batch, as an instructor would, in a scratch copy of the
course; the tests then read its gradebook, feedback and grades.csv.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from interp_course import corpus
from interp_course.cli import nbgrader_env
from interp_course.course import CHECKOUT, Course

PUZZLE1 = "puzzle1"


def run_nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbgrader", *args, "--log-level=ERROR"], cwd=course,
                          env=nbgrader_env(), capture_output=True, text=True)


@dataclass
class GradedCourse:
    root: Path
    assignment: str
    autograde: subprocess.CompletedProcess
    seconds: float

    @property
    def notebook(self) -> str:
        return corpus.notebook_name(Course(self.root), self.assignment)

    def scores(self, student: str) -> dict[str, float]:
        """Per-cell auto scores from the real SQLite gradebook."""
        from nbgrader.api import Gradebook

        with Gradebook(Course(self.root).db_url) as gb:
            notebook = gb.find_submission_notebook(self.notebook, self.assignment, student)
            return {g.name: g.auto_score for g in notebook.grades}

    def feedback(self, student: str) -> str:
        return (self.root / "feedback" / student / self.assignment / f"{self.notebook}.html").read_text()

    def grades_csv(self) -> list[dict]:
        with open(self.root / "grades.csv", newline="") as f:
            return list(csv.DictReader(f))


def make_course(dest: Path, content_root: Path = CHECKOUT, assignments=(PUZZLE1,)) -> Path:
    """A scratch course: the engine's config plus the assignments' content; nbgrader state empty."""
    dest.mkdir(parents=True, exist_ok=True)
    config = (CHECKOUT / "nbgrader_config.py").read_text()
    # The corpus's runaway cells need only hit a timeout, not the course's generous one.
    (dest / "nbgrader_config.py").write_text(config + "\nc.Execute.timeout = 60\n")
    content = Course(content_root)
    for a in assignments:
        shutil.copytree(content.source(a), dest / "source" / a)
        shutil.copytree(content.solutions(a), dest / "solutions" / a)
        shutil.copytree(content.grader_tests(a), dest / "grader_tests" / a,
                        ignore=shutil.ignore_patterns("submissions", "__pycache__"))
    return dest


def submit(course: Path, assignment: str, names: list[str], corpus_dir: Path) -> None:
    notebook = corpus.notebook_name(Course(course), assignment)
    for name in names:
        target = course / "submitted" / name / assignment / f"{notebook}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus_dir / f"{name}.ipynb", target)


def grade_all(course: Path, assignment: str = PUZZLE1) -> GradedCourse:
    start = time.perf_counter()
    autograde = run_nbgrader(course, "autograde", assignment, "--create", "--force")
    seconds = time.perf_counter() - start
    for step in (["generate_feedback", assignment, "--force"], ["export", "--to", str(course / "grades.csv")]):
        result = run_nbgrader(course, *step)
        assert result.returncode == 0, result.stderr[-3000:]
    return GradedCourse(course, assignment, autograde, seconds)


@pytest.fixture(scope="session")
def released_course(tmp_path_factory) -> Path:
    course = make_course(tmp_path_factory.mktemp("course"))
    result = run_nbgrader(course, "generate_assignment", PUZZLE1, "--force")
    assert result.returncode == 0, result.stderr[-3000:]
    return course


@pytest.fixture(scope="session")
def graded_course(released_course) -> GradedCourse:
    """Every Puzzle 1 corpus submission, graded in one batch through the real `nbgrader autograde`."""
    submissions = corpus.load(Course(), PUZZLE1).SUBMISSIONS
    submit(released_course, PUZZLE1, [s.name for s in submissions], Course().corpus(PUZZLE1))
    graded = grade_all(released_course)
    n = len(submissions)
    print(f"\nautograded {n} submissions in {graded.seconds:.0f} s ({graded.seconds / n:.1f} s each)")
    return graded
