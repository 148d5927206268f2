"""The pure parts of the offline feedback page: math to MathML, the points per part, image checks."""

from __future__ import annotations

import base64
import random
import re
import struct
import time
import zlib

import nbformat
from bs4 import BeautifulSoup
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from interp_course.feedback.summary import parts, summary_html
from interp_course.security.images import png_size, valid_base64_image
from interp_course.feedback import math_render
from interp_course.feedback.math_render import MAX_FORMULAS, MathBudget, render_math, sanitize_mathml, tex_to_mathml
from interp_course.preprocessors.feedback_page import MATH_NOTE, FeedbackPage
from interp_course.preprocessors.sanitize_submission import SanitizeSubmission

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


# ------------------------------------------------------------------------------------- math
def test_inline_and_display_math_become_mathml():
    html = render_math(r"<p>cosine: $\cos(x, y) = \hat x \cdot \hat y$ and $$\bar x = \frac{1}{n}\sum_i x_i$$</p>")
    soup = BeautifulSoup(html, "html.parser")
    inline, block = soup.find_all("math")
    assert inline["display"] == "inline" and block["display"] == "block"
    assert "$" not in soup.get_text() and "cosine:" in soup.get_text()
    assert block.find("mfrac") is not None


def test_math_in_code_and_unreadable_tex_stay_as_written():
    html = "<p><code>$x$</code> costs $5 and $\\frac{1}{$</p><pre>$y$</pre>"
    out = render_math(html)
    assert "<code>$x$</code>" in out and "<pre>$y$</pre>" in out


def test_mathml_keeps_no_links_styles_or_foreign_elements():
    mathml = tex_to_mathml(r"\href{javascript:alert(1)}{x} + \style{background:url(http://e/)}{y}")
    assert mathml is not None and "<mi>x</mi>" in mathml
    assert "href" not in mathml and "javascript" not in mathml and "style" not in mathml and "url" not in mathml
    evil = ('<math xmlns="http://www.w3.org/1998/Math/MathML"><mi onclick="x()">a</mi>'
            '<maction actiontype="statusline"><mi>b</mi></maction><mtext>&lt;img src=x onerror=y&gt;</mtext>'
            '<mo mathcolor="red" mathbackground="url(x)">+</mo></math>')
    clean = sanitize_mathml(evil)
    assert clean == ('<math xmlns="http://www.w3.org/1998/Math/MathML"><mi>a</mi>'
                     '<mtext>&lt;img src=x onerror=y&gt;</mtext><mo mathcolor="red">+</mo></math>')
    assert sanitize_mathml("<svg/>") is None and sanitize_mathml("not xml") is None


def test_math_is_written_as_it_always_was():
    html = r"<p>cosine: $\cos(x, y)$ &amp; $$\bar x = \frac{1}{n}$$ if <em>$n &gt; 1$</em></p>"
    m = 'xmlns="http://www.w3.org/1998/Math/MathML"'
    assert render_math(html) == (
        f'<p>cosine: <math display="inline" {m}><mrow><mi>cos</mi><mo stretchy="false">(</mo><mi>x</mi><mo>,</mo>'
        f'<mi>y</mi><mo stretchy="false">)</mo></mrow></math> &amp; <math display="block" {m}><mrow><mover><mi>x</mi>'
        f'<mo stretchy="true">¯</mo></mover><mo>=</mo><mfrac><mrow><mn>1</mn></mrow><mrow><mi>n</mi></mrow></mfrac>'
        f'</mrow></math> if <em><math display="inline" {m}><mrow><mi>n</mi><mo>&gt;</mo><mn>1</mn></mrow></math></em></p>')


# What the finder replaced: a regex of the four delimiters (quadratic on openers without a closer).
_FORMULA_REGEX = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|\$([^$\n]+?)\$", re.DOTALL)


def test_formulas_are_found_where_the_delimiters_say():
    rng = random.Random(28)
    pieces = ["$", "$$", "\\[", "\\]", "\\(", "\\)", "x", "\n", " ", "\\"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 25)))
        expected = [(m.start(), m.end(), next(g for g in m.groups() if g is not None), m[1] is not None or m[2] is not None)
                    for m in _FORMULA_REGEX.finditer(text)]
        assert list(math_render._formulas(text)) == expected, text


def test_finding_formulas_is_linear_in_the_text():
    """Openers without a closer (what ``\\\\[`` typed 20,000 times renders to): the regex took 3.9 s
    for 20,000 of them, 16 times as long for 4 times as many."""
    def seconds(openers: int) -> float:
        html = "<p>" + "\\[\\(" * openers + "</p>"
        return min(_timed(render_math, html) for _ in range(3))

    assert seconds(40_000) < 30 * seconds(5_000)  # 8 when linear, 64 when quadratic


def _timed(function, *args) -> float:
    start = time.monotonic()
    function(*args)
    return time.monotonic() - start


def test_past_the_budget_formulas_stay_as_escaped_tex():
    html = "<p>$x$ $y$ $a &lt; b$ $z$</p><p>$w$</p>"
    budget = MathBudget(formulas=2)
    out = render_math(html, budget)
    assert out.count("<math") == 2 and budget.ran_out
    assert out.endswith("</math> $a &lt; b$ $z$</p><p>$w$</p>")  # inert text, the later ones too
    assert render_math("<p>$v$</p>", budget) == "<p>$v$</p>"  # the rest of the page: as written
    assert render_math("<p>a long one: $x + y$</p>", MathBudget(tex_chars=4)).count("<math") == 0
    timed_out = MathBudget(seconds=0)
    assert render_math("<p>$x$</p>", timed_out) == "<p>$x$</p>" and timed_out.ran_out
    unread = MathBudget(formulas=3)
    assert render_math(r"<p>$\frac{1}{$ $x$</p>", unread).count("<math") == 1 and not unread.ran_out
    cell = "<p>$p$ $q$ $r$</p>"
    assert render_math(cell).count("<math") == 3  # kept for the next page, which pays for it all the same:
    assert render_math(cell, MathBudget(formulas=2)).count("<math") == 2


def test_a_math_bomb_renders_the_capped_formulas_and_says_where_the_rest_begins():
    """20 cells of 5,000 formulas each (0.9 MB): the first MAX_FORMULAS become MathML, every
    other one is its TeX, and a note says so once, before the cell where the math stopped."""
    bomb = " ".join(["$a_{c}$"] * 5000)
    nb = new_notebook(cells=[new_markdown_cell(f"## Cell {k}\n\n{bomb}") for k in range(20)])
    nb, _ = FeedbackPage()(nb, {})
    sources = [cell.source for cell in nb.cells]
    assert sum(source.count("<math") for source in sources) == MAX_FORMULAS
    notes = [i for i, source in enumerate(sources) if "interp-math-note" in source]
    stops = MAX_FORMULAS // 5000  # the cell whose math ran out
    assert notes == [stops] and MATH_NOTE in BeautifulSoup(sources[stops], "html.parser").get_text()
    partial = BeautifulSoup(sources[stops + 1], "html.parser")
    assert len(partial.find_all("math")) == MAX_FORMULAS % 5000
    assert partial.get_text().count("$a_{c}$") == 5000 - MAX_FORMULAS % 5000
    assert all(source == f"## Cell {k}\n\n{bomb}" for k, source in enumerate(sources[stops + 2:], stops + 1))
    nbformat.validate(nb)


def test_a_page_within_the_budget_has_no_note():
    nb = course_notebook()
    nb.cells[2].source += "\n\n" + " ".join(["$x_i$"] * 100)
    nb, _ = FeedbackPage()(nb, {})
    assert nb.cells[3].source.count("<math") == 101 and not any("interp-math-note" in c.source for c in nb.cells)


# ---------------------------------------------------------------------------------- summary
def graded(source, grade_id, points, score, kind="code", solution=False):
    cell = new_code_cell(source) if kind == "code" else new_markdown_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "solution": solution, "grade_id": grade_id, "points": points,
                                 "score": score}
    return cell


def course_notebook():
    return new_notebook(cells=[
        new_markdown_cell("# Title\n\n## Setup"),
        new_code_cell("import torch"),
        new_markdown_cell("## Part 1 — Reproduce *the* puzzle (3 points)\n\ntext $x$"),
        graded("hand_in()", "test_a", 2, 2.0),
        graded("hand_in()", "test_b", 1, 0.5),
        new_markdown_cell("### Exercise 2.1 is not a part"),
        new_markdown_cell("## Part 2 — Hypothesis"),
        graded("answer", "hypothesis", 2, None, kind="markdown", solution=True),
        new_markdown_cell("## Wrap-up"),
    ])


def test_parts_follow_the_level_2_headings_in_notebook_order():
    found = parts(course_notebook())
    assert [(p.title, p.score, p.points, [c.grade_id for c in p.cells]) for p in found] == [
        ("Part 1 — Reproduce the puzzle (3 points)", 2.5, 3, ["test_a", "test_b"]),
        ("Part 2 — Hypothesis", 0, 2, ["hypothesis"]),
    ]
    assert found[1].cells[0].kind == "by hand" and found[0].cells[0].kind == "autograded"


def test_summary_links_every_graded_cell_and_escapes_titles():
    nb = course_notebook()
    nb.cells[2].source = "## Part <1> & more"
    soup = BeautifulSoup(summary_html(parts(nb)), "html.parser")
    rows = [[td.get_text(" ", strip=True) for td in tr.find_all("td")] for tr in soup.find_all("tr")[1:]]
    assert rows == [["Part <1> & more", "2.5 / 3", "test_a 2/2, test_b 0.5/1"],
                    ["Part 2 — Hypothesis", "0 / 2", "hypothesis —/2 (by hand)"],
                    ["total", "2.5 / 5", ""]]
    assert [a["href"] for a in soup.find_all("a")] == ["#test_a", "#test_b", "#hypothesis"]
    assert summary_html([]) == ""


def test_feedback_page_puts_the_summary_first_and_renders_math_after_sanitizing():
    nb = course_notebook()
    nb.cells[2].source += "\n\n<details><summary>Hint</summary>\n\n$\\lVert x \\rVert$\n\n</details>"
    SanitizeSubmission()(nb, {})
    nb, resources = FeedbackPage()(nb, {})
    summary = BeautifulSoup(nb.cells[0].source, "html.parser")
    assert [tr.td.get_text() for tr in summary.tbody.find_all("tr")] == ["Part 1 — Reproduce the puzzle (3 points)",
                                                                       "Part 2 — Hypothesis"]
    assert "white-space: pre-wrap" in resources["inlining"]["css"][-1]
    part1 = nb.cells[3].source
    assert part1.count("<math") == 2 and "$" not in part1 and "<details>" in part1
    nbformat.validate(nb)


# ----------------------------------------------------------------------------------- images
def test_png_check_reads_the_chunks_and_their_crcs():
    assert png_size(PNG_1PX) == (1, 1)
    broken = bytearray(PNG_1PX)
    broken[30] ^= 1  # a byte inside IHDR: its CRC no longer matches
    assert png_size(bytes(broken)) is None
    assert png_size(PNG_1PX + b"<script>") is None  # data after IEND
    assert png_size(PNG_1PX[:-12]) is None  # no IEND
    ihdr = struct.pack(">II5B", 100_000, 1, 8, 6, 0, 0, 0)
    huge = PNG_1PX[:12] + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + PNG_1PX[33:]
    assert png_size(huge) is None


def test_only_base64_of_a_real_image_of_that_type_is_kept():
    text = base64.b64encode(PNG_1PX).decode()
    assert valid_base64_image("image/png", text) and valid_base64_image("image/png", text[:20] + "\n" + text[20:])
    assert not valid_base64_image("image/jpeg", text)
    assert not valid_base64_image("image/png", "AAAA") and not valid_base64_image("image/png", '" onerror="x')
    assert valid_base64_image("image/jpeg", base64.b64encode(b"\xff\xd8\xff\xe0 jfif \xff\xd9").decode())


def _image(alt=None):
    meta = {"image/png": {"width": 1, "height": 1, **({"alt": alt} if alt is not None else {})}}
    return nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(PNG_1PX).decode()}, metadata=meta)


def test_every_image_has_alt_text_as_nbconvert_would_give_it_without_parsing_the_page_again():
    from nbconvert.exporters import HTMLExporter
    from traitlets.config import Config

    from interp_course.preprocessors.feedback_page import NO_ALT, FeedbackExporter

    cell = new_code_cell("plot()", outputs=[_image("Figure: GPT-Neo: norms"), _image(), _image('"><script>x()</script>\n' + "a" * 400)])
    config = Config()
    config.HTMLExporter.template_name = "classic"
    config.HTMLExporter.preprocessors = [SanitizeSubmission]
    exporter = FeedbackExporter(config=config)
    exporter.register_preprocessor(FeedbackPage)  # as generate_feedback adds its preprocessors
    ours, _ = exporter.from_notebook_node(new_notebook(cells=[cell]))
    stock, _ = HTMLExporter(config=config).from_notebook_node(new_notebook(cells=[cell]))
    alts = [img["alt"] for img in BeautifulSoup(ours, "html.parser").find_all("img")]
    assert alts == ["Figure: GPT-Neo: norms", NO_ALT, ('"><script>x()</script> ' + "a" * 400)[:300]]  # one line, bounded
    assert alts == [img["alt"] for img in BeautifulSoup(stock, "html.parser").find_all("img")]
    assert "<script>x()" not in ours


def test_code_is_highlighted_as_nbconvert_does_and_a_repeated_cell_is_not_highlighted_again():
    from nbconvert.filters.highlight import Highlight2HTML

    from interp_course.preprocessors import feedback_page
    from interp_course.preprocessors.feedback_page import HIGHLIGHT_CACHE_SOURCE, RememberedHighlight

    cases = [("W_E = model.W_E  # the embedding\nprint(W_E.shape)", None, None),
             ("", None, None),  # nbconvert highlights " " instead
             ("ls -la", None, {"magics_language": "bash"}),
             ("x = 1", "python", None),
             ("y = 2\n" * (HIGHLIGHT_CACHE_SOURCE // 6 + 1), None, None)]  # too long to keep
    for options in ({}, {"linenos": True}):
        ours = RememberedHighlight(pygments_lexer="ipython3", extra_formatter_options=options)
        stock = Highlight2HTML(pygments_lexer="ipython3", extra_formatter_options=options)
        for source, language, metadata in cases:
            assert ours(source, language, metadata) == stock(source, language, metadata)
    before = feedback_page._highlight.cache_info()
    again = RememberedHighlight(pygments_lexer="ipython3")("W_E = model.W_E  # the embedding\nprint(W_E.shape)")
    assert feedback_page._highlight.cache_info().hits == before.hits + 1
    assert again == Highlight2HTML(pygments_lexer="ipython3")("W_E = model.W_E  # the embedding\nprint(W_E.shape)")


def test_the_same_graded_notebook_gives_the_same_page_byte_for_byte():
    import copy

    from traitlets.config import Config

    from interp_course.preprocessors.feedback_page import FeedbackExporter

    config = Config()
    config.HTMLExporter.template_name = "classic"
    graded, pages = course_notebook(), []
    for _ in range(2):
        exporter = FeedbackExporter(config=config)
        exporter.register_preprocessor(FeedbackPage)
        pages.append(exporter.from_notebook_node(copy.deepcopy(graded))[0])
    assert 'id="cell-id=interp-summary"' in pages[0] and pages[0] == pages[1]


def test_the_page_loads_no_mathjax_from_a_cdn():
    """Its math is MathML already; nbgrader's feedback template would load MathJax from cdnjs in
    every student's browser."""
    import copy
    import os

    import nbgrader.converters.generate_feedback as generate_feedback
    from nbconvert.exporters import HTMLExporter
    from traitlets.config import Config

    from interp_course.preprocessors.feedback_page import FeedbackExporter

    formgrader = os.path.join(os.path.dirname(generate_feedback.__file__), "..", "server_extensions", "formgrader")
    config = Config()  # what GenerateFeedback configures: nbgrader's own feedback template
    config.HTMLExporter.template_name = "feedback"
    config.HTMLExporter.extra_template_basedirs = [os.path.join(formgrader, "templates")]
    config.HTMLExporter.extra_template_paths = [os.path.join(formgrader, "static", "node_modules", "bootstrap", "dist", "css")]
    graded = new_notebook(cells=[new_markdown_cell("The mean cosine is $\\approx 0.9$.")])
    resources = {"nbgrader": {"notebook": "puzzle1", "score": 18.0, "max_score": 25.0, "late_penalty": 0}}
    stock, _ = HTMLExporter(config=config).from_notebook_node(graded, copy.deepcopy(resources))
    assert "cdnjs.cloudflare.com/ajax/libs/mathjax" in stock  # what it replaces
    exporter = FeedbackExporter(config=config)
    exporter.register_preprocessor(FeedbackPage)
    page, _ = exporter.from_notebook_node(graded, copy.deepcopy(resources))
    soup = BeautifulSoup(page, "html.parser")
    assert [s.get("src") for s in soup.find_all("script") if s.get("src")] == []
    assert "x-mathjax-config" not in page and "cdnjs" not in page  # (nbgrader's comment stays)
    assert "<math" in page  # the math is there, as MathML
