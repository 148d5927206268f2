"""A hint that names the student's own function the missed number was computed with, when that
function is the one at fault.

A check of a number the student computed (``neo_centered_mean_cos``) cannot see how it was
computed, so its hint tells the recipe: "center W_E_sub with your center(), then ...". For a
student whose ``center`` is wrong that reads as if they had skipped it, though they did exactly
that. Here, after each test cell is judged, every item it failed whose message names functions
that earlier test cells of the notebook judged (``center(``, ``your center``) is told the first of
them, in notebook order, that lost points there: the number is wrong because of it, so that is
what to fix first. A function's test cell is the one whose hidden inputs are keyed by it
(``"center/float64"``), so an assignment's checks need say nothing more; messages that name no
such function, and every item that passed, are left as they are.
"""

from __future__ import annotations

import re

from interp_course.judging.verdict import Verdict


def functions_judged(inputs: dict) -> set[str]:
    """The functions a test cell's hidden inputs are for (``"<function>/<case>"`` keys)."""
    return {key.split("/", 1)[0] for key in inputs if isinstance(key, str) and "/" in key}


def _names(message: str, function: str) -> bool:
    """Whether a message names a student's function: called (``center(``) or theirs (``your center``)."""
    name = re.escape(function)
    return re.search(rf"(?<![\w.]){name}\(|\byour {name}\b", message) is not None


def name_first_wrong(verdict: Verdict, earlier: dict[str, Verdict], inputs: dict[str, dict]) -> Verdict:
    """Prefix each failed item of ``verdict`` whose message names a function that lost points in an
    earlier test cell (``earlier``: grade_id -> verdict, in notebook order; ``inputs``: grade_id ->
    its hidden inputs) with the first such function and the cell that found it wrong."""
    own = functions_judged(inputs.get(verdict.grade_id, {}))
    wrong = [(function, grade_id, before) for grade_id, before in earlier.items()
             if grade_id != verdict.grade_id and before.points < before.max_points
             for function in sorted(functions_judged(inputs.get(grade_id, {})) - own)]
    for item in verdict.items:
        if item.passed or not item.message:
            continue
        for function, grade_id, before in wrong:
            if _names(item.message, function):
                item.message = (f"This is computed with your {function}(), which lost points in {grade_id} "
                                f"({before.points:g}/{before.max_points:g}): fix {function}() first. {item.message}")
                break
    return verdict
