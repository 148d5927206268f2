"""The grader's half: choose inputs, read the hand-ins, judge, and write the verdict into cells.

Runs in the nbgrader process, which student code never touches (the student's kernel is a
separate, sandboxed process). A test cell's score comes only from what is written here:
nbgrader's ``SaveAutoGrades`` reads the ``execute_result`` we put in the cell as partial credit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import torch
from safetensors.torch import save_file

from interp_course.grading.handed import HandIn, read_hand_in
from interp_course.grading.rubric import Item, Verdict
from interp_course.models import COURSE_ROOT, load_embeddings


def load_checks() -> dict:
    """The hidden checks live in grader_tests/ at the course root, outside any installed package."""
    if str(COURSE_ROOT) not in sys.path:
        sys.path.insert(0, str(COURSE_ROOT))
    from grader_tests.checks import CHECKS

    return CHECKS


def graded_test_cells(nb) -> list[tuple[int, str]]:
    """(index, grade_id) of autograded test cells: code cells marked grade but not solution."""
    found = []
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            found.append((index, meta.get("grade_id", "")))
    return found


def write_inbox(inbox: Path, embeddings: dict) -> dict[str, dict[str, torch.Tensor]]:
    """Write every check's inputs as safetensors; return them for judging."""
    inbox.mkdir(parents=True, exist_ok=True)
    all_inputs = {}
    for grade_id, check in load_checks().items():
        inputs = {k: v.contiguous() for k, v in check.inputs(embeddings).items()}
        save_file(inputs, str(inbox / f"{grade_id}.safetensors"))
        all_inputs[grade_id] = inputs
    return all_inputs


def _kernel_error(cell) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename', 'Error')}: {str(output.get('evalue', ''))[:300]}"
    return ""


def missing_hand_in(grade_id: str, check, problem: str, kernel_error: str) -> Verdict:
    """Every item at 0, with the reason the grader got nothing to judge."""
    reason = f"Your code raised {kernel_error}, so " if kernel_error else ""
    note = f"{reason}{problem}: nothing could be checked for this cell."
    return Verdict(grade_id, [Item(grade_id, check.points, 0.0, "not checked")], note=note)


def verdict_outputs(verdict: Verdict) -> list:
    """Cell outputs that show the verdict and carry its score to nbgrader."""
    return [
        nbformat.v4.new_output("stream", name="stdout", text=verdict.text() + "\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": f"{verdict.points:g}"}, execution_count=None),
    ]


def judge_notebook(nb, outbox: Path, inputs: dict, embeddings: dict, log=None) -> dict[str, Verdict]:
    """Replace the outputs of every graded test cell with the clean process's verdict."""
    checks = load_checks()
    verdicts = {}
    for index, grade_id in graded_test_cells(nb):
        cell = nb.cells[index]
        check = checks.get(grade_id)
        if check is None:
            # A test cell without a check cannot be trusted to grade itself.
            points = float(cell.metadata["nbgrader"].get("points", 0))
            verdict = Verdict(grade_id, [Item(grade_id, points, 0.0, "no hidden check is registered")])
            if log:
                log.error("No check in grader_tests for test cell %r: it scores 0", grade_id)
        else:
            handed = read_hand_in(outbox, grade_id)
            if handed.problem:
                verdict = missing_hand_in(grade_id, check, handed.problem, _kernel_error(cell))
            else:
                verdict = _safe_verdict(check, inputs.get(grade_id, {}), handed, embeddings)
        cell.outputs = verdict_outputs(verdict)
        verdicts[grade_id] = verdict
    return verdicts


def _safe_verdict(check, inputs, handed, embeddings) -> Verdict:
    try:
        return check.verdict(inputs, handed, embeddings)
    except Exception as exc:  # noqa: BLE001 - odd data (NaN shapes, dtypes) must not stop the batch
        item = Item(check.grade_id, check.points, 0.0, f"the hand-in could not be judged ({type(exc).__name__})")
        return Verdict(check.grade_id, [item])


def judge_in_process(grade_id: str, objects: dict, collect) -> Verdict:
    """Preview for an instructor running the source notebook: same checks, one process."""
    check = load_checks()[grade_id]
    embeddings = load_embeddings()
    inputs = check.inputs(embeddings)
    tensors, report = collect(grade_id, objects, inputs)
    return check.verdict(inputs, HandIn(tensors=tensors, report=report), embeddings)
