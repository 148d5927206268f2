"""Collect an LMS's bulk download into submitted/, with nbgrader's own ``zip_collect``.

Canvas ("Download Submissions" on an assignment) hands over one zip with every student's latest
submission at its top level, each file named by Canvas's ``ContentZipper``
(instructure/canvas-lms, ``lib/content_zipper.rb``: ``get_filename`` and
``add_upload_submission``)::

    <lastfirst>_<user id>_<file id>_<file name>          doejane_1234_5678_puzzle1.ipynb
    <lastfirst>_LATE_<user id>_<file id>_<file name>     roesmith_LATE_2345_6789_puzzle1-1.ipynb

``<lastfirst>`` is the student's sortable name lower-cased with everything but letters, digits
and ``_`` removed; ``<user id>`` is the Canvas user id; ``<file id>`` the uploaded file's id (a
later upload has a larger one); ``<file name>`` what the student uploaded (Canvas renames a
re-upload ``puzzle1-1.ipynb``, which ``make grade`` then rescues). With anonymous grading on,
Canvas writes ``anon_<anonymous id>`` instead of name and user id, and no roster can name them.

The Canvas user id becomes the nbgrader student id through a roster: the CSV of Canvas's
Gradebook > Export, whose ``ID`` column is the Canvas user id and whose ``SIS Login ID`` column
(by default; any column can be chosen) is the id students have in this course.

``interp_course.canvas_collector.CanvasCollector`` is nbgrader's ``FileNameCollectorPlugin``
with that ``named_regexp`` and the roster lookup; ``plan`` decides, for the plugin and for the
summary alike, what is collected and why anything is not. (The plugin is a module of its own so
that importing this one, as every command of the CLI does, does not import nbgrader.)
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from interp_course.course import Course
from interp_course.exit_status import GRADED, SOME_UNGRADED, Refusal
from interp_course.inert import one_line

CANVAS_FILE = re.compile(
    r"(?P<lastfirst>[^/]+?)_(?P<late>LATE_)?(?P<student_id>\d+)_(?P<canvas_file_id>\d+)_(?P<file_id>[^/]+)$")
ANONYMOUS = re.compile(r"(LATE_)?anon_[^_/]+_\d+_")
ROSTER_ID_COLUMN = "ID"
ROSTER_STUDENT_COLUMN = "SIS Login ID"
# What an nbgrader student id must look like to be a folder name under submitted/.
_SAFE_STUDENT_ID = re.compile(r"[A-Za-z0-9@+_-][A-Za-z0-9@+_.-]*")


@dataclass(frozen=True)
class Entry:
    """One file of the download: where it goes, or why it is not collected (and what to do)."""

    name: str
    student: str | None = None
    file_id: str = ""
    late: bool = False
    why_not: str = ""


def read_roster(path: Path, student_column: str = ROSTER_STUDENT_COLUMN) -> tuple[dict[str, str], dict[str, str]]:
    """({Canvas user id: student id}, {Canvas user id: why that row gives no student id})."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
            columns = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise Refusal(f"cannot read the roster {path} ({error}): export it from Canvas (Grades > Export) "
                      "and pass that CSV file") from None
    for column in (ROSTER_ID_COLUMN, student_column):
        if column not in columns:
            raise Refusal(f"the roster {path} has no column {column!r} (it has: {', '.join(columns) or 'none'}): "
                          f"use Canvas's Grades > Export, or name the student id column with ROSTER_COLUMN=")
    ids, problems = {}, {}
    for row in rows:
        user = (row[ROSTER_ID_COLUMN] or "").strip()
        if not user.isdigit():
            continue  # Canvas's "Points Possible" row and the like
        student = (row[student_column] or "").strip()
        if not _SAFE_STUDENT_ID.fullmatch(student):
            problems[user] = (f"the roster gives Canvas user {user} ({row.get('Student', '').strip()}) "
                              f"{'no' if not student else 'an unusable'} {student_column!r}")
        else:
            ids[user] = student
    return ids, problems


def plan(names: list[str], roster: dict[str, str], roster_problems: dict[str, str] | None = None) -> list[Entry]:
    """What becomes of each file of a Canvas download (file names at the zip's top level)."""
    roster_problems = roster_problems or {}
    entries, newest = [], {}
    for name in sorted(names):
        match = CANVAS_FILE.match(name)
        if ANONYMOUS.match(name):
            entries.append(Entry(name, why_not="Canvas anonymized it (anonymous grading is on), so no roster can "
                                 "name the student: turn anonymous grading off for the download, or collect it by hand"))
        elif not match:
            entries.append(Entry(name, why_not="not named as Canvas names submissions "
                                 "(<lastfirst>_[LATE_]<user id>_<file id>_<file name>): was the zip re-packed?"))
        elif not name.lower().endswith(".ipynb"):
            entries.append(Entry(name, why_not="not a notebook: if it holds the work, ask the student for the .ipynb"))
        elif match["student_id"] in roster_problems:
            entries.append(Entry(name, why_not=f"{roster_problems[match['student_id']]}: fix that row of the roster"))
        elif match["student_id"] not in roster:
            entries.append(Entry(name, why_not=f"Canvas user {match['student_id']} is not in the roster: export a "
                                 "current one (Grades > Export) or add the student to it"))
        else:
            entry = Entry(name, roster[match["student_id"]], match["file_id"], bool(match["late"]))
            entries.append(entry)
            key = (entry.student, entry.file_id)
            # Two uploads of one name by one student (nbgrader would stop at the duplicate): the
            # later upload, with the larger Canvas file id, is kept.
            if key not in newest or int(match["canvas_file_id"]) > int(CANVAS_FILE.match(newest[key])["canvas_file_id"]):
                newest[key] = name
    return [e if e.student is None or newest[(e.student, e.file_id)] == e.name else
            Entry(e.name, why_not=f"an earlier upload of {e.file_id} by {e.student}; "
                  f"{newest[(e.student, e.file_id)]} was collected instead") for e in entries]


def collect_download(course: Course, assignment: str, download: Path, roster_path: Path, student_column: str,
                     run_nbgrader: Callable[..., subprocess.CompletedProcess]) -> int:
    """Put a Canvas download into submitted/ with ``nbgrader zip_collect``; the exit status.

    zip_collect works in downloaded/<assignment>/ (archive/ -> extracted/), which this owns and
    empties first. With --force it replaces the submitted/<student>/<assignment>/ folder of each
    student in the download (their newer submission), and leaves everyone else's alone.
    """
    if not str(download).strip() or not str(roster_path).strip():
        raise Refusal("give the download and the roster: make collect ZIP=<download.zip> ROSTER=<roster.csv>")
    if not zipfile.is_zipfile(download):
        raise Refusal(f"{download} is not a zip file: pass the zip Canvas gives for the assignment's "
                      f"\"Download Submissions\"")
    roster, roster_problems = read_roster(roster_path, student_column)
    with zipfile.ZipFile(download) as z:
        members = {i.filename: i for i in z.infolist() if not i.is_dir()}
        # Canvas puts every file at the top; anything in a folder was not named by Canvas.
        entries = plan([n for n in members if "/" not in n], roster, roster_problems)
        entries += [Entry(n, why_not="inside a folder of the zip, where Canvas puts nothing: was the zip re-packed?")
                    for n in members if "/" in n]
        contents = {e.name: z.read(e.name) for e in entries if e.student}
    work = course.root / "downloaded" / assignment
    shutil.rmtree(work, ignore_errors=True)
    (work / "archive").mkdir(parents=True)
    shutil.copyfile(download, work / "archive" / "download.zip")
    run_nbgrader("zip_collect", assignment, "--force", "--log-level=WARN",
                 "--collector=interp_course.canvas_collector.CanvasCollector",
                 f"--CanvasCollector.roster={roster_path.resolve()}",
                 f"--CanvasCollector.student_column={student_column}", check=False)
    for i, entry in enumerate(entries):
        target = course.submitted / (entry.student or "") / assignment / entry.file_id
        if entry.student and not (target.is_file() and target.read_bytes() == contents[entry.name]):
            entries[i] = Entry(entry.name, why_not=f"nbgrader zip_collect did not put it at {target.relative_to(course.root)} "
                               "(see its errors above)")
    return _summary(assignment, entries, roster)


def _summary(assignment: str, entries: list[Entry], roster: dict[str, str]) -> int:
    collected = [e for e in entries if e.student]
    students = sorted({e.student for e in collected})
    print(f"Collected {len(collected)} notebook{'s' * (len(collected) != 1)} of {len(students)} "
          f"student{'s' * (len(students) != 1)} into submitted/<student>/{assignment}/.")
    late = sorted({e.student for e in collected if e.late})
    if late:
        print(one_line(f"  Late, as Canvas marks it: {', '.join(late)}"))
    absent = len(set(roster.values()) - set(students))
    if absent:
        print(f"  {absent} student{'s' * (absent != 1)} in the roster handed in nothing in this download.")
    skipped = [e for e in entries if not e.student]
    if not skipped:
        return GRADED
    print(f"NOT COLLECTED: {len(skipped)} file{'s' * (len(skipped) != 1)} of the download:")
    for entry in skipped:
        print(one_line(f"  {entry.name}: {entry.why_not}."))
    return SOME_UNGRADED
