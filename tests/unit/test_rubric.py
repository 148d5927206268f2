"""The rubric is copied from the source notebook into the autograded copy for formgrader, and taken
out again for the feedback; the release never has it. Real notebooks of this checkout."""

from __future__ import annotations

import copy

import nbformat
from nbformat.v4 import new_markdown_cell
from nbgrader.preprocessors import CheckCellMetadata
from traitlets.config import Config

from interp_course.course import CHECKOUT, Course
from interp_course.preprocessors.rubric import RUBRIC_KEY, HideRubric, ShowRubric, is_rubric, rubrics

COURSE = Course(CHECKOUT)
HAND_GRADED = {"hypothesis": 1.0, "test_result": 1.0, "rules_out": 1.0, "explanation": 3.0, "gpt2_answer": 1.0}
RUBRIC_LINE = "**Rubric (3 points).**"  # in the explanation's solution region


def show(nb, root=CHECKOUT):
    config = Config()
    config.CourseDirectory.root = str(root)
    resources = {"nbgrader": {"assignment": "puzzle1", "notebook": "puzzle1", "student": "s"}}
    return ShowRubric(config=config).preprocess(nb, resources)[0]


def released():
    return nbformat.read(COURSE.release("puzzle1") / "puzzle1.ipynb", as_version=4)


def test_every_hand_graded_cell_of_puzzle1_has_its_rubric_and_nothing_else_does():
    found = rubrics(COURSE.source("puzzle1") / "puzzle1.ipynb")
    assert {gid: points for gid, (points, _) in found.items()} == HAND_GRADED
    assert RUBRIC_LINE in found["explanation"][1]
    assert "### BEGIN SOLUTION" not in found["explanation"][1]


def test_an_assignment_without_hand_graded_cells_has_no_rubric():
    assert rubrics(CHECKOUT / "tests/example_course/source/vectors/vectors.ipynb") == {}


def test_the_release_never_holds_the_rubric():
    text = (COURSE.release("puzzle1") / "puzzle1.ipynb").read_text()
    assert "Rubric (" not in text and RUBRIC_KEY not in text


def test_each_rubric_follows_its_answer_as_a_plain_markdown_cell():
    nb = show(released())
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    for gid, points in HAND_GRADED.items():
        rubric = nb.cells[ids.index(gid) + 1]
        assert is_rubric(rubric) and rubric.cell_type == "markdown" and "nbgrader" not in rubric.metadata
        assert f"Rubric for the TA: `{gid}` ({points:g} points)" in rubric.source
    assert RUBRIC_LINE in nb.cells[ids.index("explanation") + 1].source
    assert sum(map(is_rubric, nb.cells)) == len(HAND_GRADED)
    nbformat.validate(nb)  # unique, well-formed cell ids
    CheckCellMetadata().preprocess(copy.deepcopy(nb), {})  # nbgrader's own check of every cell


def test_feedback_gets_the_notebook_back_without_rubrics():
    nb = released()
    shown = show(copy.deepcopy(nb))
    hidden, _ = HideRubric().preprocess(shown, {})
    assert hidden.cells == nb.cells


def test_a_student_cell_cannot_pose_as_a_rubric(tmp_path):
    nb = released()
    forged = new_markdown_cell("Rubric: give this answer full marks", metadata={RUBRIC_KEY: "explanation"})
    forged.id = "rubric-explanation"  # also takes the id the real rubric would get
    at = 1 + [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells].index("explanation")
    nb.cells.insert(at, forged)
    shown = show(nb)
    after = 1 + [c.metadata.get("nbgrader", {}).get("grade_id") for c in shown.cells].index("explanation")
    real, student = shown.cells[after:after + 2]
    assert is_rubric(real) and RUBRIC_LINE in real.source and real.id != "rubric-explanation"
    assert not is_rubric(student) and student.source == forged.source  # stays, as the student's text
    nbformat.validate(shown)


def test_no_source_notebook_no_rubric(tmp_path):
    nb = released()
    assert show(copy.deepcopy(nb), root=tmp_path).cells == nb.cells
