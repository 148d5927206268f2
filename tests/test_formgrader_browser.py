"""Grading by hand in formgrader, in a real browser against a real Jupyter server.

A scratch course grades two corpus submissions: ``full-marks`` and ``cheat-script-for-the-ta``
(script in its outputs and explanation, aimed at the TA's session, plus a ``report.html`` handed in
beside the notebook). ``python -m interp_course formgrader``'s server (``interp_course.formgrader``,
as the grading account) serves it on loopback, and Playwright drives Debian's Chromium through it
as a TA would: log in with the token, Manual Grading, the submission, then

- the TA sees the rubric beside the explanation, under its score box, scores it and comments, and
  after the one command for that (``python -m interp_course refresh``) grades.csv,
  grades_by_question.csv and the feedback all carry the score, and the feedback the comment,
  without the rubric;
- the page's math is typeset by MathJax from the course's own server (no CDN can be reached), and
  the links at its top lead to each answer graded by hand;
- the course uses no nbgrader exchange: no banner says it is missing; students are named as the
  roster names them, else by their id (never "None, None"), and a missing email is blank, not "None";
- on the attacker's page no payload runs: none marks the page, none makes a request outside the
  server (a loopback beacon), no terminal exists, while the ordinary content is on the page;
- a control: the same payload run on that page does all three, so the checks can fail.

Every request to anything but the Jupyter server is recorded and refused. Screenshots go to a
folder printed at the start.
"""

from __future__ import annotations

import csv
import shutil
import socket
import time
import urllib.request

import nbformat
import pytest
from conftest import PUZZLE1, grade_all, keep_runs_of, make_course, release, submit

from interp_course import cli, corpus, formgrader
from interp_course.course import Course
from interp_course.preprocessors.rubric import is_hand_graded

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser tests)")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")

TA, ATTACKER = "full-marks", "cheat-script-for-the-ta"
SCORE, COMMENT = 2.5, "Mechanism and lesson right; say which mean you would subtract."
RUBRIC_HEADING = "Rubric for the TA: explanation (3 points)."
RUBRIC_TEXT = ("Rubric (3 points).", "Model answer (3/3")  # from the source's solution region
MARKER = "data-pw" + "ned-"
# the answers graded by hand, in notebook order
HAND_GRADED = [c.metadata.nbgrader["grade_id"] for c in nbformat.read(Course().source(PUZZLE1) / f"{PUZZLE1}.ipynb", 4).cells
               if is_hand_graded(c)]
ROSTER_NAME = ("Jane", "Doe")  # the roster's name of the TA's student (the attacker is not in it)
SHOWN = {TA: f"{ROSTER_NAME[1]}, {ROSTER_NAME[0]}"}  # formgrader's Show All Names: the name, else the id


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("formgrader-screenshots")
    print(f"\nScreenshots of formgrader: {folder}")
    return folder


@pytest.fixture(scope="module")
def graded(courses_dir, graded_course):
    course = keep_runs_of(graded_course, release(make_course(courses_dir / "formgrader")))
    submit(course, PUZZLE1, [TA, ATTACKER], Course().corpus(PUZZLE1))
    xss = corpus.load(Course(), PUZZLE1).xss
    # Handed in beside the notebook: formgrader serves it, and the explanation links to it.
    (course / "submitted" / ATTACKER / PUZZLE1 / "report.html").write_text(f"<h1>Report</h1><script>{xss(21)}</script>")
    graded = grade_all(course)
    assert graded.result.returncode == 0, graded.result.stdout[-3000:] + graded.result.stderr[-3000:]
    return graded


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(graded):
    """What a TA starts: `python -m interp_course formgrader` (here on a free port)."""
    port = _free_port()
    roster = graded.root.parent / "formgrader-roster.csv"  # Canvas's Grades > Export
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section\n"
                      "    Points Possible,,,,\n"
                      f'"{ROSTER_NAME[1]}, {ROSTER_NAME[0]}",4242,,{TA},Section 1\n')
    process, token = formgrader.start(Course(graded.root), port, roster=roster)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, "the formgrader server exited"
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            assert time.monotonic() < deadline, "the formgrader server did not answer in 120 s"
            time.sleep(1)
    yield base, token
    process.terminate()
    process.wait(timeout=30)


class Browser:
    """A logged-in Chromium page; records every request that is not to the Jupyter server."""

    def __init__(self, page, base: str):
        self.page, self.base = page, base
        self.outside: list[str] = []  # requests refused: beacons, CDNs, anything off the server
        self.terminal_posts: list[str] = []
        page.context.route("**/*", self._route)
        page.on("request", self._seen)

    def _route(self, route):
        if route.request.url.startswith((self.base + "/", "file://")):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def _seen(self, request):
        if request.method == "POST" and "/api/terminals" in request.url:
            self.terminal_posts.append(request.url)

    def open_submission(self, student: str) -> None:
        """Manual Grading > puzzle1 > puzzle1 > the student's row, as a TA clicks through."""
        self.page.goto(f"{self.base}/formgrader/gradebook")
        self.page.click(f"a[href$='/formgrader/gradebook/{PUZZLE1}']")
        self.page.click(f"a[href$='/formgrader/gradebook/{PUZZLE1}/{PUZZLE1}']")
        self.page.wait_for_selector("a[href*='/formgrader/submissions/']")  # the table loads after the page
        self.page.click("text=Show All Names")
        self.page.click(f"a:text-is('{SHOWN.get(student, student)}')")
        self.page.wait_for_url("**/formgrader/submissions/*/")
        self.page.wait_for_load_state("networkidle")
        self.page.wait_for_timeout(1500)  # timers and load handlers get their chance

    def terminals(self) -> list:
        return self.page.request.get(f"{self.base}/api/terminals").json()

    def markers(self) -> list[str]:
        return self.page.evaluate(f"[...document.documentElement.attributes].map(a => a.name)"
                                  f".filter(n => n.startsWith('{MARKER}'))")


@pytest.fixture(scope="module")
def browser(server):
    base, token = server
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = chromium.new_context(viewport={"width": 1200, "height": 1000}).new_page()
        b = Browser(page, base)
        page.goto(formgrader.url(int(base.rsplit(":", 1)[1]), token))  # the URL the command prints
        assert page.url.endswith("/formgrader/manage_assignments"), page.url
        yield b
        chromium.close()


def test_the_ta_grades_the_explanation_with_the_rubric_in_view(graded, browser, screenshots):
    page = browser.page
    browser.open_submission(TA)
    rubric = page.locator(".text_cell_render", has_text=RUBRIC_HEADING)
    assert rubric.count() == 1 and rubric.is_visible()
    for text in RUBRIC_TEXT:
        assert text in rubric.inner_text()
    score, comment = page.locator("input.score#explanation"), page.locator("textarea#explanation-comment")
    # the rubric sits in the answer's own panel, beside the student's answer, right under its score box
    answer_panel = page.locator(".nbgrader_cell", has=score)
    assert answer_panel.locator("aside.interp-rubric", has_text=RUBRIC_HEADING).count() == 1
    answer = answer_panel.locator("div.interp-answer")
    assert "not spread around the origin" in answer.inner_text()  # the student's own answer
    answer_panel.scroll_into_view_if_needed()
    boxes = {name: locator.bounding_box() for name, locator in (("score", score), ("rubric", rubric), ("answer", answer))}
    assert boxes["rubric"]["x"] >= boxes["answer"]["x"] + boxes["answer"]["width"] - 1  # beside it, on its right
    assert abs(boxes["rubric"]["y"] - boxes["answer"]["y"]) < 5  # level with it
    assert 0 < boxes["rubric"]["y"] - boxes["score"]["y"] < 120  # just under the score box
    assert page.locator("aside.interp-rubric").count() == len(HAND_GRADED)  # one beside each answer

    with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url and r.request.method == "PUT") as saved:
        score.fill(str(SCORE))
        score.press("Tab")
    assert saved.value.ok
    with page.expect_response(lambda r: "/formgrader/api/comment/" in r.url and r.request.method == "PUT") as saved:
        comment.fill(COMMENT)
        comment.press("Tab")
    assert saved.value.ok
    answer_panel.scroll_into_view_if_needed()
    page.screenshot(path=screenshots / "ta-grades-the-explanation.png")
    page.reload()  # what was saved comes back from the gradebook
    playwright.expect(page.locator("input.score#explanation")).to_have_value(str(SCORE))
    playwright.expect(page.locator("textarea#explanation-comment")).to_have_value(COMMENT)

    # The one command after grading by hand: feedback, grades.csv and grades_by_question.csv together.
    assert cli.main(["--root", str(graded.root), "refresh"]) == 0
    rows = {row["student_id"]: row for row in graded.grades_csv()}
    assert float(rows[TA]["raw_score"]) == 18 + SCORE  # all 18 autograded points, and the TA's
    assert float(rows[ATTACKER]["raw_score"]) == 18  # not graded by hand yet
    with open(graded.root / "grades_by_question.csv", newline="") as f:
        by_question = {row["student_id"]: row for row in csv.DictReader(f)}
    explanation = next(column for column in by_question[TA] if column.startswith("explanation"))
    assert float(by_question[TA][explanation]) == SCORE  # the two exports agree
    assert float(by_question[TA]["score"]) == float(rows[TA]["score"]) == 18 + SCORE
    assert float(by_question[ATTACKER]["score"]) == float(rows[ATTACKER]["score"]) == 18

    feedback = graded.feedback(TA)
    assert COMMENT.split(";")[0] in feedback and f"Score: {SCORE} / 3.0" in feedback
    assert "not spread around the origin" in feedback  # the student's answer is there
    for text in ("Rubric for the TA", *RUBRIC_TEXT, "interp_course_rubric"):
        assert text not in feedback, text
    page.goto((graded.root / "feedback" / TA / PUZZLE1 / f"{graded.notebook}.html").as_uri())
    page.get_by_text(COMMENT.split(";")[0]).scroll_into_view_if_needed()
    page.screenshot(path=screenshots / "feedback-with-the-ta-comment.png")


def test_the_math_is_typeset_offline_and_the_links_lead_to_each_answer(browser, screenshots):
    page = browser.page
    browser.outside.clear()
    browser.open_submission(TA)
    page.wait_for_function("window.MathJax && MathJax.loaded === true", timeout=60_000)
    # MathJax came from this server (no other request was allowed, none was tried) and typeset the
    # notebook's math: no TeX left in the page's text, and the formulas are MathJax's elements.
    assert browser.outside == []
    scripts = page.evaluate("[...document.scripts].map(s => s.src).filter(s => s.includes('MathJax'))")
    assert scripts and all(s.startswith(browser.base + "/static/jupyter_server_mathjax/") for s in scripts), scripts
    assert page.locator(".MathJax, .MathJax_Display").count() > 20
    assert "\\lVert" not in page.inner_text("#notebook") and "$\\cos" not in page.inner_text("#notebook")
    page.screenshot(path=screenshots / "math-and-links.png")

    links = page.locator("nav.interp-jump a")
    assert links.all_inner_texts() == HAND_GRADED
    for grade_id in [*HAND_GRADED[::-1], HAND_GRADED[0]]:
        page.click(f"nav.interp-jump a:text-is('{grade_id}')")
        page.wait_for_timeout(300)
        top = page.locator(f"input.score#{grade_id}").evaluate("el => el.getBoundingClientRect().top")
        assert 50 <= top <= 300, (grade_id, top)  # just under formgrader's bar, at the top of the window
        page.screenshot(path=screenshots / f"jumped-to-{grade_id}.png")


def test_no_exchange_banner_and_students_are_named(browser, screenshots):
    page = browser.page
    page.goto(f"{browser.base}/formgrader/manage_assignments")
    page.wait_for_load_state("networkidle")
    assert page.locator("#warning-exchange").count() == 0
    assert page.locator(".alert-warning", has_text="exchange").count() == 0
    page.goto(f"{browser.base}/formgrader/manage_students")
    page.wait_for_selector("a[href*='/formgrader/manage_students/']")
    rows = {row.locator("td").nth(1).inner_text(): (row.locator("td").nth(0).inner_text(),
                                                     row.locator("td").nth(2).inner_text())
            for row in page.locator("tbody tr").all()}
    names = {student: name for student, (name, _) in rows.items()}
    assert names[TA] == f"{ROSTER_NAME[1]}, {ROSTER_NAME[0]}"  # from the roster
    assert names[ATTACKER] == ATTACKER  # not in the roster: its id
    assert not any("None" in name for name in names.values())
    assert {email for _, email in rows.values()} == {""}  # no email (a Canvas roster has none): blank, not "None"
    page.screenshot(path=screenshots / "manage-students.png")
    # An assignment's submissions name their students the same way.
    page.goto(f"{browser.base}/formgrader/manage_submissions/puzzle1")
    page.wait_for_selector("a[href*='/formgrader/manage_students/']")
    shown = {row.locator("td").nth(1).inner_text(): row.locator("td").nth(0).inner_text()
             for row in page.locator("tbody tr").all()}
    assert {TA, ATTACKER} <= shown.keys() and all(shown[student] == names[student] for student in shown), shown


def test_no_student_script_runs_on_the_manual_grading_page(browser, screenshots):

    page = browser.page
    browser.outside.clear()
    browser.open_submission(ATTACKER)
    text = page.inner_text("body")
    for ordinary in ("bold result", "0.93", "not spread around the origin", RUBRIC_HEADING):
        assert ordinary in text, ordinary
    page.get_by_text("bold result").first.scroll_into_view_if_needed()
    page.screenshot(path=screenshots / "attacker-manual-grading.png")
    assert browser.markers() == []
    assert [url for url in browser.outside if "beacon" in url] == []
    assert browser.terminal_posts == [] and browser.terminals() == []

    # The report handed in beside the notebook: the explanation's link to it lost its href, but
    # formgrader still serves the file from the TA's origin, here with a sandbox (no script).
    assert page.locator("a:text-is('my report')").get_attribute("href") is None
    page.goto(page.url.split("?")[0] + "report.html")  # formgrade.js adds ?index= as the TA moves
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)
    assert page.inner_text("h1") == "Report"
    page.screenshot(path=screenshots / "attacker-report.png")
    assert browser.markers() == []
    assert [url for url in browser.outside if "beacon" in url] == []
    assert browser.terminal_posts == [] and browser.terminals() == []


def test_control_the_same_payload_is_caught_when_it_runs(browser):
    """Run on the TA's page, a payload marks it, calls the beacon and opens a terminal."""
    xss = corpus.load(Course(), PUZZLE1).xss
    page = browser.page
    browser.outside.clear()
    browser.open_submission(ATTACKER)
    with page.expect_response(lambda r: "/api/terminals" in r.url and r.request.method == "POST") as opened:
        page.evaluate(f"() => {{ {xss(99)} }}")
    page.wait_for_timeout(500)
    try:
        assert browser.markers() == [f"{MARKER}99"]
        assert any(url.endswith("/beacon/99") for url in browser.outside)
        # the server opened it (its shell, the grading account's nologin, then exits at once)
        assert opened.value.status == 200 and opened.value.json()["name"]
    finally:
        for terminal in browser.terminals():
            page.request.delete(f"{browser.base}/api/terminals/{terminal['name']}",
                                headers={"X-XSRFToken": _xsrf(page)})
    assert browser.terminals() == []


def _xsrf(page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "_xsrf")
