"""Rescuing what students hand in: name matching, reading a notebook file, staging copies."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import nbformat
import pytest

from interp_course.course import Course
from interp_course.grading.staging import (
    MAX_NOTEBOOK_BYTES,
    match_notebooks,
    parse_notebook,
    read_bounded,
    stage_all,
)

CORPUS = Course().corpus("puzzle1")
FULL_MARKS = (CORPUS / "full-marks.ipynb").read_bytes()
WHERE = "submitted/ann/puzzle1/"


# --- which file is the attempt ---------------------------------------------------------------
def test_the_assignments_name_is_graded_as_is():
    assert match_notebooks(["puzzle1"], ["puzzle1"], WHERE) == ({"puzzle1": "puzzle1"}, [], None)


@pytest.mark.parametrize("name", ["puzzle1 (1)", "Copy of puzzle1", "puzzle1-final", "Untitled"])
def test_one_notebook_under_another_name_is_graded_and_flagged(name):
    chosen, notes, problem = match_notebooks(["puzzle1"], [name], WHERE)
    assert chosen == {"puzzle1": name} and problem is None
    assert notes == [f'graded "{name}.ipynb" as puzzle1.ipynb']


def test_several_candidates_are_reported_not_guessed():
    chosen, _, problem = match_notebooks(["puzzle1"], ["Copy of puzzle1", "puzzle1-final"], WHERE)
    assert chosen == {}
    assert '"Copy of puzzle1.ipynb", "puzzle1-final.ipynb"' in problem.reason
    assert "rename it puzzle1.ipynb in submitted/ann/puzzle1/" in problem.fix


def test_the_right_name_wins_and_the_others_are_mentioned():
    chosen, notes, problem = match_notebooks(["puzzle1"], ["puzzle1", "puzzle1 (1)"], WHERE)
    assert chosen == {"puzzle1": "puzzle1"} and problem is None
    assert notes == ['also handed in, not graded: "puzzle1 (1).ipynb"']


def test_no_notebook_is_left_to_the_caller_to_word():
    assert match_notebooks(["puzzle1"], [], WHERE) == ({}, [], None)


def test_several_notebooks_are_matched_by_name():
    chosen, notes, problem = match_notebooks(["part1", "part2"], ["part1", "Copy of Part_2"], WHERE)
    assert chosen == {"part1": "part1", "part2": "Copy of Part_2"} and problem is None
    chosen, notes, problem = match_notebooks(["part1", "part2"], ["part1", "notes"], WHERE)
    assert chosen == {"part1": "part1"} and "no part2.ipynb: scored 0 for it" in notes


# --- reading the file ------------------------------------------------------------------------
def test_a_whole_current_notebook_needs_no_change():
    notebook, notes, problem = parse_notebook(FULL_MARKS, "puzzle1.ipynb", "ann")
    assert problem is None and notes == [] and notebook.nbformat == 4


def test_an_nbformat_3_notebook_is_upgraded_with_its_code():
    original = nbformat.reads(FULL_MARKS.decode(), as_version=4)
    # convert() downgrades in place: give it its own copy
    old = nbformat.writes(nbformat.convert(nbformat.reads(FULL_MARKS.decode(), as_version=4), 3)).encode()
    notebook, notes, problem = parse_notebook(old, "puzzle1.ipynb", "ann")
    assert problem is None and notebook.nbformat == 4
    assert notes == ['"puzzle1.ipynb" is nbformat 3: graded a copy upgraded to nbformat 4']
    assert [c.source for c in notebook.cells] == [c.source for c in original.cells]
    assert [c.metadata.get("nbgrader") for c in notebook.cells] == [c.metadata.get("nbgrader") for c in original.cells]


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("puzzle1.ipynb", FULL_MARKS)
    return buffer.getvalue()


@pytest.mark.parametrize("data, reason, for_student", [
    (FULL_MARKS[:-500], f"is cut off after {len(FULL_MARKS) - 500:,} bytes", "interrupted"),
    (b"", "is empty", "it is empty"),
    (b"\n  \n", "is empty", "it is empty"),
    (_zip_bytes(), "is a zip archive", "Hand in the .ipynb file itself"),
    (b"<!DOCTYPE html><html>...</html>", "is an HTML page", "Save page as"),
    (b"\xff\xfe\x00garbage", "is not text", "not a text file"),
    (b'{"cells": [], "nbformat": 4,, "metadata": {}}', "is not valid JSON (line 1, column 29", "not valid notebook JSON"),
    (b'{"hello": "world"}', "is JSON but not a Jupyter notebook", "not a Jupyter notebook"),
    (b'{"nbformat": 5, "nbformat_minor": 0, "cells": [], "metadata": {}}', "is nbformat 5, newer", "newer"),
])
def test_unreadable_files_are_reported_with_words_for_the_student(data, reason, for_student):
    notebook, _, problem = parse_notebook(data, "puzzle1.ipynb", "ann")
    assert notebook is None
    assert problem.reason.startswith('"puzzle1.ipynb" ') and reason in problem.reason
    assert "ann" in problem.fix
    assert problem.for_student.startswith('Your file "puzzle1.ipynb" could not be graded') and for_student in problem.for_student


def test_a_byte_order_mark_is_read_through():
    notebook, _, problem = parse_notebook(b"\xef\xbb\xbf" + FULL_MARKS, "puzzle1.ipynb", "ann")
    assert problem is None and notebook.nbformat == 4


def test_read_bounded_follows_no_link_and_reads_no_fifo_or_giant(tmp_path):
    target = tmp_path / "real.ipynb"
    target.write_bytes(FULL_MARKS)
    assert read_bounded(target) == FULL_MARKS
    (tmp_path / "link.ipynb").symlink_to(target)
    os.mkfifo(tmp_path / "fifo.ipynb")
    for name, why in [("link.ipynb", "symbolic link"), ("fifo.ipynb", "not a regular file")]:
        with pytest.raises(Exception, match=why):
            read_bounded(tmp_path / name)
    with pytest.raises(Exception, match="more than the 100 bytes the grader reads"):
        read_bounded(target, limit=100)
    assert MAX_NOTEBOOK_BYTES >= 16 * 2**20


# --- staging a submitted/ folder -------------------------------------------------------------
def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_stage_all_copies_rescues_and_never_touches_submitted(tmp_path):
    submitted, staging = tmp_path / "submitted", tmp_path / "staged"
    files = {
        "ann/puzzle1/puzzle1.ipynb": FULL_MARKS,
        "ann/puzzle1/timestamp.txt": b"2025-01-01 10:00:00",
        "ann/puzzle1/data/extra.csv": b"a,b\n",
        "ann/puzzle1/.ipynb_checkpoints/puzzle1-checkpoint.ipynb": b"{}",
        "bo/puzzle1/puzzle1 (1).ipynb": FULL_MARKS,
        "cy/puzzle1/puzzle1.ipynb": FULL_MARKS[:-500],
        "di/puzzle1/notes.txt": b"forgot",
        "ed/puzzle2/puzzle2.ipynb": FULL_MARKS,  # another assignment: not this one's submission
    }
    for name, data in files.items():
        (submitted / name).parent.mkdir(parents=True, exist_ok=True)
        (submitted / name).write_bytes(data)
    (submitted / "ann/puzzle1/secret.txt").symlink_to("/etc/hostname")
    (submitted / ".hidden/puzzle1").mkdir(parents=True)
    before = _tree(submitted)

    result = {s.student: s for s in stage_all(submitted, "puzzle1", ["puzzle1"], staging)}

    assert _tree(submitted) == before
    assert sorted(result) == ["ann", "bo", "cy", "di"]
    assert (staging / "ann/puzzle1/puzzle1.ipynb").read_bytes() == FULL_MARKS
    assert (staging / "ann/puzzle1/timestamp.txt").read_bytes() == b"2025-01-01 10:00:00"
    assert (staging / "ann/puzzle1/data/extra.csv").exists()
    assert not (staging / "ann/puzzle1/secret.txt").exists()
    assert result["ann"].notes == ['did not copy "secret.txt" (it is a symbolic link, not a file)']
    assert (staging / "bo/puzzle1/puzzle1.ipynb").read_bytes() == FULL_MARKS
    assert not (staging / "bo/puzzle1/puzzle1 (1).ipynb").exists()
    assert result["bo"].files == {"puzzle1": "puzzle1 (1).ipynb"}
    assert "cut off" in result["cy"].problem.reason and not (staging / "cy").exists()
    assert result["di"].problem.reason == 'no notebook (.ipynb) in submitted/di/puzzle1/ (it holds "notes.txt")'


def test_an_upgraded_notebook_is_staged_as_nbformat_4(tmp_path):
    submitted = tmp_path / "submitted"
    (submitted / "ann/puzzle1").mkdir(parents=True)
    old = nbformat.writes(nbformat.convert(nbformat.reads(FULL_MARKS.decode(), as_version=4), 3))
    (submitted / "ann/puzzle1/puzzle1.ipynb").write_text(old)
    stage_all(submitted, "puzzle1", ["puzzle1"], tmp_path / "staged")
    staged = json.loads((tmp_path / "staged/ann/puzzle1/puzzle1.ipynb").read_text())
    assert staged["nbformat"] == 4
    assert (submitted / "ann/puzzle1/puzzle1.ipynb").read_text() == old


def test_an_unreadable_timestamp_is_left_out_and_said(tmp_path):
    submitted = tmp_path / "submitted"
    (submitted / "ann/puzzle1").mkdir(parents=True)
    (submitted / "ann/puzzle1/puzzle1.ipynb").write_bytes(FULL_MARKS)
    (submitted / "ann/puzzle1/timestamp.txt").write_text("yesterday-ish")
    (submission,) = stage_all(submitted, "puzzle1", ["puzzle1"], tmp_path / "staged")
    assert submission.problem is None and not (tmp_path / "staged/ann/puzzle1/timestamp.txt").exists()
    assert submission.notes == ['timestamp.txt is not a time ("yesterday-ish"): graded without a submission time, '
                                "so never late"]


def test_a_giant_notebook_is_not_read(tmp_path, monkeypatch):
    import interp_course.grading.staging as staging

    monkeypatch.setattr(staging, "MAX_NOTEBOOK_BYTES", 1000)
    submitted = tmp_path / "submitted"
    (submitted / "ann/puzzle1").mkdir(parents=True)
    (submitted / "ann/puzzle1/puzzle1.ipynb").write_bytes(FULL_MARKS)
    (submission,) = stage_all(submitted, "puzzle1", ["puzzle1"], tmp_path / "staged")
    assert f"is {len(FULL_MARKS):,} bytes, more than the 1,000 bytes the grader reads" in submission.problem.reason
    assert "Clear its outputs" in submission.problem.for_student
