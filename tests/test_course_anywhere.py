"""A course graded where newcomers put it: a fresh copy under /tmp, in a folder whose name has a
space, with its own venv there too, through `make demo` (set-up, release, grade) as on a fresh
machine.

Under /tmp every sandboxed kernel gets a fresh tmpfs on /tmp, which hid the course's venv, package
and model cache from the kernels forked from the zygote: every student came back NOT GRADED.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import tempfile
from pathlib import Path

from conftest import PUZZLE1
from interp_course import corpus
from interp_course.course import CHECKOUT, Course


def copy_checkout(target: Path) -> None:
    """What a clone of this checkout holds (tracked files, and new ones git does not ignore)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=CHECKOUT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = CHECKOUT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def test_a_course_under_tmp_in_a_folder_with_a_space_grades_its_students():
    top = Path(tempfile.mkdtemp(prefix="interp course ", dir="/tmp"))
    course = top / "my course"
    try:
        copy_checkout(course)
        demo = subprocess.run(["make", "demo", "MODEL_SOURCE=stand-ins"], cwd=course, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=900)
        shown = demo.stdout[-4000:] + demo.stderr[-2000:]
        students = [s.name for s in corpus.load(Course(), PUZZLE1).SUBMISSIONS if s.group == "demo"]
        assert demo.returncode == 0, shown
        assert f"Autograded {len(students)} of {len(students)} submissions of {PUZZLE1}" in demo.stdout, shown
        assert "NOT GRADED" not in demo.stdout, shown
        with open(course / "grades.csv", newline="") as f:
            rows = {r["student_id"]: r for r in csv.DictReader(f) if r["assignment"] == PUZZLE1}
        assert sorted(rows) == sorted(students)
        if "full-marks" in rows:
            assert float(rows["full-marks"]["score"]) == float(rows["full-marks"]["max_score"])
        for student in students:
            assert (course / "feedback" / student / PUZZLE1).is_dir(), student
    finally:
        shutil.rmtree(top, ignore_errors=True)
