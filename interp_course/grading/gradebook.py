"""The gradebook's state before grading, and rebuilding what nbgrader can rebuild.

``nbgrader autograde`` needs the assignment and its notebooks in gradebook.db; without them every
submission fails ("No assignment with ID ... exists") or is skipped ("Skipping unknown
notebook"). nbgrader puts them there in ``generate_assignment``, from source/. A fresh term or a
copied course folder has no gradebook (or an empty one), so before grading we rebuild that part
the same way: ``generate_assignment`` from source/, with its student version written to a
throwaway folder so that release/ (what students were given) is never touched.

A gradebook that is not an SQLite database is someone's data we do not understand: refuse, and
never overwrite it.
"""

from __future__ import annotations

import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Callable

from interp_course.security import grader_user
from interp_course.course import Course
from interp_course.exit_status import Refusal

SQLITE_HEADER = b"SQLite format 3\x00"


def missing_from_gradebook(path: Path, assignment: str, notebooks: list[str]) -> str | None:
    """Why the gradebook cannot grade ``assignment`` yet (None: it can), in words.

    Raises ``Refusal`` when the file is not a database or cannot be read: rebuilding would
    destroy it.
    """
    if not path.exists():
        return f"there is no {path.name}"
    if path.stat().st_size == 0:
        return f"{path.name} is empty"
    with open(path, "rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise Refusal(f"{path} is not an SQLite database, so nothing was graded and it was left as it "
                      f"is: if it is a stray file, move it away (mv {path.name} {path.name}.not-a-db) "
                      f"and run again to rebuild the gradebook from source/; if it is your gradebook, "
                      f"restore it from a backup")
    try:
        # Read-only: inspecting must never change a gradebook, even a damaged one.
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"assignment", "notebook"} <= tables:
                return f"{path.name} has no nbgrader tables"
            found = {row[0] for row in db.execute(
                "SELECT notebook.name FROM notebook JOIN assignment ON notebook.assignment_id = assignment.id "
                "WHERE assignment.name = ?", (assignment,))}
            has_assignment = found or db.execute("SELECT 1 FROM assignment WHERE name = ?", (assignment,)).fetchone()
    except sqlite3.DatabaseError as error:
        raise Refusal(f"{path} cannot be read as a database ({error}), so nothing was graded and it was left "
                      f"as it is: restore it from a backup, or move it away to rebuild an empty gradebook "
                      f"from source/ (manual grades in it would be lost)") from None
    if not has_assignment:
        return f"{path.name} has no assignment {assignment}"
    absent = [n for n in notebooks if n not in found]
    if absent:
        return f"{path.name} lacks {', '.join(n + '.ipynb' for n in absent)} of {assignment}"
    return None


def ensure_gradebook(course: Course, assignment: str, run_nbgrader: Callable[..., object]) -> str | None:
    """Rebuild the gradebook's record of ``assignment`` if it lacks it; the line to print, if any.

    ``run_nbgrader(*args)`` runs the nbgrader CLI in the course root and returns its exit code.
    """
    why = missing_from_gradebook(course.gradebook, assignment, course.notebooks(assignment))
    if why is None:
        return None
    with tempfile.TemporaryDirectory(prefix="interp-course-release-") as throwaway:
        grader_user.hand_over(Path(throwaway))  # nbgrader writes it as the grading account
        code = run_nbgrader("generate_assignment", assignment, "--force", "--log-level=WARN",
                            f"--CourseDirectory.release_directory={throwaway}")
    still = missing_from_gradebook(course.gradebook, assignment, course.notebooks(assignment))
    if code != 0 or still is not None:
        raise Refusal(f"{why}, and rebuilding it from source/{assignment}/ failed (see nbgrader's errors "
                      f"above): fix source/{assignment}/ until `nbgrader generate_assignment {assignment}` "
                      f"succeeds, then run again")
    return (f"Rebuilt the gradebook's record of {assignment} from source/{assignment}/ ({why}), as nbgrader "
            f"generate_assignment does; release/ was not touched.")
