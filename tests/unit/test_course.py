"""The course layout and assignment loading, on the shipped course and the example course."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader_tests.puzzle1.checks import GPT2, GPT_NEO
from interp_course.course import CHECKOUT, Course
from interp_course.judging.assignment import load_assignment
from interp_course.course import locate

EXAMPLE = Path(__file__).resolve().parents[1] / "example_course"


def test_layout_of_the_shipped_course():
    course = Course()
    assert course.root == CHECKOUT
    assert course.assignments() == ["puzzle1"] and course.released_assignments() == ["puzzle1"]
    assert course.notebooks("puzzle1") == ["puzzle1"]
    assert course.grader_tests("puzzle1") == CHECKOUT / "grader_tests" / "puzzle1"
    assert course.corpus("puzzle1") == CHECKOUT / "grader_tests" / "puzzle1" / "submissions"
    assert course.db_url == f"sqlite:///{CHECKOUT / 'gradebook' / 'gradebook.db'}"


def test_puzzle1_declares_its_models():
    assert load_assignment(Course(), "puzzle1").models == (GPT_NEO, GPT2)


def test_an_assignment_without_models_loads_nothing():
    assignment = load_assignment(Course(EXAMPLE), "vectors")
    assert assignment.models == () and assignment.context() == {}
    assert list(assignment.checks) == ["test_cosine"]
    assert set(assignment.inputs("test_cosine")) == {"cosine/orthogonal", "cosine/parallel", "cosine/opposite",
                                                      "cosine/general"}


def test_locate_finds_course_and_assignment_from_a_notebook_folder():
    course, name = locate(EXAMPLE / "source" / "vectors")
    assert (course.root, name) == (EXAMPLE, "vectors")
    with pytest.raises(LookupError):
        locate(EXAMPLE)
