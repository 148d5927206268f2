"""What a student id may be: one definition for collecting (``lms``) and grading (``staging``).

A student id names a folder under ``submitted/``, ``autograded/`` and ``feedback/``, a row of the
gradebook and a cell of every CSV the course writes. Ids outside this set are refused before
nbgrader sees them: a comma forges columns of a CSV that joins cells with ``,`` unquoted
(nbgrader's own export), ``=``/``(`` make a spreadsheet formula, a newline stops nbgrader at that
student, and control characters drive the instructor's terminal. Ids that are in the set but begin
with ``+``, ``-`` or ``@`` are still written to CSVs neutralised (``exports.csv_cell``).

No imports beyond ``re``: both sides import it without a cycle and without nbformat's cost.
"""

from __future__ import annotations

import re

# What an nbgrader student id must look like to be a folder name under submitted/.
SAFE_STUDENT_ID = re.compile(r"[A-Za-z0-9@+_-][A-Za-z0-9@+_.-]*")
MAX_LENGTH = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def is_safe(student: str) -> bool:
    return len(student) <= MAX_LENGTH and SAFE_STUDENT_ID.fullmatch(student) is not None


def shown(student: str) -> str:
    """The id as it may be printed: itself when safe, else quoted with every character outside
    printable ASCII escaped (``'eve\\nlater'``), so a line or a terminal shows what is there."""
    return student if is_safe(student) else ascii(student[:200]) + ("…" if len(student) > 200 else "")


def why_unsafe(student: str) -> str | None:
    """Why ``student`` cannot be a student id (None: it can), in words for the instructor."""
    if is_safe(student):
        return None
    if _CONTROL.search(student):
        what = "a line break" if ("\n" in student or "\r" in student) else "control characters"
        return f"holds {what}"
    if len(student) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    bad = sorted({c for c in student if not re.fullmatch(r"[A-Za-z0-9@+_.-]", c)})
    if bad:
        return "holds " + " ".join(ascii(c) for c in bad[:8]) + (" …" if len(bad) > 8 else "")
    return "does not begin with a letter, a digit or one of @ + _ -"
