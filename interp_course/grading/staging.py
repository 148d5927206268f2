"""Rescue what students hand in, on copies: grading never alters submitted/.

``nbgrader autograde`` grades ``submitted/<student>/<a>/<notebook>.ipynb`` and nothing else: a
second download saved as ``hw1 (1).ipynb`` scores 0 ("Skipping unknown notebook"), and a
file that is not a whole notebook fails the student with a traceback among hundreds of log lines.
Before grading, each submission folder is read here and copied into a staging folder that the
grader owns (``stage``), which nbgrader is then pointed at (``CourseDirectory.submitted_directory``):

- exactly one notebook under another name (``hw1 (1).ipynb``, ``Copy of hw1.ipynb``) is
  staged under the assignment's name, and the summary says so; several candidates are reported,
  never guessed between;
- an older nbformat is upgraded to 4 on the copy;
- a file that is not a readable notebook (cut off, not JSON, a zip, an HTML page, too large, a
  link) is not staged: the submission is reported with the reason, the fix, and words for the
  student;
- a notebook is parsed only within bounds (``json_problem``: nesting depth, digits of a number,
  how many values), so a 4 KB file nested 2,000 deep or a 5,000-digit integer is that student's
  NOT GRADED line, never an exception that stops the batch;
- a folder whose name is not a safe student id (``student_id``: a comma, a quote, a newline,
  control characters...) is not staged, and is named (escaped) on a NOT GRADED line; nbgrader
  never sees it, so it can neither stop the batch there nor forge a row of a CSV.

The originals are only ever read (without following links, a bounded number of bytes), so
submitted/ stays byte-identical, and a rerun after the instructor fixes a folder starts afresh.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from interp_course.security import student_id

# More than any notebook of this course with its outputs; a bigger file is almost certainly
# huge outputs saved in it, and is not worth holding in memory to find out.
MAX_NOTEBOOK_BYTES = 64 * 2**20
CURRENT_NBFORMAT = 4
# The same cap as the sandbox's on any file a kernel writes.
OTHER_FILE_BYTES = 256 * 2**20
# Bounds on the JSON of a notebook, checked before any parser sees it. A notebook is ~10 deep
# (plotly figures in outputs ~15); nbformat's validator itself fails past a few hundred. Numbers
# are execution counts, sizes and floats (a float64 needs ~25 characters); Python refuses integers
# over 4,300 digits with a ValueError. A value costs the parser ~50-100 bytes of memory, so 4
# million of them bound a 64 MiB file's parse to a few hundred MB (a notebook with big outputs
# has ~1 per line of output).
MAX_JSON_DEPTH = 64
MAX_NUMBER_CHARS = 100
MAX_JSON_VALUES = 4_000_000


@dataclass(frozen=True)
class Problem:
    """Why a submission cannot be graded, for the instructor; and for the student, if it is the file."""

    reason: str
    fix: str
    for_student: str = ""


@dataclass
class Submission:
    student: str
    folder: Path  # submitted/<student>/<assignment>
    files: dict[str, str] = field(default_factory=dict)  # assignment's notebook -> file handed in
    notes: list[str] = field(default_factory=list)  # rescues the instructor should know about
    problem: Problem | None = None

    @property
    def shown(self) -> str:
        """The student id as a line may show it (escaped when it is not a safe id)."""
        return student_id.shown(self.student)


def name_key(name: str) -> str:
    """A name reduced to lowercase letters and digits: ``Copy of HW_1 (1)`` -> ``copyofhw11``."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def match_notebooks(expected: list[str], present: list[str], where: str) -> tuple[dict[str, str], list[str], Problem | None]:
    """Which handed-in notebook to grade as each of the assignment's notebooks.

    ``expected`` and ``present`` are file names without ``.ipynb``; ``where`` names the folder in
    messages. Returns (assignment notebook -> handed-in name, notes, problem).
    """
    chosen = {name: name for name in expected if name in present}
    others = sorted(name for name in present if name not in expected)
    missing = [name for name in expected if name not in chosen]
    notes = []
    for name in missing:
        if len(expected) == 1:
            # One notebook expected: whatever single notebook was handed in is the attempt.
            candidates = others
        else:
            candidates = [o for o in others if name_key(name) in name_key(o) and o not in chosen.values()]
        if len(candidates) == 1:
            chosen[name] = candidates[0]
            notes.append(f'graded "{candidates[0]}.ipynb" as {name}.ipynb')
        elif len(candidates) > 1:
            listed = ", ".join(f'"{c}.ipynb"' for c in candidates)
            return {}, notes, Problem(
                f"no {name}.ipynb, and {len(candidates)} notebooks that could be it: {listed}",
                f"find out which one is to be graded, rename it {name}.ipynb in {where} and run again")
        elif len(expected) > 1:
            notes.append(f"no {name}.ipynb: scored 0 for it")
    if not chosen:
        return {}, notes, None  # the caller words "no notebook at all", knowing what else is there
    unused = [o for o in others if o not in chosen.values()]
    if unused:
        notes.append("also handed in, not graded: " + ", ".join(f'"{o}.ipynb"' for o in unused))
    return chosen, notes, None


def _file_problem(name: str, what: str, for_student: str, student: str) -> Problem:
    return Problem(f'"{name}" {what}', f"ask {student} to hand the notebook in again",
                   f'Your file "{name}" could not be graded: {for_student}')


# One JSON token: a string (possessive, so an unterminated one costs one pass, never a quadratic
# search), a bracket, a number or a literal. What lies between tokens (spaces, ",", ":") is skipped.
_JSON_TOKEN = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)|[\[{]|[\]}]|[-+0-9.eE]++|[A-Za-z]++')


def json_problem(text: str, max_depth: int = MAX_JSON_DEPTH, max_number: int = MAX_NUMBER_CHARS,
                 max_values: int = MAX_JSON_VALUES) -> str | None:
    """Why ``text`` is not JSON any parser here should be given (None: it is within bounds), found
    in one linear pass without building anything: nested deeper than ``max_depth``, a number
    longer than ``max_number`` characters, or more than ``max_values`` values."""
    depth = values = 0
    for token in _JSON_TOKEN.finditer(text):
        first = text[token.start()]
        if first in "]}":
            depth -= 1
            continue
        values += 1
        if first in "[{":
            depth += 1
            if depth > max_depth:
                return f"is nested more than {max_depth} levels deep"
        elif first != '"' and token.end() - token.start() > max_number:
            return f"holds a number of {token.end() - token.start():,} characters (at most {max_number} are read)"
        if values > max_values:
            return f"holds more than {max_values:,} values"
    return None


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number of {len(text):,} digits")
    return int(text)


def parse_notebook(data: bytes, name: str, student: str) -> tuple[nbformat.NotebookNode | None, list[str], Problem | None]:
    """The notebook in ``data`` as nbformat 4, notes on what was done to it, or why it is unreadable."""
    again = "Open it in Jupyter to check that it is your work, save it, and hand it in again."
    if not data.strip():
        return None, [], _file_problem(name, "is empty (no content): the upload probably failed",
                                       f"it is empty. {again}", student)
    if data.startswith(b"PK\x03\x04"):
        return None, [], _file_problem(name, "is a zip archive, not a notebook",
                                       "it is a zip archive, not a notebook. Hand in the .ipynb file itself.", student)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return None, [], _file_problem(name, f"is not text (byte {error.start} is not UTF-8): not a notebook",
                                       f"it is not a text file, so it is not a notebook. {again}", student)
    if text.lstrip().startswith("<"):
        return None, [], _file_problem(
            name, "is an HTML page, not a notebook (saved from a browser page?)",
            "it is a web page (HTML), not a notebook; this happens when a notebook is saved with the "
            "browser's \"Save page as\". In Jupyter use File > Download (.ipynb) and hand that file in.", student)
    bounds = json_problem(text)
    if bounds:
        return None, [], _file_problem(
            name, f"{bounds}: not a notebook Jupyter saved, and more than the grader parses",
            f"it {bounds}, which is not what Jupyter saves. {again}", student)
    try:
        content = json.loads(text, parse_int=_bounded_int)
    except (RecursionError, ValueError) as error:
        if not isinstance(error, json.JSONDecodeError):  # bounds json_problem should have caught
            return None, [], _file_problem(name, f"cannot be parsed ({type(error).__name__}: {str(error)[:200]})",
                                           f"it is not a notebook the grader can read. {again}", student)
        if not text.rstrip().endswith("}"):
            return None, [], _file_problem(
                name, f"is cut off after {len(data):,} bytes (not a complete notebook): the upload or "
                "download was interrupted",
                f"it stops after {len(data):,} bytes, in the middle of the notebook, so it is not a complete "
                f"notebook. This usually means the upload or download was interrupted. {again}", student)
        return None, [], _file_problem(
            name, f"is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})",
            f"it is not valid notebook JSON (line {error.lineno}, column {error.colno}: {error.msg}); was it "
            f"edited outside Jupyter? {again}", student)
    version = content.get("nbformat") if isinstance(content, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        return None, [], _file_problem(name, "is JSON but not a Jupyter notebook (no nbformat version)",
                                       f"it is not a Jupyter notebook. {again}", student)
    if version > CURRENT_NBFORMAT:
        return None, [], Problem(
            f'"{name}" is nbformat {version}, newer than the {CURRENT_NBFORMAT} this grader reads',
            f"upgrade nbformat in the course's venv, or ask {student} to save it as nbformat {CURRENT_NBFORMAT}",
            f'Your file "{name}" could not be graded yet: it was saved in a newer notebook format '
            f"({version}) than the grader reads. Your instructor has been told.")
    try:
        notebook = nbformat.reads(text, as_version=CURRENT_NBFORMAT)
    except Exception as error:  # noqa: BLE001 - nbformat raises many kinds for a malformed notebook
        said = str(error).splitlines()[0][:300] if str(error) else ""  # a schema error quotes the whole value
        return None, [], _file_problem(name, f"is not a readable notebook ({type(error).__name__}: {said})",
                                       f"Jupyter's notebook reader cannot read it. {again}", student)
    notes = []
    if version < CURRENT_NBFORMAT:
        notes.append(f'"{name}" is nbformat {version}: graded a copy upgraded to nbformat {CURRENT_NBFORMAT}')
    return notebook, notes, None


class _NotAFile(Exception):
    pass


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n:,} bytes"


def _open_regular(path: Path, limit: int):
    """``path`` opened for reading if it is a regular file of at most ``limit`` bytes (never
    through a link); _NotAFile says why not."""
    try:
        # O_NONBLOCK: opening a FIFO must not hang the grader.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _NotAFile("is a symbolic link, not a file") from None
        raise _NotAFile(f"cannot be opened ({error.strerror})") from None
    f = os.fdopen(fd, "rb")
    info = os.fstat(f.fileno())
    if not stat.S_ISREG(info.st_mode):
        f.close()
        raise _NotAFile("is not a regular file")
    if info.st_size > limit:
        f.close()
        raise _NotAFile(f"is {_size(info.st_size)}, more than the {_size(limit)} the grader reads")
    return f


def read_bounded(path: Path, limit: int | None = None) -> bytes:
    """A regular file's bytes, not following links and not past ``limit`` (default: a notebook's);
    _NotAFile says why not."""
    limit = MAX_NOTEBOOK_BYTES if limit is None else limit
    with _open_regular(path, limit) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _NotAFile(f"is more than the {_size(limit)} the grader reads")
    return data


def timestamp_problem(data: bytes) -> str | None:
    """Why nbgrader could not read a submission's timestamp.txt (None: it can).

    nbgrader fails the whole submission on a timestamp it cannot parse; it only decides lateness.
    """
    from nbgrader.utils import parse_utc

    text = data.decode("utf-8", "replace").strip()
    try:
        if len(text) > 100:
            raise ValueError("longer than any timestamp")
        if text:
            parse_utc(text)
    except Exception:  # noqa: BLE001 - dateutil raises more than ValueError on what a student wrote
        return f'timestamp.txt is not a time ("{text[:40]}"): graded without a submission time, so never late'
    return None


def _listing(folder: Path) -> tuple[list[str], list[str]]:
    """(notebook stems, other names) at the top of a submission folder; hidden names left out."""
    notebooks, others = [], []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue  # .ipynb_checkpoints, macOS "._name" shadows: never a student's attempt
        if entry.name.lower().endswith(".ipynb") and not entry.is_dir(follow_symlinks=False):
            notebooks.append(entry.name[: -len(".ipynb")])
        else:
            others.append(entry.name)
    return notebooks, others


def read_submission(student: str, folder: Path, expected: list[str], where: str) -> tuple[Submission, dict[str, bytes | nbformat.NotebookNode]]:
    """What to grade in one submission folder: the Submission, and each notebook's content to stage
    (the original bytes when they need no change, else the upgraded notebook)."""
    submission = Submission(student, folder)
    if folder.is_symlink() or folder.parent.is_symlink():
        submission.problem = Problem(f"{where} is a symbolic link, not a folder",
                                     f"replace the link by the folder itself in {where}")
        return submission, {}
    try:
        notebooks, others = _listing(folder)
    except OSError as error:
        submission.problem = Problem(f"{where} cannot be read ({error.strerror})",
                                     f"make {where} readable by the user who runs the grader")
        return submission, {}
    chosen, submission.notes, submission.problem = match_notebooks(expected, notebooks, where)
    if submission.problem:
        return submission, {}
    if not chosen:
        held = ", ".join(f'"{o}"' for o in others[:5]) + (", ..." if len(others) > 5 else "")
        submission.problem = Problem(
            f"no notebook (.ipynb) in {where}" + (f" (it holds {held})" if others else " (it is empty)"),
            f"ask {student} for the .ipynb file and put it at {where}{expected[0]}.ipynb",
            f"No notebook was handed in ({'only ' + held if others else 'the hand-in was empty'}). "
            "In Jupyter use File > Download (.ipynb) and hand that file in." if len(expected) == 1 else "")
        return submission, {}
    contents: dict[str, bytes | nbformat.NotebookNode] = {}
    for target, name in chosen.items():
        filename = f"{name}.ipynb"
        try:
            data = read_bounded(folder / filename)
        except _NotAFile as why:
            advice = ("Clear its outputs (Kernel > Restart Kernel and Clear All Outputs), save it and hand it in "
                      "again." if "the grader reads" in str(why) else "Hand in the notebook file itself.")
            submission.problem = _file_problem(filename, str(why), f"it {why}. {advice}", student)
            return submission, {}
        notebook, notes, problem = parse_notebook(data, filename, student)
        if problem:
            submission.problem = problem
            return submission, {}
        submission.notes += notes
        submission.files[target] = filename
        # Untouched bytes when nothing had to change, so nbgrader reads exactly what was handed in.
        unchanged = not notes and not data.startswith(b"\xef\xbb\xbf")
        contents[target] = data if unchanged else notebook
    return submission, contents


def _copy_other_files(source: Path, dest: Path, submission: Submission) -> None:
    """The submission's other files (nbgrader copies them next to the graded notebook): regular
    files only, never a notebook and never through a link."""
    for root, dirs, files in os.walk(source):
        here = Path(root)
        for name in sorted(dirs):
            if (here / name).is_symlink():
                submission.notes.append(f'did not copy "{(here / name).relative_to(source)}" (a symbolic link)')
        for name in sorted(files):
            path = here / name
            if name.lower().endswith(".ipynb"):
                continue
            relative = path.relative_to(source)
            try:
                with _open_regular(path, OTHER_FILE_BYTES) as f:
                    if relative == Path("timestamp.txt"):
                        data = f.read(4096)
                        why = timestamp_problem(data)
                        if why:
                            submission.notes.append(why)
                            continue
                        (dest / relative).write_bytes(data)
                        continue
                    (dest / relative).parent.mkdir(parents=True, exist_ok=True)
                    with open(dest / relative, "wb") as out:
                        shutil.copyfileobj(f, out)
            except _NotAFile as why:
                submission.notes.append(f'did not copy "{relative}" (it {why})')


def stage(submission: Submission, contents: dict[str, bytes | nbformat.NotebookNode], dest: Path) -> None:
    """Write what will be graded to ``dest`` (the staged ``<student>/<assignment>`` folder)."""
    dest.mkdir(parents=True)
    _copy_other_files(submission.folder, dest, submission)
    for target, content in contents.items():
        path = dest / f"{target}.ipynb"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            nbformat.write(content, str(path))


def submission_folders(submitted: Path, assignment: str, students=()) -> list[tuple[str, Path]]:
    """(student, submitted/<student>/<assignment>) for every student who handed in ``assignment``,
    as nbgrader finds them (hidden folders are not students); only ``students`` if any are named."""
    if not submitted.is_dir():
        return []
    return [(entry.name, Path(entry.path) / assignment)
            for entry in sorted(os.scandir(submitted), key=lambda e: e.name)
            if not entry.name.startswith(".") and (Path(entry.path) / assignment).is_dir()
            and (not students or entry.name in students)]


def unsafe_folder(student: str, submitted: str = "submitted") -> Problem | None:
    """Why a folder of submitted/ cannot be graded as a student's (None: it can). Its name becomes
    the nbgrader student id: folders, gradebook rows and CSV cells. No words for the student: a
    feedback folder is never made under such a name."""
    why = student_id.why_unsafe(student)
    if why is None:
        return None
    return Problem(f"the folder name {student_id.shown(student)} {why}: not a student id the grader accepts "
                   "(letters, digits and @ + _ - ., not beginning with .)",
                   f"rename {submitted}/{student_id.shown(student)} to the student's id (e.g. their SIS login) "
                   "and run again")


def stage_all(submitted: Path, assignment: str, expected: list[str], staging: Path, students=()) -> list[Submission]:
    """Read every submission of ``assignment`` (of ``students`` if any are named) and stage the
    gradable ones under ``staging``."""
    submissions = []
    for student, folder in submission_folders(submitted, assignment, students):
        unsafe = unsafe_folder(student, submitted.name)
        if unsafe:
            submissions.append(Submission(student, folder, problem=unsafe))
            continue
        where = f"{submitted.name}/{student}/{assignment}/"
        submission, contents = read_submission(student, folder, expected, where)
        if submission.problem is None:
            stage(submission, contents, staging / student / assignment)
        submissions.append(submission)
    return submissions
