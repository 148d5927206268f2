"""The rubric in front of the TA in formgrader, never in front of the student.

An assignment keeps the rubric of each hand-graded cell in one place: that cell's solution region
in ``source/<a>/<notebook>.ipynb`` (model answer, rubric, examples). ``generate_assignment``
clears it from the release. ``ShowRubric`` (an autograde step) copies it from the source into the
autograded notebook, as a read-only markdown cell right after the student's answer. On formgrader's
manual-grading page ``RubricBesideScore`` (a step of the page only, nothing is saved) moves it into
the answer's own panel, so the TA reads it beside the answer, under its score box
(``interp_course/templates/formgrader``). ``HideRubric`` (the first feedback step) removes it, so
``generate_feedback`` never shows it; the guard refuses to grade without it.

The inserted cell carries no nbgrader metadata: it is not a grade cell, so the gradebook, the
cell checks and the scores are unchanged. It is recognised by ``RUBRIC_KEY`` in its metadata; a
student cell claiming that key loses the claim (it stays, as the student's own text). An
assignment without hand-graded cells, or whose hand-graded cells have no solution region, gets
no rubric cells.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade, is_solution, is_task
from traitlets import Bool, List

from interp_course.course import Course

RUBRIC_KEY = "interp_course_rubric"  # cell metadata: the grade_id the rubric belongs to
# Set on formgrader's page only (RubricBesideScore, in memory): an answer's rubric, and its mark.
RUBRIC_BESIDE, HAND_GRADED = "interp_course_rubric_beside", "interp_course_hand_graded"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def is_hand_graded(cell) -> bool:
    """A cell a TA scores in formgrader: a graded answer (solution and grade) or a task."""
    return (is_grade(cell) and is_solution(cell)) or is_task(cell)


def solution_region(cell) -> str:
    """The instructor's text that generate_assignment removes from a hand-graded cell."""
    lines = cell.source.splitlines()
    marked = [i for i, line in enumerate(lines) if line.strip() in (BEGIN, END)]
    if len(marked) >= 2:
        body = "\n".join(lines[marked[0] + 1:marked[-1]])
    elif cell.cell_type == "markdown" and is_solution(cell):
        body = cell.source  # a markdown answer cell is replaced whole, markers or not
    else:
        return ""
    body = body.strip()
    return f"```python\n{body}\n```" if body and cell.cell_type == "code" else body


def rubrics(source_notebook: Path) -> dict[str, tuple[float, str]]:
    """{grade_id: (points, rubric text)} for every hand-graded cell of a source notebook."""
    nb = nbformat.read(source_notebook, as_version=4)
    found = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if is_hand_graded(cell) and meta.get("grade_id") and (text := solution_region(cell)):
            found[meta["grade_id"]] = (float(meta.get("points", 0)), text)
    return found


def rubric_cell(grade_id: str, points: float, text: str) -> nbformat.NotebookNode:
    heading = (f"**Rubric for the TA: `{grade_id}` ({points:g} points).** "
               "*From the source notebook; shown in formgrader only, never in the student's feedback.*")
    cell = nbformat.v4.new_markdown_cell(f"{heading}\n\n---\n\n{text}\n\n---",
                                         metadata={RUBRIC_KEY: grade_id, "editable": False, "deletable": False})
    cell.id = f"rubric-{grade_id}"[:64]
    return cell


def is_rubric(cell) -> bool:
    return RUBRIC_KEY in cell.get("metadata", {})


class ShowRubric(NbGraderPreprocessor):
    """Autograde: insert each hand-graded cell's rubric right after the student's answer."""

    def preprocess(self, nb, resources):
        for cell in nb.cells:  # only this step writes the key: a student's claim is dropped
            cell.get("metadata", {}).pop(RUBRIC_KEY, None)
        info = resources["nbgrader"]
        source = Course.from_config(self.config).source(info["assignment"]) / f"{info['notebook']}.ipynb"
        found = rubrics(source) if source.is_file() else {}
        taken = {cell.get("id") for cell in nb.cells}
        cells = []
        for cell in nb.cells:
            cells.append(cell)
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if is_hand_graded(cell) and grade_id in found:
                rubric = rubric_cell(grade_id, *found[grade_id])
                base, n = rubric.id[:56], 2
                while rubric.id in taken:  # cell ids are unique within a notebook
                    rubric.id, n = f"{base}-{n}", n + 1
                taken.add(rubric.id)
                cells.append(rubric)
        nb.cells = cells
        return nb, resources


class HideRubric(NbGraderPreprocessor):
    """Feedback: remove the rubric cells ShowRubric inserted."""

    # nbgrader's base class makes nbconvert's display_data_priority unconfigurable, and the HTML
    # exporter configures it for every preprocessor: without this, traitlets warns in the log.
    display_data_priority = List().tag(config=True)

    def preprocess(self, nb, resources):
        nb.cells = [cell for cell in nb.cells if not is_rubric(cell)]
        return nb, resources


class RubricBesideScore(Preprocessor):
    """Formgrader's page: each rubric cell goes into the panel of the answer it grades, beside the
    answer and under its score box, and every answer graded by hand is marked, for the page's links
    to them (``interp_course/templates/formgrader/interp_formgrade.html.j2``). A rubric cell is
    moved only from right under its answer (the same grade_id), where ShowRubric put it; any other
    stays a cell of its own. Runs on the page as it is rendered, after ``SanitizeSubmission``;
    nothing is saved, and what a student's cell carries under these keys is dropped first."""

    enabled = Bool(True, help="Listed as a preprocessor, it should run.").tag(config=True)

    def preprocess(self, nb, resources):
        cells = []
        for cell in nb.cells:
            meta = cell.setdefault("metadata", nbformat.NotebookNode())
            meta.pop(RUBRIC_BESIDE, None)
            meta.pop(HAND_GRADED, None)
            above = cells[-1] if cells else None
            if (is_rubric(cell) and cell.cell_type == "markdown" and above is not None and is_hand_graded(above)
                    and above.metadata.get("nbgrader", {}).get("grade_id") == meta[RUBRIC_KEY]
                    and RUBRIC_BESIDE not in above.metadata):
                above.metadata[RUBRIC_BESIDE] = cell.source if isinstance(cell.source, str) else "".join(cell.source)
                continue
            if is_hand_graded(cell):
                meta[HAND_GRADED] = True
            cells.append(cell)
        nb.cells = cells
        return nb, resources
