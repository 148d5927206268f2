"""`python -m interp_course collect` (what `make collect` runs) on a zip laid out as Canvas lays it out.

Canvas's "Download Submissions" zip holds every student's latest upload at its top level, named
``<lastfirst>_[LATE_]<user id>_<file id>_<file name>`` (instructure/canvas-lms,
lib/content_zipper.rb); the roster is Canvas's Grades > Export CSV.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import PUZZLE1, make_course
from interp_course.cli import nbgrader_env
from interp_course.course import Course
from interp_course.grading.staging import read_submission

CORPUS = Course().corpus(PUZZLE1)
FULL_MARKS = (CORPUS / "full-marks.ipynb").read_bytes()
BLANK = (CORPUS / "blank.ipynb").read_bytes()
ROSTER = """\
Student,ID,SIS User ID,SIS Login ID,Section,Puzzle 1 (4242)
    Points Possible,,,,,18.00
"Doe, Jane",1234,S001,jdoe,Section A,
"Roe, Smith",2345,S002,rsmith,Section A,
"Lee, Kim",3456,S003,klee,Section A,
"Student, Test",9999,,,Section A,
"""
DOWNLOAD = {
    "doejane_1234_5678_puzzle1.ipynb": FULL_MARKS,
    "roesmith_LATE_2345_6789_puzzle1-1.ipynb": BLANK,  # late, and Canvas renamed the re-upload
    "leekim_3456_6790_puzzle1.pdf": b"%PDF-1.4\n",
    "gonegone_7777_7001_puzzle1.ipynb": BLANK,  # dropped the course: not in the roster
}


def collect(root: Path, download: Path, roster: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interp_course", "--root", str(root), "collect",
                           "--assignment", PUZZLE1, "--zip", str(download), "--roster", str(roster)],
                          env=nbgrader_env(), capture_output=True, text=True)


def test_a_canvas_download_lands_in_submitted_by_roster_id(tmp_path):
    course = make_course(tmp_path / "course")
    download, roster = tmp_path / "submissions.zip", tmp_path / "roster.csv"
    with zipfile.ZipFile(download, "w") as z:
        for name, data in DOWNLOAD.items():
            z.writestr(name, data)
    roster.write_text(ROSTER)

    result = collect(course, download, roster)

    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(str(p.relative_to(course / "submitted")) for p in (course / "submitted").rglob("*") if p.is_file()) == [
        "jdoe/puzzle1/puzzle1.ipynb", "rsmith/puzzle1/puzzle1-1.ipynb"]
    assert (course / "submitted/jdoe/puzzle1/puzzle1.ipynb").read_bytes() == FULL_MARKS
    # Written 0644 whatever the zip says, and no working folder is left in the course.
    assert {stat.S_IMODE(p.stat().st_mode) for p in (course / "submitted").rglob("*") if p.is_file()} == {0o644}
    assert not list(course.glob(".collect-*")) and not (course / "downloaded").exists()
    lines = result.stdout.splitlines()
    assert "Collected 2 notebooks of 2 students into submitted/<student>/puzzle1/." in lines
    assert "  Late, as Canvas marks it: rsmith" in lines
    closing = lines[lines.index("NOT COLLECTED: 2 files of the download:"):]
    assert closing[1].startswith("  gonegone_7777_7001_puzzle1.ipynb: Canvas user 7777 is not in the roster")
    assert closing[2].startswith("  leekim_3456_6790_puzzle1.pdf: not a notebook")

    # Canvas's name for a re-upload is what `make grade` then rescues.
    submission, _ = read_submission("rsmith", course / "submitted/rsmith/puzzle1", ["puzzle1"], "submitted/rsmith/puzzle1/")
    assert submission.problem is None and submission.files == {"puzzle1": "puzzle1-1.ipynb"}

    # A later download replaces a student's folder, and leaves the others alone.
    with zipfile.ZipFile(download, "w") as z:
        z.writestr("doejane_1234_5800_puzzle1.ipynb", BLANK)
    result = collect(course, download, roster)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (course / "submitted/jdoe/puzzle1/puzzle1.ipynb").read_bytes() == BLANK
    assert (course / "submitted/rsmith/puzzle1/puzzle1-1.ipynb").read_bytes() == BLANK


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    course = make_course(tmp_path / "course")
    (tmp_path / "roster.csv").write_text(ROSTER)
    (tmp_path / "download.zip").write_text("not a zip")
    result = collect(course, tmp_path / "download.zip", tmp_path / "roster.csv")
    assert result.returncode == 2 and "is not a zip file" in result.stderr
    assert not (course / "submitted").exists()
