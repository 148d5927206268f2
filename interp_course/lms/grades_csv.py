"""grades.csv as nbgrader's export writes it, but through a real CSV writer.

nbgrader's ``CsvExportPlugin`` joins each row's cells with ``,`` unquoted, so a student id
``mallory,,,,25.0,0.0,25.0,25.0`` reads back as a row of its own with 25 points, and an id
``=HYPERLINK(...)`` lands in the file as a formula. ``GradesCsv`` writes the same columns, rows
and numbers (``str`` of each value, as nbgrader does), with ``exports.write_csv``: quoted, every
cell that would start a formula neutralised, never through a link. ``make grade`` runs
``nbgrader export --exporter=interp_course.lms.grades_csv.GradesCsv`` (as the grading account, which
owns grades.csv); nbgrader is imported here only, in the nbgrader process that loads this plugin.
"""

from __future__ import annotations

from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins.export import ExportPlugin

from interp_course.lms.exports import GRADES_EXPORTER, write_csv

COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email", "raw_score",
           "late_submission_penalty", "score", "max_score"]
assert GRADES_EXPORTER == f"{__name__}.GradesCsv"


def grade_rows(gradebook: Gradebook, assignments=(), students=()) -> list[list[str]]:
    """nbgrader's export rows (header first): every assignment by due date, every student the
    gradebook knows, 0 for one with no submission."""
    rows = [COLUMNS]
    for assignment in gradebook.assignments:
        if assignments and assignment.name not in assignments:
            continue
        for student in gradebook.students:
            if students and student.id not in students:
                continue
            row = {"assignment": assignment.name, "duedate": assignment.duedate, "student_id": student.id,
                   "last_name": student.last_name, "first_name": student.first_name, "email": student.email,
                   "max_score": assignment.max_score}
            try:
                submission = gradebook.find_submission(assignment.name, student.id)
            except MissingEntry:
                row.update(timestamp="", raw_score=0.0, late_submission_penalty=0.0, score=0.0)
            else:
                penalty = submission.late_submission_penalty
                row.update(timestamp=submission.timestamp, raw_score=submission.score, late_submission_penalty=penalty,
                           score=max(0.0, submission.score - penalty))
            rows.append(["" if row[c] is None else str(row[c]) for c in COLUMNS])
    return rows


class GradesCsv(ExportPlugin):
    """``nbgrader export --exporter=interp_course.lms.grades_csv.GradesCsv [--to grades.csv]``."""

    def export(self, gradebook: Gradebook) -> None:
        dest = Path(self.to or "grades.csv")
        self.log.info("Exporting grades to %s (quoted, formulas neutralised)", dest)
        write_csv(dest, grade_rows(gradebook, [str(a) for a in self.assignment], [str(s) for s in self.student]))
