"""Nothing a student's kernel writes is followed by the grader: the corpus's attacks on nbgrader's
own side, graded for real in the same batch as every other submission (the graded_course fixture).

Before the kernel got a scratch folder of its own, its working folder was nbgrader's output folder:
a link planted there overwrote the source notebook, a classmate's submission, the gradebook or the
config, chmod-ed private files and copied instructor files into the attacker's feedback/.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from pathlib import Path

from conftest import PRIVATE_NOTES, PUZZLE1, GradedCourse, grader_tmp, snapshot
from interp_course import corpus
from interp_course.course import Course
from interp_course.judging.assignment import load_assignment

COURSE = Course()
SUBMISSIONS = corpus.load(COURSE, PUZZLE1).SUBMISSIONS
ATTACKS = [s.name for s in SUBMISSIONS if s.group in ("cheat", "fault")]
# What nbgrader itself copies beside each graded notebook and feedback page: the assignment's own
# other files in source/ (Puzzle 1's requirements.txt), the same for every student.
SHIPPED = sorted(p.name for p in COURSE.source(PUZZLE1).iterdir() if p.is_file() and p.suffix != ".ipynb")


def _instructor_markers(root: Path) -> dict[str, bytes]:
    """Byte strings that only the instructor's files contain, to look for in what students get."""
    markers = {"gradebook": b"SQLite format 3", "private notes": (root / PRIVATE_NOTES).read_bytes().strip(),
               "solution markers": b"### BEGIN SOLUTION"}
    release = (root / "release" / PUZZLE1 / "puzzle1.ipynb").read_bytes()
    for name, path in (("checks.py", root / "grader_tests" / PUZZLE1 / "checks.py"),
                       ("solutions", root / "solutions" / PUZZLE1 / "__init__.py")):
        # Long lines of the file that the released notebook (and so any submission) does not contain.
        lines = [line.strip() for line in path.read_bytes().splitlines() if len(line.strip()) > 40]
        for i, line in enumerate(line for line in lines if line not in release):
            markers[f"{name}:{i}"] = line
    return markers


def test_course_files_keep_their_content_and_mode(graded_course: GradedCourse):
    after = snapshot(graded_course.root)
    changed = {k: (graded_course.before.get(k), after.get(k)) for k in graded_course.before.keys() | after.keys()
               if graded_course.before.get(k) != after.get(k)}
    assert changed == {}
    assert stat.S_IMODE(os.lstat(graded_course.root / PRIVATE_NOTES).st_mode) == 0o600


def test_attackers_get_back_only_their_own_graded_notebook(graded_course: GradedCourse):
    markers = _instructor_markers(graded_course.root)
    for name in ATTACKS:
        for side, expected in (("autograded", "puzzle1.ipynb"), ("feedback", "puzzle1.html")):
            folder = graded_course.root / side / name
            entries = [Path(d, n) for d, ds, fs in os.walk(folder) for n in ds + fs]
            assert sorted(p.relative_to(folder).as_posix() for p in entries) == sorted(
                [PUZZLE1, f"{PUZZLE1}/{expected}", *(f"{PUZZLE1}/{shipped}" for shipped in SHIPPED)]), name
            target = folder / PUZZLE1 / expected
            assert stat.S_ISREG(os.lstat(target).st_mode), f"{side}/{name} is not a regular file"
            data = target.read_bytes()
            written = (COURSE.corpus(PUZZLE1) / f"{name}.ipynb").read_bytes()  # what the student wrote
            leaked = [what for what, marker in markers.items() if marker in data and marker not in written]
            assert not leaked, f"{side}/{name} contains {leaked}"


def test_classmate_targeted_by_links_is_graded_normally(graded_course: GradedCourse):
    scores = graded_course.scores("full-marks")
    autograded_max = sum(check.points for check in load_assignment(COURSE, PUZZLE1).checks.values())
    assert sum(v for v in scores.values() if v is not None) == autograded_max == 18
    submitted = graded_course.root / "submitted" / "full-marks" / PUZZLE1 / "puzzle1.ipynb"
    assert submitted.read_bytes() == (COURSE.corpus(PUZZLE1) / "full-marks.ipynb").read_bytes()


def test_gradebook_survives_and_holds_every_student(graded_course: GradedCourse):
    gradebook = Course(graded_course.root).gradebook
    assert stat.S_ISREG(os.lstat(gradebook).st_mode)
    with sqlite3.connect(f"file:{gradebook}?mode=ro", uri=True) as db:
        students = {row[0] for row in db.execute("SELECT id FROM student")}
    assert students == {s.name for s in SUBMISSIONS}
    assert "Removing failed" not in graded_course.log


def test_run_folders_are_removed_and_no_daemon_survives(graded_course: GradedCourse):
    # (each grader process makes its run folders in a runs folder of its own, izyg-*, where its
    # kernels, all forked from its zygote, can be given them; it removes it when it ends)
    left = [p.name for p in grader_tmp(graded_course.root).iterdir()
            if p.name.startswith(("interp-course-grade-", "nbsbx-", "izyg-"))]
    assert left == []  # fault-odd-trees left a 1200-deep tree and unreadable folders in its own
    ps = subprocess.run(["ps", "-eo", "stat,args"], capture_output=True, text=True).stdout.splitlines()
    assert [line for line in ps if "interp-course-daemon-marker" in line and not line.startswith("Z")] == []


def test_grading_ran_as_the_unprivileged_account(graded_course: GradedCourse):
    from interp_course.security import grader_user

    if not grader_user.is_root():
        return  # a developer's own account: nothing to drop
    uid = grader_user.account().pw_uid
    for path in (Course(graded_course.root).gradebook, graded_course.root / "autograded" / "full-marks"):
        assert os.lstat(path).st_uid == uid
    assert os.lstat(graded_course.root / "source").st_uid == 0
