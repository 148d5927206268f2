"""Example submissions that prove an assignment grades right, and the builder that writes them.

Each assignment's ``grader_tests/<a>/corpus.py`` lists its ``SUBMISSIONS``: the released notebook
with some cells answered, described once. ``answers`` maps a solution cell's grade_id to the
source a student wrote (cells not named keep the reference answer from the source notebook, or
the release stub when ``base="blank"``); ``expected`` maps each test cell whose score differs
from the base to its points (``"*"``: every test cell); ``feedback`` lists phrases the student's
feedback must contain. It may also define ``EXTRA_ANSWERS`` for hand-graded cells whose source
notebook holds a rubric rather than an answer. ``python -m interp_course corpus`` writes
``grader_tests/<a>/submissions/<name>.ipynb``; a test fails when those files are stale.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

from interp_course.course import Course


@dataclass
class Submission:
    name: str
    about: str
    answers: dict[str, str] = field(default_factory=dict)
    expected: dict[str, float] = field(default_factory=dict)
    feedback: list[str] = field(default_factory=list)
    base: str = "reference"  # or "blank": the release notebook untouched
    edit: Callable | None = None  # structural change to the notebook (cheats and faults)
    group: str = "mistake"  # demo | mistake | correct | cheat | fault
    manual: dict[str, float] = field(default_factory=dict)  # what a TA gives the hand-graded cells

    def expected_scores(self, max_points: dict[str, float]) -> dict[str, float]:
        """The auto score every test cell must get, given each test cell's maximum."""
        scores = {gid: 0.0 if self.base == "blank" else points for gid, points in max_points.items()}
        for gid, points in self.expected.items():
            if gid == "*":
                scores = {g: points for g in scores}
            else:
                scores[gid] = points
        return scores


def here(module_file: str) -> tuple[Course, str]:
    """(course, assignment) of a ``grader_tests/<a>/corpus.py`` file."""
    path = Path(module_file).resolve()
    return Course(path.parents[2]), path.parent.name


def notebook_name(course: Course, assignment: str) -> str:
    """The assignment's notebook: a corpus covers assignments of exactly one notebook."""
    names = course.notebooks(assignment)
    if len(names) != 1:
        raise ValueError(f"source/{assignment}/ has {len(names)} notebooks; a corpus needs exactly one")
    return names[0]


def _solution_body(source: str) -> str:
    """A source solution cell with its BEGIN/END SOLUTION markers removed."""
    return "\n".join(line for line in source.splitlines() if "### BEGIN SOLUTION" not in line
                     and "### END SOLUTION" not in line)


def reference_answers(course: Course, assignment: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    nb = nbformat.read(course.source(assignment) / f"{notebook_name(course, assignment)}.ipynb", as_version=4)
    answers = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            answers[meta["grade_id"]] = _solution_body(cell.source)
    answers.update(extra or {})
    return answers


def build(submission: Submission, release, reference: dict[str, str]):
    nb = copy.deepcopy(release)
    answers = {} if submission.base == "blank" else dict(reference)
    answers.update(submission.answers)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and gid in answers:
            cell.source = answers[gid]
    if submission.edit:
        submission.edit(nb)
    return nb


# --- helpers for writing submissions --------------------------------------------------------


def student_cell(source: str, cell_type: str = "code"):
    """A cell the student added, with an id derived from its source so the corpus is reproducible."""
    make = nbformat.v4.new_code_cell if cell_type == "code" else nbformat.v4.new_markdown_cell
    cell = make(source)
    cell["id"] = "student-" + hashlib.sha1(source.encode()).hexdigest()[:12]
    return cell


def fn(name: str, body: str, args: str = "W: torch.Tensor", returns: str = "torch.Tensor") -> str:
    """A student's function cell: ``def name(args) -> returns:`` with an indented body."""
    body = "\n".join("    " + line if line else "" for line in body.strip("\n").splitlines())
    return f"def {name}({args}) -> {returns}:\n{body}\n"


def cells(nb, grade_id: str) -> list:
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]


def cell_after(grade_id: str, source: str, cell_type: str = "code") -> Callable:
    """An edit that puts a student's own extra cell right after the cell ``grade_id``."""
    def edit(nb):
        nb.cells.insert(nb.cells.index(cells(nb, grade_id)[0]) + 1, student_cell(source, cell_type))
    return edit


# --- an assignment's corpus -----------------------------------------------------------------


def load(course: Course, assignment: str):
    """The assignment's ``grader_tests/<a>/corpus.py`` module."""
    course.make_importable()
    return importlib.import_module(f"grader_tests.{assignment}.corpus")


def build_all(course: Course, assignment: str) -> dict[str, nbformat.NotebookNode]:
    module = load(course, assignment)
    name = notebook_name(course, assignment)
    release = nbformat.read(course.release(assignment) / f"{name}.ipynb", as_version=4)
    reference = reference_answers(course, assignment, getattr(module, "EXTRA_ANSWERS", None))
    return {s.name: build(s, release, reference) for s in module.SUBMISSIONS}


def write_all(course: Course, assignment: str) -> list[Path]:
    out = course.corpus(assignment)
    out.mkdir(exist_ok=True)
    for stale in out.glob("*.ipynb"):
        stale.unlink()
    written = []
    for name, nb in build_all(course, assignment).items():
        nbformat.write(nb, out / f"{name}.ipynb")
        written.append(out / f"{name}.ipynb")
    return written
