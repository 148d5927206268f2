"""Reading a Canvas download's file names and roster (no nbgrader run)."""

from __future__ import annotations

import pytest

from interp_course.exit_status import Refusal
from interp_course.lms.canvas_collect import CANVAS_FILE, Entry, plan, read_roster, roster_lastfirst

# Canvas's Grades > Export: a "Points Possible" row under the header, the test student without ids.
ROSTER = """\
Student,ID,SIS User ID,SIS Login ID,Section,Puzzle 1 (4242)
    Points Possible,,,,,18.00
"Doe, Jane",1234,S001,jdoe,Section A,
"Roe, Smith",2345,S002,rsmith,Section A,
"Student, Test",9999,,,Section A,
"Evil, Eve",6666,S006,../eve,Section A,
"""


def test_canvas_file_names_are_read_as_canvas_writes_them():
    match = CANVAS_FILE.match("van_der_bergann_LATE_2345_6789_puzzle1 (1).ipynb")
    assert match.group("lastfirst", "late", "student_id", "canvas_file_id", "file_id") == (
        "van_der_bergann", "LATE_", "2345", "6789", "puzzle1 (1).ipynb")
    assert CANVAS_FILE.match("doejane_1234_5678_puzzle1.ipynb")["late"] is None


def test_the_roster_maps_canvas_ids_and_says_which_rows_it_cannot(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER)
    ids, problems = read_roster(path)
    assert ids == {"1234": "jdoe", "2345": "rsmith"}
    assert sorted(problems) == ["6666", "9999"] and "no 'SIS Login ID'" in problems["9999"]
    assert read_roster(path, "SIS User ID")[0] == {"1234": "S001", "2345": "S002", "6666": "S006"}
    with pytest.raises(Refusal, match="no column 'Email'"):
        read_roster(path, "Email")


def test_plan_collects_what_it_can_and_says_why_not_for_the_rest():
    names = ["doejane_1234_5678_puzzle1.ipynb", "roesmith_LATE_2345_6789_puzzle1-1.ipynb",
             "roesmith_LATE_2345_6700_puzzle1-1.ipynb", "nobody_7777_7001_puzzle1.ipynb",
             "doejane_1234_5679_notes.pdf", "anon_x7y2k_7002_puzzle1.ipynb", "studenttest_9999_7003_puzzle1.ipynb",
             "puzzle1.ipynb"]
    entries = {e.name: e for e in plan(names, {"1234": "jdoe", "2345": "rsmith"}, {"9999": "no id"})}
    assert entries["doejane_1234_5678_puzzle1.ipynb"] == Entry("doejane_1234_5678_puzzle1.ipynb", "jdoe", "puzzle1.ipynb")
    assert entries["roesmith_LATE_2345_6789_puzzle1-1.ipynb"].student == "rsmith"
    assert entries["roesmith_LATE_2345_6789_puzzle1-1.ipynb"].late
    reasons = {name: e.why_not for name, e in entries.items() if e.student is None}
    assert "earlier upload of puzzle1-1.ipynb by rsmith" in reasons["roesmith_LATE_2345_6700_puzzle1-1.ipynb"]
    assert "Canvas user 7777 is not in the roster" in reasons["nobody_7777_7001_puzzle1.ipynb"]
    assert "not a notebook" in reasons["doejane_1234_5679_notes.pdf"]
    assert "anonymous grading" in reasons["anon_x7y2k_7002_puzzle1.ipynb"]
    assert reasons["studenttest_9999_7003_puzzle1.ipynb"].startswith("no id: fix that row")
    assert "not named as Canvas names submissions" in reasons["puzzle1.ipynb"]


def test_a_display_name_cannot_hand_a_notebook_to_the_only_roster_user_it_names(tmp_path):
    """Mallory (Canvas user 2345, missing from a stale roster) names herself "x_1234_1": her file
    splits as user 1234 (jdoe, in the roster) or as herself. Only a split whose name is the user's
    own in the roster is collected; an honest file name that splits two ways still is."""
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER)
    lastfirst = roster_lastfirst(path)
    assert lastfirst["1234"] == "doejane" and lastfirst["2345"] == "roesmith"
    stale = {"1234": "jdoe"}
    names = ["x_1234_1_2345_100_puzzle1.ipynb", "doejane_1234_5678_hw_1_2_puzzle1.ipynb"]
    entries = {e.name: e for e in plan(names, stale, {}, lastfirst)}
    forged = entries["x_1234_1_2345_100_puzzle1.ipynb"]
    assert forged.student is None and forged.why_not.startswith("ambiguous: its name reads more than one way")
    assert "only with the name 'x', not theirs in the roster" in forged.why_not
    assert entries["doejane_1234_5678_hw_1_2_puzzle1.ipynb"].student == "jdoe"
