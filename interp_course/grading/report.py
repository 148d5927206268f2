"""What a grading run tells the instructor at the end, and the student whose file could not be graded.

The closing lines list what was rescued (graded, but worth a look) and then every submission not
graded: the student, the reason in words, and the fix. Names and nbgrader's messages come from
students' files, so everything printed goes through ``inert.one_line``; a folder name that is not a
safe student id is shown escaped (``Submission.shown``), so a newline in it shows as ``\n``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from interp_course.grading.staging import Submission
from interp_course.security import student_id
from interp_course.security.inert import one_line

# What a batch (grading.autograde) tells the grader, on a file the two share.
PLANNED, JUDGED, KEPT_FAULT, OUT_OF_TIME, REFUSAL = "planned", "judged", "kept-fault", "out-of-time", "refused"
MAX_BATCH_REPORT = 16 * 2**20  # far above a line per student of any course


@dataclass
class BatchReport:
    """What a batch told the grader: one line per event, ``<word> <student> [<text>]``."""

    planned: list[str] = field(default_factory=list)
    judged: set[str] = field(default_factory=set)
    kept_faults: dict[str, str] = field(default_factory=dict)
    out_of_time: set[str] = field(default_factory=set)  # planned, not run: the batch's time limit ran out
    refusal: str = ""

    @classmethod
    def read(cls, data: bytes) -> "BatchReport":
        """Parse a report (written by the grading account: bounded, and only the words it writes)."""
        report = cls()
        for line in data[:MAX_BATCH_REPORT].decode("utf-8", "replace").splitlines():
            word, _, rest = line.partition(" ")
            student, _, text = rest.partition(" ")
            if word == REFUSAL:
                report.refusal = rest
            elif not student_id.is_safe(student):
                continue
            elif word == PLANNED:
                report.planned.append(student)
            elif word == JUDGED:
                report.judged.add(student)
            elif word == KEPT_FAULT:
                report.kept_faults[student] = text
            elif word == OUT_OF_TIME:
                report.out_of_time.add(student)
        return report


_PROCESSING = re.compile(r"There was an error processing assignment: (?P<path>.+)$")
_LOG_LINE = re.compile(r"^\[\w+ \| \w+\]")


def nbgrader_failures(log: str) -> dict[Path, str]:
    """What nbgrader's log says went wrong, by submission folder: the exception's last line.

    nbgrader logs ``There was an error processing assignment: <folder>`` and then the traceback
    (its continuation lines indented), whose last line names the error.
    """
    failures: dict[Path, str] = {}
    current: Path | None = None
    for line in log.splitlines():
        match = _PROCESSING.search(line)
        if match:
            current = Path(match["path"].strip())
            failures[current] = "see nbgrader's errors in the log"
        elif current is not None and line.startswith("    ") and line.strip():
            failures[current] = line.strip()
        elif current is not None and _LOG_LINE.match(line) and "Traceback" not in line:
            current = None
    return failures


def closing_lines(assignment: str, submissions: list[Submission], seconds: float,
                  stale_rows: dict[str, float], no_feedback: set[str]) -> list[str]:
    """The end of a run: rescues, the count, then each submission not graded with reason and fix.

    ``stale_rows``: the score grades.csv shows for a student not graded now (nbgrader exports
    everyone in the gradebook), which must not pass for a grade of this submission.
    """
    lines = []
    rescued = [s for s in submissions if s.problem is None and s.notes]
    if rescued:
        lines.append("Rescued (graded; have a look):")
        lines += [f"  {s.shown}: {'; '.join(s.notes)}" for s in rescued]
    graded = [s for s in submissions if s.problem is None]
    count = f"Autograded {len(graded)} of {len(submissions)} submissions of {assignment}"
    if graded:
        count += f" in {seconds:.0f} s ({seconds / len(graded):.1f} s each)"
    lines.append(count + ".")
    for student in sorted(no_feedback):
        lines.append(f"  {student}: graded (see grades.csv), but nbgrader could not write the feedback. Fix: see "
                     f"nbgrader's errors in the log, then run `nbgrader generate_feedback {assignment} --student {student} "
                     f"--force`.")
    ungraded = [s for s in submissions if s.problem is not None]
    if ungraded:
        lines.append(f"NOT GRADED: {len(ungraded)} submission{'s' if len(ungraded) > 1 else ''} of {assignment}:")
    for s in ungraded:
        line = f"  {s.shown}: {s.problem.reason}. Fix: {s.problem.fix}"
        if s.problem.for_student:
            line += f"; feedback/{s.student}/{assignment}/ tells them what was wrong with the file"
        if s.student in stale_rows:
            line += (f"; grades.csv lists them with {stale_rows[s.student]:g}, which is not a grade of this "
                     "submission (an earlier one's, or nbgrader's 0 for the failure)")
        lines.append(line + ".")
    return [one_line(line) for line in lines]


def feedback_page(assignment: str, message: str) -> str:
    """The feedback file of a submission that could not be graded: what was wrong, for the student."""
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(assignment)}: not graded"
            f"</title></head>\n<body>\n<h1>{html.escape(assignment)}: your submission was not graded</h1>\n"
            f"<p>{html.escape(message)}</p>\n<p>Your instructor has been told. Hand in the notebook again, or ask "
            f"your instructor what to do.</p>\n</body></html>\n")
