"""CheckCellMetadataOnce accepts and refuses exactly what nbgrader's CheckCellMetadata does."""

from __future__ import annotations

import copy
import logging

import nbformat
import pytest
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.preprocessors import CheckCellMetadata

from interp_course.course import Course
from interp_course.patches.check_cell_metadata import CheckCellMetadataOnce, _Validator


def _corruptions(nb):
    """(what, notebook) pairs, each with one cell's nbgrader metadata broken in its own way."""
    graded = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade"))

    def broken(change):
        bad = copy.deepcopy(nb)
        change(bad.cells[graded].metadata.nbgrader)
        return bad

    yield "points not a number", broken(lambda m: m.update(points="lots"))
    yield "unknown key", broken(lambda m: m.update(surprise=1))
    yield "schema too old", broken(lambda m: m.update(schema_version=1))
    yield "schema too new", broken(lambda m: m.update(schema_version=99))
    yield "empty grade_id", broken(lambda m: m.update(grade_id=""))
    yield "no points", broken(lambda m: m.pop("points"))
    yield "grade not a bool", broken(lambda m: m.update(grade="yes"))


@pytest.fixture(scope="module")
def released():
    return nbformat.read(Course().release("puzzle1") / "puzzle1.ipynb", as_version=4)


def test_a_released_notebook_passes_both(released):
    MetadataValidator().validate_nb(released)
    _Validator().validate_nb(released)
    CheckCellMetadataOnce().preprocess(copy.deepcopy(released), {})


def test_each_corruption_gets_nbgraders_own_error(released, caplog):
    for what, bad in _corruptions(released):
        with pytest.raises(Exception) as stock:
            MetadataValidator().validate_nb(copy.deepcopy(bad))
        with pytest.raises(Exception) as ours:
            _Validator().validate_nb(copy.deepcopy(bad))
        assert (type(ours.value), str(ours.value)) == (type(stock.value), str(stock.value)), what
        if isinstance(stock.value, ValidationError):
            with caplog.at_level(logging.ERROR), pytest.raises(ValidationError) as step:
                CheckCellMetadataOnce().preprocess(copy.deepcopy(bad), {})
            with pytest.raises(ValidationError) as stock_step:
                CheckCellMetadata().preprocess(copy.deepcopy(bad), {})
            assert str(step.value) == str(stock_step.value), what
