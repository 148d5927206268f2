"""Submissions are rebuilt on the released notebook's skeleton before grading."""

from __future__ import annotations

import copy

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from interp_course.preprocessors.restore_structure import restore_structure


def cell(kind, gid, source, **meta):
    make = new_code_cell if kind == "code" else new_markdown_cell
    c = make(source)
    c.metadata["nbgrader"] = {"grade_id": gid, "schema_version": 3, "grade": False, "solution": False,
                              "locked": True, **meta}
    return c


RELEASE = new_notebook(cells=[
    cell("markdown", "intro", "# Intro"),
    cell("code", "answer", "# YOUR CODE HERE", solution=True, locked=False),
    cell("code", "test_answer", "assert answer", grade=True, points=2),
])


def sources(nb_cells):
    return [(c.metadata.get("nbgrader", {}).get("grade_id"), c.cell_type, c.source) for c in nb_cells]


def submission(edit):
    nb = copy.deepcopy(RELEASE)
    nb.cells[1].source = "answer = 42"
    edit(nb)
    return nb


def test_untouched_submission_keeps_the_answer():
    assert sources(restore_structure(submission(lambda nb: None), RELEASE)) == [
        ("intro", "markdown", "# Intro"), ("answer", "code", "answer = 42"), ("test_answer", "code", "assert answer")]


def test_deleted_test_cell_is_restored_and_deleted_answer_becomes_the_stub():
    restored = restore_structure(submission(lambda nb: nb.cells.pop(2)), RELEASE)
    assert [gid for gid, _, _ in sources(restored)] == ["intro", "answer", "test_answer"]
    restored = restore_structure(submission(lambda nb: nb.cells.pop(1)), RELEASE)
    assert sources(restored)[1] == ("answer", "code", "# YOUR CODE HERE")


def test_duplicates_keep_the_first_copy_and_retyped_cells_get_their_type_back():
    def edit(nb):
        dup = copy.deepcopy(nb.cells[1])
        dup.source = "answer = 0"
        nb.cells.insert(2, dup)
        nb.cells[3].cell_type = "markdown"

    assert sources(restore_structure(submission(edit), RELEASE))[1:] == [
        ("answer", "code", "answer = 42"), ("test_answer", "code", "assert answer")]


def test_student_cells_stay_after_the_cell_they_followed_and_cannot_claim_points():
    def edit(nb):
        extra = new_code_cell("print('scratch')")
        extra.metadata["nbgrader"] = {"grade_id": "free", "grade": True, "points": 1000}
        nb.cells.insert(2, extra)
        nb.cells[1].metadata["nbgrader"]["points"] = 50  # edited metadata of a real cell

    restored = restore_structure(submission(edit), RELEASE)
    assert sources(restored)[2] == (None, "code", "print('scratch')")
    assert "points" not in restored[1].metadata["nbgrader"] and restored[3].metadata["nbgrader"]["points"] == 2


def test_reordered_cells_go_back_to_release_order():
    restored = restore_structure(submission(lambda nb: nb.cells.reverse()), RELEASE)
    assert [gid for gid, _, _ in sources(restored) if gid] == ["intro", "answer", "test_answer"]
