"""Submissions are inert: no kernel, real nbconvert and nbgrader templates, no browser.

``tests/test_inert_browser.py`` opens the same pages in headless Chromium.
"""

from __future__ import annotations

import copy
import io
import logging
import re

import nbformat
import pytest
from bs4 import BeautifulSoup
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output
from nbgrader.utils import compute_checksum, determine_grade

from inert_attacks import PNG_1PX, attack_notebook, live_content, render, students_live_content
from interp_course.security.inert import TerminalSafeFilter, terminal_safe
from interp_course.preprocessors.sanitize_submission import (
    SanitizeSubmission,
    clean_html,
    render_markdown,
    safe_markdown,
    sanitize_svg,
)

# ------------------------------------------------------------------------------ terminal_safe
NASTY = [
    ("OSC 52 clipboard write, BEL", "a\x1b]52;c;Y3VybCBldmlsfHNo\x07b", "ab"),
    ("OSC 0 title, ST", "x\x1b]0;owned\x1b\\y", "xy"),
    ("OSC 8 hyperlink", "\x1b]8;;http://evil\x07link\x1b]8;;\x07", "link"),
    ("unterminated OSC stops at the line end", "log \x1b]52;c;AAAA\nnext line", "log \nnext line"),
    ("CSI erase line + carriage return: a fake line", "\x1b[2K\rINFO all tests passed\n", "INFO all tests passed\n"),
    ("CSI colours", "\x1b[0;31mred\x1b[0m", "red"),
    ("CSI cursor up", "\x1b[3Aover", "over"),
    ("CSI private mode (alternate screen)", "\x1b[?1049hhidden", "hidden"),
    ("8-bit CSI and OSC, ST", "\x9b31m\x9d0;t\x9cz", "z"),
    ("DCS", "\x1bPq#0;2;0;0;0\x1b\\done", "done"),
    ("APC, PM, SOS", "\x1b_a\x1b\\\x1b^b\x1b\\\x1bXc\x1b\\ok", "ok"),
    ("reset, save cursor, charset", "\x1bc\x1b7\x1b(0q", "q"),
    ("lone ESC", "end\x1b", "end"),
    ("backspace overwrite", "rm -rf /\b\b\b\b\b\b\b\bls", "rm -rf /ls"),
    ("NUL, BEL, VT, FF, DEL, C1 NEL", "a\x00\x07\x0b\x0c\x7f\x85b", "ab"),
    ("bidi override", "file\u202egnp.exe", "filegnp.exe"),
    ("tab and newline kept", "a\tb\nc", "a\tb\nc"),
    ("plain text and unicode kept", "Cell 3: KernelDied — ≈0.95 ✓", "Cell 3: KernelDied — ≈0.95 ✓"),
]
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize("what,raw,expected", NASTY, ids=[n[0] for n in NASTY])
def test_terminal_safe(what, raw, expected):
    assert terminal_safe(raw) == expected
    assert not _UNSAFE.search(terminal_safe(raw))


def test_terminal_safe_filter_cleans_message_arguments_and_traceback():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("test_inert.terminal_safe")
    log.propagate = False
    log.addHandler(handler)
    log.addFilter(TerminalSafeFilter())
    log.warning("Kernel output before it died:\n%s", "\x1b]52;c;ZXZpbA==\x07boom\x1b[2K\r")
    try:
        raise RuntimeError("unhandled iopub msg: \x1b]0;pwned\x07")
    except RuntimeError:
        log.exception("There was an error processing assignment: %s", "ps1")
    text = stream.getvalue()
    assert not _UNSAFE.search(text)
    assert "Kernel output before it died:\nboom" in text
    assert "RuntimeError: unhandled iopub msg: " in text and "Traceback" in text


# ------------------------------------------------------------------------------ pages
def sanitize(nb, resources=None):
    """As nbconvert's exporters run a preprocessor: through __call__, which honours `enabled`."""
    return SanitizeSubmission()(nb, resources or {})


def test_registered_as_nbgrader_registers_it_the_preprocessor_runs():
    """nbgrader's Autograde registers each listed class with register_preprocessor(pp), which
    leaves it disabled unless the class enables itself (nbconvert's default is off)."""
    from nbconvert.exporters import NotebookExporter

    nb, _ = attack_notebook(schema_breaking=False)
    exporter = NotebookExporter()
    exporter._preprocessors = []
    exporter.register_preprocessor(SanitizeSubmission)
    output, _ = exporter.from_notebook_node(nb)
    assert "<script>" not in output and "application/javascript" not in output


@pytest.fixture(scope="module")
def sanitized():
    nb, attacks = attack_notebook()
    sanitize(nb, {})
    return nb, attacks


@pytest.mark.parametrize("template", ["feedback", "formgrade"])
def test_attacks_are_live_on_the_stock_page(template):
    """The checks below detect the attacks: nbgrader's pages as they come carry them live."""
    nb, _ = attack_notebook(schema_breaking=False)
    found = students_live_content(render(template, nb), render(template, nbformat.v4.new_notebook()))
    for expected in ("<img onerror>", "<iframe srcdoc>", "<svg onload>", "<details ontoggle>", "<body onload>",
                     "<script> with a student's payload", "<pre class=mermaid>", "<a href=javascript:>",
                     "id from a student's heading"):
        assert expected in found, (expected, found)


@pytest.mark.parametrize("template", ["feedback", "formgrade"])
def test_sanitized_notebook_renders_inert(sanitized, template):
    nb, _ = sanitized
    empty = render(template, nbformat.v4.new_notebook())
    assert students_live_content(render(template, copy.deepcopy(nb)), empty) == []


def test_sanitized_notebook_is_valid_and_sanitizing_twice_changes_nothing(sanitized):
    nb, _ = sanitized
    nbformat.validate(nb)
    again = copy.deepcopy(nb)
    sanitize(again, {})
    assert again == nb


def test_only_inert_mimetypes_and_metadata_are_left(sanitized):
    nb, _ = sanitized
    assert "widgets" not in nb.metadata
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is None or type(cell.execution_count) is int
        for output in cell.get("outputs", []):
            assert set(output.get("data", {})) <= {"text/plain", "text/html", "text/latex", "application/json",
                                                   "image/png", "image/jpeg", "image/gif", "image/svg+xml"}
            for mime, meta in output.get("metadata", {}).items():
                values = meta.values() if isinstance(meta, dict) else [meta]
                assert all(type(v) in (int, float, bool) for v in values), (mime, meta)
            if output.output_type == "execute_result":
                assert output.execution_count is None or type(output.execution_count) is int


def test_javascript_output_leaves_a_note():
    nb = nbformat.v4.new_notebook(cells=[new_code_cell("Javascript('x')", outputs=[
        new_output("display_data", data={"application/javascript": "alert(1)"}),
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "m"},
                                         "text/plain": "IntSlider()"}),
    ])])
    sanitize(nb, {})
    first, second = nb.cells[0].outputs
    assert list(first.data) == ["text/plain"] and "JavaScript" in first.data["text/plain"]
    assert dict(second.data) == {"text/plain": "IntSlider()"}


def test_plotly_figure_is_replaced_by_a_note():
    """A figure a student shows with an HTML renderer (``fig.show(renderer="notebook_connected")``)
    is text/html that is all scripts; what is left is the note and nothing else. (The grading
    kernel's own renderer emits plotly JSON, which RenderFigures draws as a PNG.)"""
    import plotly.graph_objects as go
    import plotly.io as pio

    bundle = pio.renderers["notebook_connected"].to_mimebundle(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])).to_dict())
    nb = nbformat.v4.new_notebook(cells=[new_code_cell("fig.show()", outputs=[new_output("display_data", data=bundle)])])
    sanitize(nb, {})
    (output,) = nb.cells[0].outputs
    assert dict(output.data) == {
        "text/html": "<p><em>[Scripts, frames or inline graphics removed from this output: "
        "not shown in grading]</em></p>"
    }


def test_ordinary_content_survives(sanitized):
    nb, _ = sanitized
    code = nb.cells[-1]
    table, image, stream, result = code.outputs
    assert '<table border="1" class="dataframe">' in table.data["text/html"]
    assert "<th>cos</th>" in table.data["text/html"] and "<td>0.93</td>" in table.data["text/html"]
    assert '<tr style="text-align: right;">' in table.data["text/html"]
    assert "<b>bold result</b> and <i>italic</i>" in table.data["text/html"]
    assert "<style" not in table.data["text/html"] and "removed" not in table.data["text/html"]
    assert image.data["image/png"] == PNG_1PX and dict(image.metadata) == {"image/png": {"width": 200, "height": 100}}
    assert stream.text == "plain text result 0.93\n" and result.data["text/plain"] == "3"

    page = render("feedback", copy.deepcopy(nb))
    soup = BeautifulSoup(page, "html.parser")
    img = soup.find("img", src=f"data:image/png;base64,{PNG_1PX}")
    assert img is not None and img["width"] == "200" and img["height"] == "100"
    text = soup.get_text()
    for kept in ("Why it happens", r"$\bar x = \frac{1}{n}\sum_i x_i$", "$a < b$", "quoted", "code < 3",
                 "plain text result 0.93", "bold result"):
        assert kept in text, kept
    assert soup.find("a", href="https://arxiv.org/abs/1702.01417") is not None
    assert soup.find("blockquote") is not None


# --------------------------------------------------------------------------------- markdown
INERT_MARKDOWN = [
    "YOUR ANSWER HERE",
    'The mean vector dominates: "cosine" measures angles from the origin, so it\'s ~0.9.\n\n'
    "- centre first\n- then compare\n\n1. one\n2. two\n\n> a quote\n\n**bold** _em_ ~~gone~~",
    r"Inline $\cos(x, y) = \hat x \cdot \hat y$ and display $$\frac{\lVert \sum_i \hat x_i \rVert^2 - n}{n(n-1)}$$",
    "Compare `a < b` and\n\n```python\nx = W - W.mean(0)  # <script>\n```",
    "See [the paper](https://arxiv.org/abs/1909.00512), <https://example.org> and [a note](#top).",
    "| model | mean cos |\n|---|---|\n| GPT-Neo | 0.93 |\n| GPT-2 | 0.3 |",
]
LIVE_MARKDOWN = [
    "<script>alert(1)</script>",
    'text <img src="x" onerror="alert(1)">',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "![x](javascript:alert(1))",
    "```mermaid\n</pre><script>alert(1)</script>\n```",
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "<a href='javascript:alert(1)'>x</a>",
    "# cell-answer",
    "<details open ontoggle=alert(1)>",
    "[relative](../../api/terminals)",
    "![remote](https://example.org/beacon.png)",
]


@pytest.mark.parametrize("source", INERT_MARKDOWN)
def test_inert_markdown_is_kept_as_written(source):
    assert safe_markdown(source) == source


@pytest.mark.parametrize("source", LIVE_MARKDOWN)
def test_live_markdown_is_rewritten_to_inert_html(source):
    safe = safe_markdown(source)
    assert safe != source
    page = render_markdown(safe)
    assert live_content(f"<body>{page}</body>") == []
    assert "alert(1)" not in "".join(str(v) for el in BeautifulSoup(page, "html.parser").find_all(True)
                                     for v in el.attrs.values())
    assert safe_markdown(safe) == safe  # sanitizing again changes nothing


def test_markdown_shows_what_it_can():
    assert safe_markdown("## Why\n\nIt is <b>the mean</b> $a<b$.") == (
        "<div><h2>Why</h2>&#10;<p>It is <b>the mean</b> $a&lt;b$.</p></div>"
    )
    # with an attachment that is not an image, nbconvert cannot render the cell: shown as code
    cell = new_markdown_cell("![a](attachment:x.html)", attachments={"x.html": {"text/html": "PHNjcmlwdD4="}})
    nb = nbformat.v4.new_notebook(cells=[cell])
    sanitize(nb, {})
    assert nb.cells[0].source == "    ![a](attachment:x.html)" and "attachments" not in nb.cells[0]


def test_markdown_image_attachment_survives():
    cell = new_markdown_cell("![plot](attachment:p.png)", attachments={"p.png": {"image/png": PNG_1PX}})
    nb = nbformat.v4.new_notebook(cells=[cell])
    sanitize(nb, {})
    assert nb.cells[0].source == "![plot](attachment:p.png)"
    assert f'src="data:image/png;base64,{PNG_1PX}"' in render("feedback", nb)


# ------------------------------------------------------------------------------- grading
def _answer_cell(source: str, released: str) -> nbformat.NotebookNode:
    cell = new_markdown_cell(source, metadata={"nbgrader": {
        "grade": True, "solution": True, "locked": False, "grade_id": "explanation", "points": 3,
        "schema_version": 3, "task": False}})
    stub = copy.deepcopy(cell)
    stub.source = released
    cell.metadata.nbgrader["checksum"] = compute_checksum(stub)
    return cell


def test_an_answer_left_as_released_still_scores_zero():
    released = "## Your explanation\n\nYOUR ANSWER HERE"  # a heading: the cell is rewritten
    nb = nbformat.v4.new_notebook(cells=[_answer_cell(released, released), _answer_cell("<b>mean</b>", released)])
    assert determine_grade(nb.cells[0]) == (0, 3.0) and determine_grade(nb.cells[1]) == (None, 3.0)
    sanitize(nb, {})
    assert nb.cells[0].source != released
    assert determine_grade(nb.cells[0]) == (0, 3.0)  # unchanged: 0, "No response."
    assert determine_grade(nb.cells[1]) == (None, 3.0)  # answered: for the TA


def test_verdict_outputs_and_their_score_are_untouched():
    cell = new_code_cell("check()", execution_count=7, outputs=[
        new_output("stream", name="stdout", text="normalize: 2.5 / 3\n  ✓ shape\n"),
        new_output("execute_result", data={"text/plain": "2.5"}, execution_count=None),
    ], metadata={"nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": "t1", "points": 3,
                              "schema_version": 3, "task": False}})
    before = copy.deepcopy(cell)
    nb = nbformat.v4.new_notebook(cells=[cell])
    sanitize(nb, {})
    assert nb.cells[0] == before and determine_grade(nb.cells[0]) == (2.5, 3.0)


# -------------------------------------------------------------------------- images, SVG, HTML
def test_image_metadata_keeps_only_numeric_sizes_and_a_short_alt_text():
    output = new_output("display_data", data={"image/png": PNG_1PX}, metadata={
        "image/png": {"width": '1" onerror="alert(1)', "height": 50, "alt": 'x"\n onerror="y' + "z" * 500,
                      "filenames": {"image/png": "/etc"}},
        "width": "1 onerror=alert(1)", "height": float("nan"), "filenames": {"image/png": "javascript:1"},
        "alt": {"not": "text"}, "text/html": {"isolated": True},
    })
    clean = SanitizeSubmission().sanitize_output(output)
    # alt stays text on one line, at most 300 characters: the templates escape it (test_feedback_page)
    assert dict(clean.metadata) == {"image/png": {"height": 50, "alt": ('x" onerror="y' + "z" * 500)[:300]}}
    bad = new_output("display_data", data={"image/png": '" onerror="alert(1)'})
    assert list(SanitizeSubmission().sanitize_output(bad).data) == ["text/plain"]  # a note


EVIL_SVG = (
    '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
    '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="460pt" '
    'height="345pt" viewBox="0 0 460 345" version="1.1" onload="alert(1)">'
    "<metadata><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"/></metadata>"
    '<defs><style type="text/css">*{stroke-linejoin: round}</style>'
    '<clipPath id="p1"><rect x="57" y="41" width="357" height="266"/></clipPath>'
    '<path id="m1" d="M 0 0 L 0 3.5" style="stroke: #000000; stroke-width: 0.8; background: url(http://evil)"/></defs>'
    '<g id="figure_1"><g clip-path="url(#p1)"><path d="M 57 307 L 414 41" fill="url(http://evil/x)" '
    'style="fill: none; stroke: #1f77b4"/><use xlink:href="#m1" x="57" y="307"/>'
    '<use xlink:href="data:image/svg+xml;base64,PHN2Zy8+#x"/></g>'
    '<text x="1" y="2" font-size="10">cos &lt; 1</text></g>'
    "<script>alert(1)</script><foreignObject><div xmlns=\"http://www.w3.org/1999/xhtml\">x</div></foreignObject>"
    '<a href="javascript:alert(1)"><text>t</text></a><set attributeName="href" to="javascript:alert(1)"/>'
    '<image href="http://evil/beacon.png"/></svg>'
)


def test_svg_keeps_the_drawing_and_nothing_active():
    svg = sanitize_svg(EVIL_SVG)
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
                          'width="460pt" height="345pt" viewBox="0 0 460 345" version="1.1">')
    for kept in ('<clipPath id="p1">', '<g clip-path="url(#p1)">', '<use xlink:href="#m1" x="57" y="307">',
                 "stroke: #1f77b4;", '<text x="1" y="2" font-size="10">cos &lt; 1</text>', 'd="M 57 307 L 414 41"'):
        assert kept in svg, kept
    for gone in ("alert", "evil", "script", "foreignObject", "<a", "<set", "<image", "<style", "metadata",
                 "onload", "data:"):
        assert gone not in svg, gone
    assert sanitize_svg(svg) == svg


@pytest.mark.parametrize("bad", [
    '<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>',  # entities
    '<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg">&x;</svg>',
    "<html><script>alert(1)</script></html>",
    "<svg><script>alert(1)</script></svg>",  # not in the SVG namespace
    "not xml <",
])
def test_svg_that_is_not_plain_svg_is_dropped(bad):
    assert sanitize_svg(bad) is None
    output = new_output("display_data", data={"image/svg+xml": bad, "text/plain": "<Figure>"})
    assert dict(SanitizeSubmission().sanitize_output(output).data) == {"text/plain": "<Figure>"}


@pytest.mark.parametrize("html,expected", [
    ('<a href="https://x.org" target="_blank" onclick="x()">x</a>', '<a href="https://x.org">x</a>'),
    ('<a href=" jAvAscript:alert(1)">x</a>', "<a>x</a>"),
    ('<a href="/api/terminals">x</a>', "<a>x</a>"),
    ('<img src="data:image/png;base64,AAAA" width="10" onerror="x">', '<img src="data:image/png;base64,AAAA" width="10">'),
    ('<img src="http://evil/beacon.png">', "<img>"),
    ('<img src="data:text/html;base64,AAAA">', "<img>"),
    ('<p class="score tabbable mermaid">x</p>', "<p>x</p>"),
    ('<div class="highlight hl-ipython3"><pre><span class="n">x</span></pre></div>',
     '<div class="highlight hl-ipython3"><pre><span class="n">x</span></pre></div>'),
    ('<p style="position: fixed; color: red; background-image: url(http://evil)">x</p>', '<p style="color: red;">x</p>'),
    ('<p style="cursor: url(http://evil/c.cur), auto; color: red">x</p>', '<p style="">x</p>'),  # a beacon
    ('<p style="font: 12px u\\72l(http://evil)">x</p>', '<p style="">x</p>'),
    ('<span style="background-color: rgb(1,2,3); text-align: right">1</span>',
     '<span style="background-color: rgb(1,2,3); text-align: right;">1</span>'),
    ('<p id="cell-answer" data-toggle="tooltip" data-html="true">x</p>', "<p>x</p>"),
    ("<input class='score' id='t1'><button formaction='javascript:1'>b</button>", "b"),
    ("<style>body{display:none}</style><link rel=stylesheet href=//evil><base href=//evil>x", "x"),
    ("<!-- <script>x</script> -->y", "y"),
    ("<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>", ""),
])
def test_clean_html(html, expected):
    assert clean_html(html) == expected


# ---------------------------------------------------------------------- cost and robustness
@pytest.mark.parametrize("html", [
    "<div>" * 9000 + "deep" + "</div>" * 9000,  # 99 kB, under the output cap: 12 s in bleach alone
    "<b>" * 9000 + "deep",
    "<script>x</script>" * 5000 + "deep",
])
def test_pathological_html_is_cleaned_fast(html):
    import time

    start = time.perf_counter()
    cleaned = clean_html(html)
    assert time.perf_counter() - start < 5
    assert "deep" in cleaned and "<script" not in cleaned and "<div" not in cleaned


def test_deeply_nested_svg_is_dropped_not_a_crash():
    deep = '<svg xmlns="http://www.w3.org/2000/svg">' + "<g>" * 5000 + "</g>" * 5000 + "</svg>"
    assert sanitize_svg(deep) is None


def test_an_output_that_cannot_be_sanitized_is_replaced_not_fatal():
    """A malformed notebook on disk (formgrader renders whatever autograded/ holds)."""
    cell = new_code_cell("x")
    cell.outputs = [
        nbformat.from_dict({"output_type": "display_data", "data": "<script>alert(1)</script>", "metadata": {}}),
        nbformat.from_dict({"output_type": "execute_result", "data": {"text/plain": "2.5", "text/html": "<b>"},
                            "metadata": ["not", "a", "dict"], "execution_count": 1}),
    ]
    nb = nbformat.from_dict({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]})
    sanitize(nb)
    first, second = nb.cells[0].outputs
    assert first.output_type == "display_data"
    assert first.data == {"text/plain": "[This output could not be checked: not shown in grading]"}
    assert second.output_type == "execute_result" and second.data["text/plain"] == "2.5"
    nbformat.validate(nb)
