"""Formgrader's lists of students and of an assignment's submissions, as a TA reads them.

A gradebook in a scratch folder (nbgrader's API), named from a Canvas roster by
``formgrader.name_students``; its students, as the gradebook gives them to formgrader, are drawn
by nbgrader's own scripts as the course's server serves them (``formgrader.patched_script``) in
headless Chromium. The whole server is tests/test_formgrader_browser.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from interp_course import formgrader
from interp_course.course import COURSE_ID, Course
from interp_course.security import grader_user

NBGRADER_STATIC = Path(__import__("nbgrader").__file__).parent / "server_extensions" / "formgrader" / "static"
LIBRARIES = ["node_modules/jquery/dist/jquery.min.js", "node_modules/underscore/underscore-min.js",
             "node_modules/backbone/backbone-min.js", "js/utils.js"]
ROSTER = {"jdoe": ("Jane", "Doe"), "plato": ("", "Plato"), "named": ("Roster", "Name")}

# A row of each list for each student, drawn by the page's script; the text of its cells.
ROWS = {
    "manage_students.js": """students => students.map(s => {
        const row = insertRow($("#main-table"));
        new StudentUI({model: new Student(s), el: row}).render();
        return row.find("td").map((_, td) => $(td).text()).get().slice(0, 3);  // name, id, email
    })""",
    "manage_submissions.js": """students => students.map(s => {
        const row = insertRow($("#main-table"));
        new SubmissionUI({el: row, model: new Submission({student: s.id, name: "puzzle1", first_name: s.first_name,
            last_name: s.last_name, autograded: true, timestamp: null, score: 1, max_score: 2})});
        return row.find("td").map((_, td) => $(td).text()).get().slice(0, 2);  // name, id
    })""",
}

needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None,
                                    reason="chromium is not installed (apt-get install -y chromium)")


@pytest.fixture
def students(tmp_path, monkeypatch) -> list[dict]:
    """The gradebook's students as formgrader's API gives them, after the roster named them."""
    from nbgrader.api import Gradebook

    monkeypatch.setattr(grader_user, "is_root", lambda: False)  # the scratch gradebook is this process's
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # alembic
    course = Course(tmp_path / "course")
    course.gradebook.parent.mkdir(parents=True)
    with Gradebook(course.db_url, course_id=COURSE_ID) as gb:
        for student in ("jdoe", "plato", "absent"):
            gb.add_student(student)
        gb.add_student("named", first_name="Given", last_name="ByTA", email="ta@example.edu")
    assert formgrader.name_students(course, ROSTER) == 2  # a name a TA gave stays
    with Gradebook(course.db_url, course_id=COURSE_ID) as gb:
        return sorted(gb.student_dicts(), key=lambda s: s["id"])


def shown_rows(script: str, students: list[dict], folder: Path) -> list[list[str]]:
    """The rows ``script`` (as the course's server serves it) draws for ``students``."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser tests)")
    (folder / script).write_text(formgrader.patched_script(script))
    tags = "".join(f'<script src="{(NBGRADER_STATIC / library).as_uri()}"></script>' for library in LIBRARIES)
    page = folder / "page.html"
    page.write_text(f'<html><head><script>var base_url = "", assignment_id = "puzzle1";</script>{tags}'
                    f'<script src="{script}"></script></head><body><table><tbody id="main-table"></tbody>'
                    '</table></body></html>')
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"])
        tab = browser.new_page()
        tab.goto(page.as_uri())
        rows = tab.evaluate(ROWS[script], json.loads(json.dumps(students, default=str)))
        browser.close()
    return rows


def test_the_roster_names_the_students_without_a_name_and_gives_no_email(students):
    assert [(s["id"], s["first_name"], s["last_name"], s["email"]) for s in students] == [
        ("absent", None, None, None), ("jdoe", "Jane", "Doe", None), ("named", "Given", "ByTA", "ta@example.edu"),
        ("plato", "", "Plato", None)]


@needs_chromium
def test_manage_students_shows_roster_names_else_ids_and_a_blank_for_no_email(students, tmp_path):
    assert shown_rows("manage_students.js", students, tmp_path) == [
        ["absent", "absent", ""], ["Doe, Jane", "jdoe", ""], ["ByTA, Given", "named", "ta@example.edu"],
        ["Plato", "plato", ""]]


@needs_chromium
def test_an_assignments_submissions_show_roster_names_else_ids(students, tmp_path):
    assert shown_rows("manage_submissions.js", students, tmp_path) == [
        ["absent", "absent"], ["Doe, Jane", "jdoe"], ["ByTA, Given", "named"], ["Plato", "plato"]]
