"""The committed, generated files match their sources, and the source notebook is well formed."""

from __future__ import annotations

import json

import nbformat
from nbgrader.nbgraderformat import MetadataValidator

from conftest import ROOT
from grader_tests import corpus

SOURCE = ROOT / "source" / "puzzle1" / "puzzle1.ipynb"
RELEASE = ROOT / "release" / "puzzle1" / "puzzle1.ipynb"


def test_release_is_what_generate_assignment_makes_from_source(released_course):
    fresh = json.loads((released_course / "release" / "puzzle1" / "puzzle1.ipynb").read_text())
    committed = json.loads(RELEASE.read_text())
    assert committed == fresh, "release/ is stale: run `make release` and commit it"


def test_release_has_no_solutions_or_hidden_tests():
    text = RELEASE.read_text()
    for secret in ["BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "hand_in", "Rubric", "cause = \\\"B\\\""]:
        assert secret not in text


def test_corpus_notebooks_are_generated_from_corpus_py():
    release = nbformat.read(RELEASE, as_version=4)
    reference = corpus.reference_answers()
    for submission in corpus.SUBMISSIONS:
        built = corpus.build(submission, release, reference)
        committed = nbformat.read(corpus.OUT / f"{submission.name}.ipynb", as_version=4)
        assert committed == built, f"{submission.name}.ipynb is stale: run `make corpus`"
    names = {p.stem for p in corpus.OUT.glob("*.ipynb")}
    assert names == {s.name for s in corpus.SUBMISSIONS}


def test_source_notebook_is_committed_clean_and_valid():
    nb = nbformat.read(SOURCE, as_version=4)
    nbformat.validate(nb)
    MetadataValidator().validate_nb(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)) == len(nb.cells), "every cell is tracked by nbgrader, once"


def test_corpus_is_as_large_as_promised():
    groups = {}
    for s in corpus.SUBMISSIONS:
        groups[s.group] = groups.get(s.group, 0) + 1
    assert groups["mistake"] >= 15 and groups["correct"] >= 8 and groups["demo"] >= 4
