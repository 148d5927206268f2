"""The pages people read, without a browser: the student's feedback page and the TA's formgrader page.

Feedback (``FeedbackExporter`` with what ``generate_feedback`` configures): one points summary (the
package's, not nbgrader's list of "Test cell" links), no prompts, no stray score under a verdict, a
viewport for phones, emoji that carry meaning as text. Formgrader (``formgrader.formgrade_pages``):
MathJax from the course's own server, links to the answers graded by hand, each rubric beside its
answer, no exchange noise for a course without one, students named by the roster or their id.
The browser tests (test_feedback_browser.py, test_formgrader_browser.py) look at the real pages.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from traitlets.config import Config

from interp_course import formgrader
from interp_course.preprocessors.feedback_page import FeedbackExporter, FeedbackPage, readable_emoji
from interp_course.preprocessors.rubric import HAND_GRADED, RUBRIC_BESIDE, RubricBesideScore, rubric_cell

NBGRADER = Path(__import__("nbgrader").__file__).parent / "server_extensions" / "formgrader"
VERDICT = "test_a: 1.5 / 2 points\n  ✓ 1.5/1.5  values\n  ✗ 0/0.5  shape\n"


def graded(cell, grade_id, points, score=None, solution=False):
    cell.metadata["nbgrader"] = {"grade": True, "solution": solution, "grade_id": grade_id, "points": points,
                                 "score": score}
    return cell


def feedback_notebook():
    test = graded(new_code_cell("hand_in()", execution_count=3, outputs=[
        new_output("stream", name="stdout", text=VERDICT),
        new_output("execute_result", data={"text/plain": "1.5"}, execution_count=None)]), "test_a", 2, 1.5)
    mine = new_code_cell("1 + 1", execution_count=4, outputs=[
        new_output("execute_result", data={"text/plain": "2"}, execution_count=4)])
    answer = graded(new_markdown_cell("My hypothesis."), "hypothesis", 2, 1.0, solution=True)
    return new_notebook(cells=[
        new_markdown_cell("## Part 1 — Reproduce\n\n> **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵🔵\n\n"
                          "<details><summary>Hint</summary>\n\nuse $x$\n\n</details>"),
        test, mine, new_markdown_cell("## Part 2 — Hypothesis"), answer])


def feedback_page(late_penalty=0.0) -> BeautifulSoup:
    """What generate_feedback writes, as nbgrader configures the exporter (its feedback template)."""
    config = Config()
    config.HTMLExporter.template_name = "feedback"
    config.HTMLExporter.extra_template_basedirs = [str(NBGRADER / "templates")]
    config.HTMLExporter.extra_template_paths = [str(NBGRADER / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
    exporter = FeedbackExporter(config=config)
    exporter.register_preprocessor(FeedbackPage, enabled=True)
    resources = {"nbgrader": {"notebook": "puzzle1", "score": 2.5, "max_score": 4.0, "late_penalty": late_penalty}}
    page, _ = exporter.from_notebook_node(feedback_notebook(), copy.deepcopy(resources))
    return BeautifulSoup(page, "html.parser")


def test_the_feedback_page_has_one_summary_no_prompts_and_fits_a_phone():
    soup = feedback_page()
    assert soup.find(id="toc") is None  # nbgrader's list of "Test cell" / "Written response" links
    assert "Test cell" not in soup.get_text() and "Written response" not in soup.get_text()
    assert len(soup.find_all("div", class_="interp-summary")) == 1
    assert soup.find("h4").get_text() == "puzzle1 (Score: 2.5 / 4.0)"
    assert soup.find("meta", attrs={"name": "viewport"})["content"] == "width=device-width, initial-scale=1"
    assert soup.find(class_="prompt") is None and "Out[" not in soup.get_text() and "In [" not in soup.get_text()
    assert soup.find_all("body") == [soup.body]  # one page, not nbgrader's page around classic's
    css = "".join(style.get_text() for style in soup.find_all("style"))
    for rule in ("white-space: pre-wrap", "overflow-wrap: anywhere", "max-width: 100%; height: auto",
                 "display: list-item", "@media (max-width: 600px)"):
        assert rule in css, rule
    assert [s.get("src") for s in soup.find_all("script")] == []  # offline: no script at all


def test_a_verdict_shows_no_stray_score_and_a_students_own_result_stays():
    soup = feedback_page()
    outputs = soup.find_all("div", class_="output_execute_result")
    assert [o.get_text().strip() for o in outputs] == ["2"]  # the student's own 1 + 1; the verdict's 1.5 is gone
    assert VERDICT.splitlines()[0] in soup.get_text()


def test_a_late_penalty_is_said_under_the_score():
    assert "Late submission penalty: -1.0 points" in feedback_page(late_penalty=1.0).get_text()
    assert "Late submission penalty" not in feedback_page().get_text()


def test_emoji_that_carry_meaning_become_text_every_font_has():
    soup = feedback_page()
    text = soup.get_text()
    assert "🔴" not in text and "⚪" not in text and "🔵" not in text
    assert "●●○○○ 2/5" in text and "●●●●● 5/5" in text
    html = readable_emoji("<p>✅ done, ❌ not, ⚠️ careful &amp; <code>🔴🔴</code> 🔴 alone</p>")
    assert BeautifulSoup(html, "html.parser").get_text() == "✓ done, ✗ not, ⚠ careful & 🔴🔴 ● alone"
    assert readable_emoji("<p>plain</p>") == "<p>plain</p>"


def rubric_notebook(rubric_under=True):
    answer = graded(new_markdown_cell("My explanation."), "explanation", 3, solution=True)
    rubric = rubric_cell("explanation", 3, "Model answer: the shared mean.")
    claim = new_markdown_cell("I am the rubric, give me 3/3")
    claim.metadata.update({RUBRIC_BESIDE: "Full marks!", HAND_GRADED: True})
    cells = [answer, rubric, claim] if rubric_under else [answer, claim, rubric]
    return new_notebook(cells=[new_markdown_cell("# Title"), *cells])


def test_formgrader_shows_each_rubric_beside_the_answer_it_grades():
    nb, _ = RubricBesideScore()(rubric_notebook(), {})
    assert [c.source.split("\n")[0] for c in nb.cells] == ["# Title", "My explanation.", "I am the rubric, give me 3/3"]
    assert "Model answer: the shared mean." in nb.cells[1].metadata[RUBRIC_BESIDE]
    assert nb.cells[1].metadata[HAND_GRADED] is True
    # what a student's cell carried under those keys is gone
    assert RUBRIC_BESIDE not in nb.cells[2].metadata and HAND_GRADED not in nb.cells[2].metadata
    # a rubric not right under its answer stays a cell of its own
    nb, _ = RubricBesideScore()(rubric_notebook(rubric_under=False), {})
    assert len(nb.cells) == 4 and RUBRIC_BESIDE not in nb.cells[1].metadata


def formgrade_page(nb) -> BeautifulSoup:
    """The submission page as formgrader's exporter renders it, with the resources its handler gives."""
    config = Config()
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [str(NBGRADER / "templates")]
    exporter = formgrader._formgrade_exporter()(config=config)
    exporter.mathjax_script = "/static/jupyter_server_mathjax/MathJax.js"
    exporter.register_preprocessor(RubricBesideScore, enabled=True)
    resources = {"assignment_id": "puzzle1", "notebook_id": "puzzle1", "submission_id": "abc", "index": 0,
                 "total": 2, "base_url": "", "student": "jdoe", "last_name": None, "first_name": None,
                 "notebook_path": "autograded/jdoe/puzzle1/puzzle1.ipynb"}
    page, _ = exporter.from_notebook_node(nb, resources)
    return BeautifulSoup(page, "html.parser")


def test_the_formgrader_page_links_the_answers_and_loads_mathjax_from_the_course_server():
    nb = rubric_notebook()
    nb.cells.append(graded(new_markdown_cell("$x^2$ is my answer"), "gpt2_answer", 2, solution=True))
    soup = formgrade_page(nb)
    links = soup.select("nav.interp-jump a")
    assert [a["href"] for a in links] == ["#answer-explanation", "#answer-gpt2_answer"]
    assert all(soup.find(id=a["href"][1:]) is not None for a in links)
    panel = soup.find(id="answer-explanation").find_next_sibling("div", class_="nbgrader_cell")
    assert panel.find("input", class_="score", id="explanation") is not None  # nbgrader's score box
    assert panel.find("textarea", id="explanation-comment") is not None
    assert "Model answer: the shared mean." in panel.find("aside", class_="interp-rubric").get_text()
    assert "My explanation." in panel.find("div", class_="interp-answer").get_text()
    sources = [s.get("src") for s in soup.find_all("script") if s.get("src")]
    mathjax = [s for s in sources if "MathJax" in s]
    assert mathjax == ["/static/jupyter_server_mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"]
    assert not any(s.startswith(("http:", "https:", "//")) for s in sources)
    assert "cdnjs" not in str(soup)
    static = Path(__import__("jupyter_server_mathjax").__file__).parent / "static"
    assert (static / "MathJax.js").is_file() and (static / "config" / "TeX-AMS-MML_HTMLorMML-full.js").is_file()


def test_a_course_without_an_exchange_is_not_told_it_is_missing(tmp_path, caplog):
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange.abc.exchange import ExchangeError

    config = Config()
    config.Exchange.root = str(tmp_path / "no-exchange")
    config.CourseDirectory.course_id = "course"
    def lister():
        return formgrader.QuietExchangeList(coursedir=CourseDirectory(config=config),
                                            authenticator=Authenticator(config=config), config=config)

    with caplog.at_level(logging.DEBUG), pytest.raises(ExchangeError):
        lister().start()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # no "[C] Unwritable directory"
    os.mkdir(tmp_path / "no-exchange")  # a course that has one: nbgrader's own listing
    assert lister().start() == []


def test_students_are_named_by_the_roster_else_by_their_id(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section\n    Points Possible,,,,\n"
                      '"Doe, Jane",4242,,jdoe,S1\n"Plato",17,,plato,S1\n"Nobody, No",18,,,S1\n')
    assert formgrader.roster_names(roster) == {"jdoe": ("Jane", "Doe"), "plato": ("", "Plato")}
    # nbgrader's lists of students and of submissions write "None, None" for a student without a
    # name and "None" for no email: the server's copies of those scripts name them by their id and
    # leave the email blank (each patch must still apply to nbgrader's script)
    for name, patches in formgrader.SCRIPT_PATCHES.items():
        script = (NBGRADER / "static" / "js" / name).read_text()
        assert all(stock in script for stock, _ in patches), name
        patched = formgrader.patched_script(name)
        assert all(ours in patched for _, ours in patches), name
    students = formgrader.patched_script("manage_students.js").split("render: function")[1].split("// score")[0]
    submissions = formgrader.patched_script("manage_submissions.js").split("// student name")[1].split("// timestamp")[0]
    assert '"None"' not in students and '"None"' not in submissions
