"""The committed, generated files match their sources, and every source notebook is well formed."""

from __future__ import annotations

import nbformat
import pytest
from nbgrader.nbgraderformat import MetadataValidator

from interp_course import corpus
from interp_course.course import Course
from interp_course.judging.assignment import load_assignment
from interp_course.judging.judge import graded_test_cells

COURSE = Course()
ASSIGNMENTS = COURSE.assignments()
PUZZLE1 = "puzzle1"


def test_puzzle1_is_the_assignment_shipped():
    assert ASSIGNMENTS == [PUZZLE1]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_has_no_solutions_or_hidden_tests(assignment):
    for path in COURSE.release(assignment).glob("*.ipynb"):
        text = path.read_text()
        for secret in ["BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "hand_in", "Rubric", "cause = \\\"C\\\""]:
            assert secret not in text


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_corpus_notebooks_are_generated_from_corpus_py(assignment):
    built = corpus.build_all(COURSE, assignment)
    for name, nb in built.items():
        committed = nbformat.read(COURSE.corpus(assignment) / f"{name}.ipynb", as_version=4)
        assert committed == nb, f"{name}.ipynb is stale: run `make corpus`"
    assert {p.stem for p in COURSE.corpus(assignment).glob("*.ipynb")} == set(built)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebook_is_committed_clean_and_valid(assignment):
    for path in COURSE.source(assignment).glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        MetadataValidator().validate_nb(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None
        ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
        assert len(ids) == len(set(ids)) == len(nb.cells), "every cell is tracked by nbgrader, once"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_test_cell_has_a_check_worth_its_points(assignment):
    checks = load_assignment(COURSE, assignment).checks
    for path in COURSE.source(assignment).glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        cells = {gid: float(nb.cells[i].metadata["nbgrader"]["points"]) for i, gid in graded_test_cells(nb)}
        assert {gid: checks[gid].points for gid in cells if gid in checks} == cells


def test_corpus_is_as_large_as_promised():
    groups = {}
    for s in corpus.load(COURSE, PUZZLE1).SUBMISSIONS:
        groups[s.group] = groups.get(s.group, 0) + 1
    assert groups["mistake"] >= 15 and groups["correct"] >= 8 and groups["demo"] >= 4
