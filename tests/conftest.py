"""Shared fixtures: one real nbgrader course, graded once per test session.

Grading is the slow part (a sandboxed kernel per submission), so the whole corpus is submitted
and graded in one `nbgrader autograde` batch, as an instructor would, in a scratch copy of the
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader_tests.corpus import OUT as CORPUS_DIR  # noqa: E402
from grader_tests.corpus import SUBMISSIONS  # noqa: E402
from interp_course.cli import nbgrader_env  # noqa: E402

ASSIGNMENT = NOTEBOOK = "puzzle1"


def run_nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbgrader", *args, "--log-level=ERROR"], cwd=course,
                          env=nbgrader_env(), capture_output=True, text=True)


@dataclass
class GradedCourse:
    root: Path
    autograde: subprocess.CompletedProcess
    seconds: float

    def scores(self, student: str) -> dict[str, float]:
        """Per-cell auto scores from the real SQLite gradebook."""
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{self.root / 'gradebook.db'}") as gb:
            notebook = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student)
            return {g.name: g.auto_score for g in notebook.grades}

    def feedback(self, student: str) -> str:
        return (self.root / "feedback" / student / ASSIGNMENT / f"{NOTEBOOK}.html").read_text()

    def grades_csv(self) -> list[dict]:
        with open(self.root / "grades.csv", newline="") as f:
            return list(csv.DictReader(f))


def make_course(dest: Path) -> Path:
    """A scratch copy of the course: config, source, hidden checks; nbgrader state starts empty."""
    dest.mkdir(parents=True, exist_ok=True)
    config = (ROOT / "nbgrader_config.py").read_text()
    # The corpus's runaway cells need only hit a timeout, not the course's generous one.
    (dest / "nbgrader_config.py").write_text(config + "\nc.Execute.timeout = 60\n")
    shutil.copytree(ROOT / "source", dest / "source")
    shutil.copytree(ROOT / "grader_tests", dest / "grader_tests", ignore=shutil.ignore_patterns("submissions"))
    shutil.copytree(ROOT / "solutions", dest / "solutions")
    return dest


def submit(course: Path, names: list[str]) -> None:
    for name in names:
        target = course / "submitted" / name / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS_DIR / f"{name}.ipynb", target)


def grade_all(course: Path) -> GradedCourse:
    start = time.perf_counter()
    autograde = run_nbgrader(course, "autograde", ASSIGNMENT, "--create", "--force")
    seconds = time.perf_counter() - start
    for step in (["generate_feedback", ASSIGNMENT, "--force"], ["export", "--to", str(course / "grades.csv")]):
        result = run_nbgrader(course, *step)
        assert result.returncode == 0, result.stderr[-3000:]
    return GradedCourse(course, autograde, seconds)


@pytest.fixture(scope="session")
def released_course(tmp_path_factory) -> Path:
    course = make_course(tmp_path_factory.mktemp("course"))
    result = run_nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    assert result.returncode == 0, result.stderr[-3000:]
    return course


@pytest.fixture(scope="session")
def graded_course(released_course) -> GradedCourse:
    """Every corpus submission, graded in one batch through the real `nbgrader autograde`."""
    submit(released_course, [s.name for s in SUBMISSIONS])
    graded = grade_all(released_course)
    n = len(SUBMISSIONS)
    print(f"\nautograded {n} submissions in {graded.seconds:.0f} s ({graded.seconds / n:.1f} s each)")
    return graded
