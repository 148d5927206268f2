"""Collect an LMS's bulk download into submitted/, unpacking it as a careful archiver does.

Canvas ("Download Submissions" on an assignment) hands over one zip with every student's latest
submission at its top level, each file named by Canvas's ``ContentZipper``
(instructure/canvas-lms, ``lib/content_zipper.rb``: ``get_filename`` and
``add_upload_submission``)::

    <lastfirst>_<user id>_<file id>_<file name>          doejane_1234_5678_hw1.ipynb
    <lastfirst>_LATE_<user id>_<file id>_<file name>     roesmith_LATE_2345_6789_hw1-1.ipynb

``<lastfirst>`` is the student's sortable name lower-cased with everything but letters, digits
and ``_`` removed (so it can hold ``_`` and digits, and be empty); ``<user id>`` is the Canvas
user id; ``<file id>`` the uploaded file's id (a later upload has a larger one); ``<file name>``
what the student uploaded, with any of ``/ : * ? " < > |`` and backslash made ``_`` (Canvas renames a re-upload
``hw1-1.ipynb``, which ``make grade`` then rescues). With anonymous grading on, Canvas writes
``anon_<anonymous id>`` instead of name and user id, and no roster can name them.

A student chooses their file name and, where the institution lets them, their display name: both
can hold ``_<digits>_<digits>_`` (Canvas's own scrubbing of ``_<digits>_`` from names is undone by
punctuation it removes afterwards). So a name is split every way Canvas could have written it
(``splits``), and the roster decides: the one split whose user id is in the roster is the
student; a name that splits to two users in the roster is nobody's (refused as ambiguous), and
so is a name that splits more than one way whose lastfirst is not that user's name in the roster
(the attacker may be missing from a stale roster, leaving their victim the only match).

The Canvas user id becomes the nbgrader student id through a roster: the CSV of Canvas's
Gradebook > Export, whose ``ID`` column is the Canvas user id and whose ``SIS Login ID`` column
(by default; any column can be chosen) is the id students have in this course.

``collect_download`` runs as root (the instructor's step), so it takes files out of the zip with
``interp_course.lms.safe_unpack``: only the notebooks it collects, each a plain file checked and read
to a cap, written 0644; never anything inside a student's upload (an uploaded archive is named
as not collected). A member that fails is refused alone, and named in the summary.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from interp_course.lms import safe_unpack
from interp_course.security import student_id
from interp_course.course import Course
from interp_course.exit_status import GRADED, SOME_UNGRADED, Refusal
from interp_course.security.inert import one_line

# Canvas's lastfirst: word characters, lower-cased (so never the "LATE" that may follow it).
_LASTFIRST = r"[^\WA-Z]*"
_AFTER_NAME = r"_(?P<late>LATE_)?(?P<student_id>[0-9]+)_(?P<canvas_file_id>[0-9]+)_(?P<file_id>.+)\Z"
# One way to read a Canvas file name (the one with the longest lastfirst); ``splits`` gives every way.
CANVAS_FILE = re.compile(rf"(?P<lastfirst>{_LASTFIRST}){_AFTER_NAME}", re.DOTALL)
_LASTFIRST_RE = re.compile(_LASTFIRST)
_AFTER_NAME_RE = re.compile(_AFTER_NAME, re.DOTALL)
ANONYMOUS = re.compile(r"(LATE_)?anon_[^_/]+_\d+_")
# What a student may upload that holds other files: collect never unpacks one.
ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".gz",
            ".bz2", ".xz", ".zst", ".7z", ".rar", ".jar", ".whl", ".egg")
ROSTER_ID_COLUMN = "ID"
ROSTER_STUDENT_COLUMN = "SIS Login ID"


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
        if not student_id.is_safe(student):
            problems[user] = (f"the roster gives Canvas user {user} ({row.get('Student', '').strip()}) "
                              f"{'no' if not student else 'an unusable'} {student_column!r}")
        else:
            ids[user] = student
    return ids, problems


def roster_lastfirst(path: Path) -> dict[str, str]:
    """{Canvas user id: the lastfirst Canvas writes for them}, from the roster's ``Student`` column
    (Canvas's sortable name, "Doe, Jane": ``doejane``). ``read_roster`` has read the file once."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        return {(row.get(ROSTER_ID_COLUMN) or "").strip(): re.sub(r"\W", "", row.get("Student") or "").lower()
                for row in csv.DictReader(f)}


@dataclass(frozen=True)
class Split:
    """One way to read a Canvas file name."""

    lastfirst: str
    late: bool
    user: str  # Canvas user id
    canvas_file_id: int
    file_name: str


def splits(name: str) -> list[Split]:
    """Every way ``name`` reads as ``<lastfirst>_[LATE_]<user id>_<file id>_<file name>``, first
    the one with the shortest lastfirst. A name of Canvas's has one unless the student's display
    name or file name holds ``_<digits>_<digits>_``."""
    found = []
    if len(name) > safe_unpack.MAX_NAME:
        return found
    # Where lastfirst may end: at any "_" up to the first character lastfirst cannot hold.
    limit = _LASTFIRST_RE.match(name).end()
    start = name.find("_")
    while 0 <= start <= limit:
        match = _AFTER_NAME_RE.match(name, start)
        if match:
            found.append(Split(name[:start], bool(match["late"]), match["student_id"],
                               int(match["canvas_file_id"]), match["file_id"]))
        start = name.find("_", start + 1)
    return found


def plan(names: list[str], roster: dict[str, str], roster_problems: dict[str, str] | None = None,
         lastfirst: dict[str, str] | None = None) -> list[Entry]:
    """What becomes of each file of a Canvas download (file names at the zip's top level).
    ``lastfirst``: each user's name as Canvas writes it (``roster_lastfirst``), which a name that
    splits more than one way must carry for the user it is collected for."""
    roster_problems = roster_problems or {}
    known = roster.keys() | roster_problems.keys()
    entries, newest = [], {}
    for name in sorted(names):
        problem = safe_unpack.name_problem(name)
        every = splits(name) if not problem else []
        ours = [s for s in every if s.user in known]
        split = ours[0] if ours else every[-1] if every else None
        if problem:
            entries.append(Entry(name, why_not=f"{problem}, unlike every name Canvas writes (was the zip re-packed?)"))
        elif ANONYMOUS.match(name):
            entries.append(Entry(name, why_not="Canvas anonymized it (anonymous grading is on), so no roster can "
                                 "name the student: turn anonymous grading off for the download, or collect it by hand"))
        elif split is None:
            entries.append(Entry(name, why_not="not named as Canvas names submissions "
                                 "(<lastfirst>_[LATE_]<user id>_<file id>_<file name>): was the zip re-packed?"))
        elif len(ours) > 1:
            users = " or ".join(dict.fromkeys(f"{s.user} ({roster.get(s.user, 'roster row without an id')})"
                                              for s in ours))
            entries.append(Entry(name, why_not=f"ambiguous: its name reads as Canvas user {users} (a display name or "
                                 "file name holding _<digits>_<digits>_), so it is collected for nobody: check "
                                 "whose it is in Canvas and collect it by hand"))
        elif len(every) > 1 and lastfirst is not None and lastfirst.get(split.user) != split.lastfirst:
            entries.append(Entry(name, why_not=f"ambiguous: its name reads more than one way, and as Canvas user "
                                 f"{split.user} ({roster.get(split.user, 'roster row without an id')}) only with "
                                 f"the name {split.lastfirst!r}, not theirs in the roster, so it is collected for "
                                 "nobody: check whose it is in Canvas and collect it by hand"))
        elif split.file_name.lower().endswith(ARCHIVES):
            entries.append(Entry(name, why_not="an archive: collect never unpacks what a student uploads (a notebook "
                                 "inside could claim to be anyone's): ask the student to upload the .ipynb itself"))
        elif not split.file_name.lower().endswith(".ipynb"):
            entries.append(Entry(name, why_not="not a notebook: if it holds the work, ask the student for the .ipynb"))
        elif split.user in roster_problems:
            entries.append(Entry(name, why_not=f"{roster_problems[split.user]}: fix that row of the roster"))
        elif split.user not in roster:
            users = sorted({s.user for s in every}, key=int)
            who = f"user {users[0]} is" if len(users) == 1 else f"users {', '.join(users)} (its name reads as any) are"
            entries.append(Entry(name, why_not=f"Canvas {who} not in the roster: export a "
                                 "current one (Grades > Export) or add the student to it"))
        else:
            entry = Entry(name, roster[split.user], split.file_name, split.late)
            entries.append(entry)
            key = (entry.student, entry.file_id)
            # Two uploads of one name by one student: the later upload, with the larger Canvas
            # file id, is kept.
            if key not in newest or split.canvas_file_id > newest[key][1]:
                newest[key] = (name, split.canvas_file_id)
    return [e if e.student is None or newest[(e.student, e.file_id)][0] == e.name else
            Entry(e.name, why_not=f"an earlier upload of {e.file_id} by {e.student}; "
                  f"{newest[(e.student, e.file_id)][0]} was collected instead") for e in entries]


def collect_download(course: Course, assignment: str, download: Path, roster_path: Path, student_column: str,
                     limits: safe_unpack.Limits = safe_unpack.Limits()) -> int:
    """Put the notebooks of a Canvas download into submitted/<student>/<assignment>/; the exit status.

    Each student in the download gets a new submitted/<student>/<assignment>/ holding what was
    collected of theirs (their newer submission); a student none of whose files could be taken
    out, and everyone not in the download, keeps theirs. The files are first taken out into a
    scratch folder in the course root, removed at the end. (Not nbgrader's ``zip_collect``: it
    unpacks archives inside uploads, as root, keeping their modes.)
    """
    if not str(download).strip() or not str(roster_path).strip():
        raise Refusal("give the download and the roster: make collect ZIP=<download.zip> ROSTER=<roster.csv>")
    if not zipfile.is_zipfile(download):
        raise Refusal(f"{download} is not a zip file: pass the zip Canvas gives for the assignment's "
                      f"\"Download Submissions\"")
    roster, roster_problems = read_roster(roster_path, student_column)
    try:
        z = zipfile.ZipFile(download)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise Refusal(f"cannot read the zip {download} ({error}): download it from Canvas again") from None
    with z:
        by_name = {safe_unpack.member_name(i): i for i in z.infolist()}
        names = [safe_unpack.member_name(i) for i in z.infolist()]
        times = Counter(names)
        refused = {}  # name -> why, for members no name could make good
        for name, info in by_name.items():
            problem = "in the zip more than once" if times[name] > 1 else safe_unpack.member_problem(info)
            if problem and not safe_unpack.name_problem(name) and not name.endswith("/"):
                refused[name] = problem  # plan() says what is wrong with a bad name
        members = [n for n in by_name if not n.endswith("/")]  # a folder entry makes nothing
        entries = plan([n for n in members if n not in refused], roster, roster_problems,
                       roster_lastfirst(roster_path))
        entries += [Entry(n, why_not=f"{why}, unlike every file Canvas writes (was the zip re-packed?)")
                    for n, why in refused.items()]
        scratch = Path(tempfile.mkdtemp(prefix=f".collect-{assignment}-", dir=course.root))
        try:
            staged = _take_out(z, by_name, entries, scratch, limits)
            _place(course, assignment, entries, staged, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return _summary(assignment, sorted(entries, key=lambda e: e.name), roster)


def _take_out(z: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], entries: list[Entry], scratch: Path,
              limits: safe_unpack.Limits) -> dict[str, Path]:
    """Take each collected notebook out of the zip into scratch/taken/<student>/; {student: that
    folder}. A notebook that cannot be taken out becomes an entry saying why."""
    budget, staged = safe_unpack.Budget(limits), {}
    (scratch / "taken").mkdir()
    for i, entry in enumerate(entries):
        if not entry.student:
            continue
        folder = scratch / "taken" / entry.student
        if entry.student not in staged:
            folder.mkdir(mode=0o755)
            folder.chmod(0o755)
        staged[entry.student] = folder
        try:
            safe_unpack.extract(z, members[entry.name], str(folder / entry.file_id), budget, entry.student)
        except safe_unpack.Rejected as rejected:
            entries[i] = Entry(entry.name, why_not=f"{rejected}: look at the upload in Canvas")
    return {student: folder for student, folder in staged.items() if any(folder.iterdir())}


def _place(course: Course, assignment: str, entries: list[Entry], staged: dict[str, Path], scratch: Path) -> None:
    """Make each staged folder the student's submitted/<student>/<assignment>/ (never through a
    link); what it replaces goes to scratch/replaced/, removed with the scratch folder."""
    (scratch / "replaced").mkdir()
    for student, folder in staged.items():
        target = course.submitted / student / assignment
        try:
            for path in (course.submitted, target.parent):
                if os.path.islink(path) or (os.path.lexists(path) and not path.is_dir()):
                    raise OSError(f"{path.relative_to(course.root)} is not a folder: move it away")
                if not os.path.lexists(path):
                    path.mkdir(mode=0o755)
                    path.chmod(0o755)
            old = scratch / "replaced" / student
            if os.path.lexists(target):
                if stat.S_ISDIR(os.lstat(target).st_mode):
                    os.rename(target, old)
                else:
                    os.unlink(target)
            try:
                os.rename(folder, target)
            except OSError:
                if os.path.lexists(old):
                    os.rename(old, target)
                raise
        except OSError as error:
            why = f"could not be put in submitted/{student}/{assignment}/ ({error}): not collected"
            entries[:] = [Entry(e.name, why_not=why) if e.student == student else e for e in entries]


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
        print(one_line(f"  {safe_unpack.shown(entry.name)}: {entry.why_not}."))
    return SOME_UNGRADED
