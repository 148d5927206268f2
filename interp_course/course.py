"""The course layout: the one place that says where everything is, after nbgrader's CourseDirectory.

An assignment is content only, in per-assignment folders of the course root::

    source/<a>/<notebook>.ipynb       the instructor's notebook (solutions, hidden tests, rubric)
    release/<a>/                      the student version, made by `nbgrader generate_assignment`
    solutions/<a>/__init__.py         reference implementations the checks compare against
    grader_tests/<a>/checks.py        the hidden checks: CHECKS and the MODELS they need
    grader_tests/<a>/corpus.py        example submissions with the scores they must get
    grader_tests/<a>/submissions/     those submissions as notebooks (`make corpus`)

and nbgrader's working state: submitted/, autograded/, feedback/, gradebook/gradebook.db,
grades.csv, and gradebook/runs/ (kept sandbox runs, for regrading without a kernel). ``make release`` also writes course-manifest.json, the hashes that grading checks the
instructor's files against (``interp_course.security.manifest``).
The grading engine (``interp_course``) never names an assignment; it reads them from here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

COURSE_ID = "mech-interp-puzzles"


# The checkout this package is installed from: the default course root, and where the
# installation's own state lives (the venv, the chosen model source, the stand-in cache).
CHECKOUT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Course:
    root: Path = CHECKOUT

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root).resolve())

    @classmethod
    def from_config(cls, config) -> "Course":
        """The course an nbgrader process works on (``c.CourseDirectory.root``)."""
        from nbgrader.coursedir import CourseDirectory

        return cls(Path(CourseDirectory(config=config).root))

    # --- content, per assignment ---------------------------------------------------------
    def source(self, assignment: str) -> Path:
        return self.root / "source" / assignment

    def release(self, assignment: str) -> Path:
        return self.root / "release" / assignment

    def solutions(self, assignment: str) -> Path:
        return self.root / "solutions" / assignment

    def grader_tests(self, assignment: str) -> Path:
        return self.root / "grader_tests" / assignment

    def corpus(self, assignment: str) -> Path:
        return self.grader_tests(assignment) / "submissions"

    def notebooks(self, assignment: str) -> list[str]:
        """Notebook names (without .ipynb) of an assignment, from its source folder."""
        return sorted(p.stem for p in self.source(assignment).glob("*.ipynb"))

    def assignments(self) -> list[str]:
        """Every assignment with a source notebook."""
        folder = self.root / "source"
        return sorted(p.name for p in folder.iterdir() if any(p.glob("*.ipynb"))) if folder.is_dir() else []

    def released_assignments(self) -> list[str]:
        folder = self.root / "release"
        return sorted(p.name for p in folder.iterdir() if any(p.glob("*.ipynb"))) if folder.is_dir() else []

    # --- nbgrader's working state ---------------------------------------------------------
    @property
    def submitted(self) -> Path:
        return self.root / "submitted"

    @property
    def autograded(self) -> Path:
        return self.root / "autograded"

    @property
    def feedback(self) -> Path:
        return self.root / "feedback"

    @property
    def gradebook(self) -> Path:
        # In a folder of its own: SQLite writes its journal next to the database, and the grader's
        # account may write there but never in the course root (where nbgrader_config.py lives).
        return self.root / "gradebook" / "gradebook.db"

    @property
    def run_cache(self) -> Path:
        """Kept runs of the sandbox (``interp_course.grading.run_cache``), written by the grading account."""
        return self.gradebook.parent / "runs"

    @property
    def manifest(self) -> Path:
        return self.root / "course-manifest.json"

    def grader_state(self) -> list[Path]:
        """The folders the grading account writes; everything else in the course is read-only to it."""
        return [self.autograded, self.feedback, self.gradebook.parent]

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.gradebook}"

    @property
    def grades_csv(self) -> Path:
        return self.root / "grades.csv"

    @property
    def grades_by_question_csv(self) -> Path:
        """Per-question scores, written next to grades.csv by the course's grade command."""
        return self.root / "grades_by_question.csv"

    @property
    def points_possible_csv(self) -> Path:
        """Each question's maximum, beside grades_by_question.csv (which holds students only)."""
        return self.root / "points_possible.csv"

    def make_importable(self) -> None:
        """Put the course root on sys.path, so ``grader_tests.<a>`` and ``solutions.<a>`` import.

        ``grader_tests`` and ``solutions`` are namespace packages (no ``__init__.py``), so a
        process that has seen two course roots finds each assignment in its own course.

        Only grader processes do this: solutions/ and grader_tests/ are not installed, so a
        sandboxed student kernel, which sees the installed package, cannot import them.
        """
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))


def locate(folder: Path) -> tuple[Course, str]:
    """The course and assignment of a notebook folder such as ``<root>/source/<a>``."""
    folder = folder.resolve()
    for parent in [folder, *folder.parents]:
        if parent.parent.name == "source" and (parent.parent.parent / "grader_tests").is_dir():
            return Course(parent.parent.parent), parent.name
    raise LookupError(f"{folder} is not inside <course>/source/<assignment>/")
