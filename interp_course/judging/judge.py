"""The grader's half: write the inputs, read the hand-ins, judge, and write the verdict into cells.

Runs in the nbgrader process, which student code never touches (the student's kernel is a
separate, sandboxed process). A test cell's score comes only from what is written here:
nbgrader's ``SaveAutoGrades`` reads the ``execute_result`` we put in the cell as partial credit.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbgrader.utils import is_grade, is_solution

from interp_course.judging.assignment import Assignment
from interp_course.judging.cascade import name_first_wrong
from interp_course.judging.handin_files import RawHandIn, cap_run, parse_hand_in, read_raw_hand_in
from interp_course.judging.verdict import Item, Verdict


def graded_test_cells(nb) -> list[tuple[int, str]]:
    """(index, grade_id) of autograded test cells: code cells marked grade but not solution."""
    return [(index, cell.metadata["nbgrader"].get("grade_id", ""))
            for index, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and is_grade(cell) and not is_solution(cell)]


def write_inbox(inbox: Path, nb, assignment: Assignment) -> dict[str, dict]:
    """Write the inputs of this notebook's checks (only those); return them for judging."""
    from interp_course import handin  # torch: not needed by a worker, which only reads outboxes

    all_inputs = {}
    for _, grade_id in graded_test_cells(nb):
        if grade_id in assignment.checks:
            all_inputs[grade_id] = assignment.inputs(grade_id)
            handin.write_inbox(inbox, grade_id, all_inputs[grade_id])
    return all_inputs


def _kernel_error(cell) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename', 'Error')}: {str(output.get('evalue', ''))[:300]}"
    return ""


def missing_hand_in(grade_id: str, points: float, problem: str, kernel_error: str) -> Verdict:
    """Every item at 0, with the reason the grader got nothing to judge."""
    reason = f"Your code raised {kernel_error}, so " if kernel_error else ""
    note = f"{reason}{problem}: nothing could be checked for this cell."
    return Verdict(grade_id, [Item(grade_id, points, 0.0, "not checked")], note=note)


def verdict_outputs(verdict: Verdict) -> list:
    """Cell outputs that show the verdict and carry its score to nbgrader."""
    return [
        nbformat.v4.new_output("stream", name="stdout", text=verdict.text() + "\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": f"{verdict.points:g}"}, execution_count=None),
    ]


def read_outbox(outbox: Path, nb) -> dict[str, RawHandIn]:
    """What the kernel handed in for each graded test cell, read as untrusted files: each cell's
    within its size, and all of them together within a notebook's (``handin_files.cap_run``)."""
    return cap_run({grade_id: read_raw_hand_in(outbox, grade_id) for _, grade_id in graded_test_cells(nb)})


def judge_notebook(nb, hand_ins: dict[str, RawHandIn], inputs: dict, assignment: Assignment,
                   log=None) -> dict[str, Verdict]:
    """Replace the outputs of every graded test cell with the clean process's verdict."""
    verdicts = {}
    for index, grade_id in graded_test_cells(nb):
        cell = nb.cells[index]
        check = assignment.checks.get(grade_id)
        if check is None:
            # A test cell without a check cannot be trusted to grade itself.
            points = float(cell.metadata["nbgrader"].get("points", 0))
            verdict = Verdict(grade_id, [Item(grade_id, points, 0.0, "no hidden check is registered")])
            if log:
                log.error("No check in grader_tests/%s for test cell %r: it scores 0", assignment.name, grade_id)
        else:
            handed = parse_hand_in(hand_ins.get(grade_id, RawHandIn(problem="nothing was handed in")))
            if handed.problem:
                verdict = missing_hand_in(grade_id, check.points, handed.problem, _kernel_error(cell))
            else:
                verdict = _safe_verdict(check, inputs.get(grade_id, {}), handed, assignment.context())
        # a missed number computed with a function an earlier cell found wrong: that function first
        verdict = name_first_wrong(verdict, verdicts, inputs)
        cell.outputs = verdict_outputs(verdict)
        verdicts[grade_id] = verdict
    return verdicts


def _safe_verdict(check, inputs, handed, context) -> Verdict:
    try:
        return check.verdict(inputs, handed, context)
    except Exception as exc:  # noqa: BLE001 - odd data (NaN shapes, dtypes) must not stop the batch
        item = Item(check.grade_id, check.points, 0.0, f"the hand-in could not be judged ({type(exc).__name__})")
        return Verdict(check.grade_id, [item])
