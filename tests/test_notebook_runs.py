"""The notebook as students and instructors run it: a plain Jupyter kernel, no grader around it."""

from __future__ import annotations

import re
import time

import nbformat
import pytest
from nbclient import NotebookClient

from interp_course import models
from interp_course.course import Course
from interp_course.judging.judge import graded_test_cells

SOURCE = Course().source("puzzle1") / "puzzle1.ipynb"
RELEASE = Course().release("puzzle1") / "puzzle1.ipynb"


def run(nb, cwd, timeout=300):
    NotebookClient(nb, timeout=timeout, allow_errors=True, resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", "") + str(out.get("data", {}).get("text/plain", "")) + out.get("evalue", ""))
    return "".join(parts)


def test_source_notebook_runs_clean_and_passes_its_own_hidden_checks(monkeypatch):
    # Outside autograding, hidden cells judge in-process: an instructor's preview of the checks.
    for key, value in models.model_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    nb = run(nbformat.read(SOURCE, as_version=4), SOURCE.parent)
    errors = [(c.metadata["nbgrader"]["grade_id"], o.get("ename")) for c in nb.cells
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    text = "\n".join(outputs_text(c) for c in nb.cells)
    if models.read_settings().get("model_source") == "stand-ins":
        assert "STAND-IN" in text  # runs on stand-ins say so
    # Every graded test cell's preview verdict is at full marks.
    for index, grade_id in graded_test_cells(nb):
        points = nb.cells[index].metadata["nbgrader"]["points"]
        assert f"{grade_id}: {points:g} / {points:g} points" in text, grade_id
    # Exercise 4.3 shows on the model that moving the mean into W_pos changes no probability.
    change = re.search(r"largest change in any next-token probability: ([\d.e+-]+)", text)
    assert change and float(change[1]) < 1e-4


def test_missing_model_fails_fast_with_a_message_naming_the_fix(tmp_path, monkeypatch):
    """No hub, no cached model: a clear error in seconds, not minutes of retries."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    if models.hub_reachable():
        pytest.skip("the hub answers here: the download would simply succeed")
    release = nbformat.read(RELEASE, as_version=4)
    nb = nbformat.v4.new_notebook(cells=[c for c in release.cells if c.metadata["nbgrader"]["grade_id"] in
                                         ("setup", "load_models")], metadata=release.metadata)
    start = time.perf_counter()
    run(nb, tmp_path, timeout=120)
    elapsed = time.perf_counter() - start
    error = [o for o in nb.cells[-1].outputs if o.get("output_type") == "error"]
    assert error and error[0]["ename"] == "RuntimeError"
    assert "Could not load EleutherAI/gpt-neo-125M" in error[0]["evalue"] and "Fix:" in error[0]["evalue"]
    print(f"missing model reported after {elapsed:.1f} s (kernel start and imports included)")
    assert elapsed < 60  # far from the ~160 s of retries an unreachable hub costs otherwise
