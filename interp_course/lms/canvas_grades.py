"""A CSV that Canvas's gradebook import (Grades > Import) accepts, made from its own export.

The roster is the CSV of Canvas's Grades > Export: identifying columns (``Student``, ``ID``,
``SIS User ID``, ``SIS Login ID``, ``Section``; some institutions add ``Integration ID``), one
column per Canvas assignment named ``<title> (<assignment id>)``, read-only totals, and often a
``Points Possible`` row under the header. The output keeps the identifying columns and the one
assignment column, every roster row in its order, and fills each student's score from the
gradebook. Students are matched as ``make collect`` matches them (``canvas_collect.read_roster``: the
roster's ``SIS Login ID`` by default is the nbgrader student id). A roster student with nothing
graded is left blank, not 0 (whether a missing hand-in counts as 0 is the instructor's call);
graded students missing from the roster are named, since their scores cannot be imported.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from interp_course.lms import canvas_collect
from interp_course.course import Course
from interp_course.exit_status import GRADED, SOME_UNGRADED, Refusal
from interp_course.lms.exports import assignment_scores, number, write_csv
from interp_course.security.inert import one_line

IDENTIFYING = ["Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section"]
_CANVAS_ID = re.compile(r"\s*\(\d+\)\s*$")  # the " (12345)" Canvas appends to an assignment's name


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def choose_column(columns: list[str], assignment: str, wanted: str | None) -> str:
    """The roster's column for ``assignment``: ``wanted``, else the one whose name starts with it."""
    candidates = [c for c in columns if c not in IDENTIFYING]
    if wanted:
        if wanted not in columns:
            raise Refusal(f"the roster has no column {wanted!r}; its assignment columns: "
                          f"{', '.join(candidates) or 'none'}")
        return wanted
    # "Homework 1 (12345)" is hw1's: compared without case, spaces, punctuation or the Canvas id.
    exact = [c for c in candidates if _key(_CANVAS_ID.sub("", c)) == _key(assignment)]
    found = exact or [c for c in candidates if _key(c).startswith(_key(assignment))]
    if len(found) != 1:
        raise Refusal(f"{'several' if found else 'no'} roster columns match {assignment} "
                      f"({', '.join(found or candidates) or 'none'}): name the one to fill with "
                      "--column (make canvas COLUMN=...)")
    return found[0]


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise Refusal(f"cannot read the roster {path} ({error}): export it from Canvas (Grades > Export)") from None


def write_canvas_grades(course: Course, assignment: str, roster: Path, out: Path, column: str | None = None,
                        roster_column: str = canvas_collect.ROSTER_STUDENT_COLUMN) -> int:
    """Write ``out`` for Canvas's import; print what was filled and who was not; the exit status."""
    ids, problems = canvas_collect.read_roster(roster, roster_column)  # Canvas user id -> nbgrader student id
    columns, rows = read_rows(roster)
    target = choose_column(columns, assignment, column)
    scores, max_score = assignment_scores(course, assignment)
    kept = [c for c in columns if c in IDENTIFYING] + [target]
    table, filled, blank = [kept], set(), []
    for row in rows:
        out_row = {c: row.get(c) or "" for c in kept}
        user = (row.get(canvas_collect.ROSTER_ID_COLUMN) or "").strip()
        if user.isdigit():  # a student; other rows (Points Possible) are kept as Canvas wrote them
            student = ids.get(user)
            score = scores.get(student) if student else None
            out_row[target] = number(score)
            if score is None:
                blank.append(row.get("Student", "").strip() or user)
            else:
                filled.add(student)
        elif row.get("Student", "").strip() == "Points Possible" and out_row[target].strip():
            try:
                canvas_points = float(out_row[target])
            except ValueError:
                canvas_points = None
            if canvas_points != max_score:
                print(one_line(f"Note: Canvas gives {target} {out_row[target]} points, nbgrader's {assignment} "
                               f"has {max_score:g}; Canvas imports the scores as they are."))
        table.append([out_row[c] for c in kept])
    write_csv(out, table)
    print(one_line(f"Wrote {out}: {len(filled)} score{'s' * (len(filled) != 1)} of {assignment} in column "
                   f"{target!r}, matched by the roster's {roster_column!r}."))
    if blank:
        print(one_line(f"  Left blank (nothing graded, or no usable {roster_column!r}): {'; '.join(blank)}."))
    for user, why in sorted(problems.items()):
        print(one_line(f"  {why}."))
    unknown = sorted(s for s, score in scores.items() if score is not None and s not in filled)
    if unknown:
        print(one_line(f"NOT IN THE ROSTER: {len(unknown)} graded student{'s' * (len(unknown) != 1)}, whose "
                       f"scores are not in {out.name}: {', '.join(unknown)}. Check their {roster_column!r} "
                       "in Canvas, or export a current roster."))
        return SOME_UNGRADED
    return GRADED
