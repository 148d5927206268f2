"""The last feedback step: a page a student can read offline.

* a summary of the points per part at the top, linking to each graded cell
  (``interp_course.feedback.summary``);
* math pre-rendered to MathML (``interp_course.feedback.math_render``) instead of TeX left for MathJax
  from a CDN, within one budget per page: past it the rest stays TeX, and a note says where;
* a stylesheet for one column from a 390 px phone to a laptop: long code and output lines wrap
  instead of scrolling sideways, tables wrap (the summary's rows stack on a phone), figures and
  formulas fit the width, hints' ``<details>`` show their disclosure triangle;
* emoji that carry meaning (an exercise's difficulty as coloured circles) as text every font has;
* no stray score under each verdict: the ``execute_result`` that carried a test cell's score to
  nbgrader is left out of the page (the gradebook keeps the score);
* alt text on every image: a figure's is its title (``RenderFigures``), any other image gets
  nbconvert's placeholder here, so ``FeedbackExporter`` can skip nbconvert's pass that adds it.

Runs after ``SanitizeSubmission`` (an ``HTMLExporter`` preprocessor, so it runs before the
converter's own) and after ``GetGrades``: the markdown it rewrites is already inert, and what it
adds is its own HTML (escaped text, MathML rebuilt from an allowlist).
"""

from __future__ import annotations

import functools
import json
import re
from html import escape
from pathlib import Path

import nbformat
from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, default

from interp_course.feedback.summary import parts, summary_html
from interp_course.feedback.math_render import (MAX_FORMULAS, MAX_SECONDS, MAX_TEX_CHARS, MathBudget, render_math,
                                               replace_text)
from interp_course.preprocessors.sanitize_submission import _as_html_block, render_markdown

PAGE_CSS = """
/* Offline feedback, one column from a 390 px phone to a laptop: nothing is wider than the screen.
   Long lines wrap (code and output keep their indentation), tables wrap or stack, figures and
   formulas fit the width. */
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { font-size: 15px; line-height: 1.45; margin: 0; overflow-x: hidden; }
main.interp-feedback { max-width: 980px; margin: 0 auto; padding: 12px 14px 40px; overflow-wrap: anywhere; }
main.interp-feedback h4.interp-score { margin: 0.2em 0 0.8em; }
p.late-penalty { color: #d2413a; }
div.cell { margin: 0.4em 0; max-width: 100%; }
div.prompt { display: none; }
pre, code, kbd, samp { white-space: pre-wrap; overflow-wrap: anywhere; word-break: normal; }
pre { overflow-x: visible; max-width: 100%; font-size: 13px; }
div.input_area { background: #f7f7f7; border: 1px solid #e3e3e3; border-radius: 3px; padding: 0.4em 0.6em; }
div.input_area pre, div.highlight pre { margin: 0; padding: 0; background: none; border: none; }
div.output_area pre, div.output_subarea pre, div.output_text pre {
  white-space: pre-wrap; word-break: normal; overflow-wrap: anywhere; overflow-x: visible;
  background: none; border: none; padding: 0.2em 0; margin: 0;
}
div.output_subarea { overflow-x: visible; max-width: 100%; padding: 0.2em 0; }
div.output_html { overflow-x: auto; }  /* a wide table a student printed scrolls inside its own box */
img { max-width: 100%; height: auto; }
div.output_area img, div.output_png img { display: block; max-width: 100%; height: auto; margin: 0.4em 0; }
math[display="block"] { margin: 0.6em 0; max-width: 100%; overflow-x: auto; overflow-y: hidden; }
.rendered_html table { max-width: 100%; border-collapse: collapse; margin: 0.5em 0; }
.rendered_html td, .rendered_html th { padding: 0.2em 0.6em; border: 1px solid #ddd; vertical-align: top; }
div.interp-summary table { width: 100%; border-collapse: collapse; margin: 0.5em 0 1em; }
div.interp-summary td, div.interp-summary th { padding: 0.3em 0.6em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
div.interp-summary td:nth-child(2) { white-space: nowrap; }
details { margin: 0.4em 0; }
details > summary { display: list-item; list-style: disclosure-closed inside; cursor: pointer; font-weight: 600; }
details[open] > summary { list-style-type: disclosure-open; }
.interp-rating { white-space: nowrap; }
p.interp-math-note { border-left: 4px solid #c9a400; background: #fffbe6; padding: 0.4em 0.6em; }
.interp-rating .on-red { color: #d62728; } .interp-rating .on-blue { color: #1f6fd1; }
.interp-rating .on-green { color: #2ca02c; } .interp-rating .on-yellow { color: #c9a400; }
.interp-rating .on-orange { color: #e67e00; } .interp-rating .on-purple { color: #8e44ad; }
.interp-rating .on-brown { color: #8c564b; } .interp-rating .on-black { color: #222; }
.interp-rating .off { color: #999; }
div.nbgrader_cell { width: 100%; margin: 0.3em 0; }
div.nbgrader_cell .panel-heading { padding: 0.4em 0.6em; height: auto; overflow: hidden; }
div.nbgrader_cell .panel-heading a { color: #bbb; }
div.nbgrader_cell .panel-body { padding: 0.4em; }
div.nbgrader_cell .panel-footer { padding: 0.4em 0.6em; }
div.nbgrader_cell .input_area { background: white; border: none; }
span.nbgrader-label { line-height: 25px; }
/* A phone: the summary's rows stack (part, points, then the cells), the panels' scores go under their label. */
@media (max-width: 600px) {
  body { font-size: 16px; }
  main.interp-feedback { padding: 8px 8px 32px; }
  main.interp-feedback h1 { font-size: 26px; } main.interp-feedback h2 { font-size: 22px; }
  main.interp-feedback h3 { font-size: 19px; }
  div.interp-summary thead { display: none; }
  div.interp-summary table, div.interp-summary tbody, div.interp-summary tfoot,
  div.interp-summary tr, div.interp-summary td { display: block; width: 100%; }
  div.interp-summary tr { border-bottom: 1px solid #ccc; padding: 0.3em 0; }
  div.interp-summary td { border: none; padding: 0.1em 0.2em; }
  div.interp-summary td:first-child { font-weight: 600; }
  div.interp-summary td:nth-child(2)::before { content: "points: "; }
  div.nbgrader_cell .panel-heading .pull-right { float: none !important; display: block; }
  .rendered_html table { display: block; overflow-x: auto; }
}
"""


NO_ALT = "No description has been provided for this image"  # nbconvert's words
MATH_NOTE = (f"This page shows at most {MAX_FORMULAS:,} formulas ({MAX_TEX_CHARS:,} characters of TeX, "
             f"{MAX_SECONDS:g} seconds) as math; from here on, the rest is shown as the TeX it was written in.")

# Emoji show as empty boxes where no emoji font is installed (most Linux machines, many school
# computers). Where one carries meaning it becomes text every font has: a run of coloured circles
# (an exercise's "Difficulty 🔴🔴⚪⚪⚪") becomes ●●○○○ in its colours with "2/5" beside it, and a
# few marks become their plain-text twins.
_CIRCLES = {"🔴": "red", "🟠": "orange", "🟡": "yellow", "🟢": "green", "🔵": "blue", "🟣": "purple",
            "🟤": "brown", "⚫": "black", "⚪": None}  # None: an empty circle
_CIRCLE_RUN = re.compile("(?:[" + "".join(_CIRCLES) + "]\ufe0f?)+")
_MARKS = {"✅": "✓", "✔️": "✔", "☑️": "✓", "❌": "✗", "❎": "✗", "✖️": "✗", "⚠️": "⚠", "⭐": "★", "❗": "!", "❓": "?"}
_MARK = re.compile("|".join(sorted(map(re.escape, _MARKS), key=len, reverse=True)))


def _rating_html(run: str) -> str:
    circles = [c for c in run if c in _CIRCLES]
    filled = sum(1 for c in circles if _CIRCLES[c])
    dots = "".join(f'<span class="on-{_CIRCLES[c]}">●</span>' if _CIRCLES[c] else '<span class="off">○</span>'
                   for c in circles)
    if len(circles) == 1:
        return f'<span class="interp-rating">{dots}</span>'
    return (f'<span class="interp-rating" title="{filled} of {len(circles)}">{dots} '
            f'<span class="interp-rating-text">{filled}/{len(circles)}</span></span>')


def readable_emoji(html: str) -> str:
    """``html`` with the emoji that carry meaning in its text (not in code) as text any font shows."""
    if not (_CIRCLE_RUN.search(html) or _MARK.search(html)):
        return html
    return replace_text(html, _readable_text)


def _readable_text(text: str) -> str | None:
    if not (_CIRCLE_RUN.search(text) or _MARK.search(text)):
        return None
    pieces, last = [], 0
    for match in _CIRCLE_RUN.finditer(text):
        pieces += [escape(_MARK.sub(lambda m: _MARKS[m[0]], text[last:match.start()]), quote=False),
                   _rating_html(match[0])]
        last = match.end()
    pieces.append(escape(_MARK.sub(lambda m: _MARKS[m[0]], text[last:]), quote=False))
    return "".join(pieces)


def _is_test_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _give_images_alt_text(output) -> None:
    """The templates write an image's ``alt`` from its mimetype's output metadata."""
    for mime in ("image/png", "image/jpeg"):
        if mime in output.get("data", {}):
            meta = output.setdefault("metadata", nbformat.NotebookNode()).setdefault(mime, nbformat.NotebookNode())
            if not isinstance(meta.get("alt"), str) or not meta["alt"].strip():
                meta["alt"] = NO_ALT


HIGHLIGHT_CACHE_SOURCE = 10_000  # characters: a longer cell is highlighted each time, never kept


@functools.lru_cache(maxsize=1024)
def _highlight(source: str, language: str, magics_language: str | None, formatter_options: str) -> str:
    highlight = Highlight2HTML(pygments_lexer=language, extra_formatter_options=json.loads(formatter_options))
    return highlight(source, language, {"magics_language": magics_language} if magics_language else None)


class RememberedHighlight(Highlight2HTML):
    """nbconvert's highlighting (a third of each feedback page's time), remembered by what decides
    it: the cell's source, its language and a magics language. Most code cells of a batch's pages
    are the instructor's, the same for every student; the same source gives the same HTML."""

    def __call__(self, source, language=None, metadata=None):
        magics = (metadata or {}).get("magics_language")
        if len(source) > HIGHLIGHT_CACHE_SOURCE or not (magics is None or isinstance(magics, str)):
            return super().__call__(source, language, metadata)
        return _highlight(source, language or self.pygments_lexer, magics,
                          json.dumps(self.extra_formatter_options, sort_keys=True, default=str))


# Templates looked up before nbconvert's and nbgrader's: an empty ``mathjax`` macro, and the page
# (FEEDBACK_TEMPLATE) that wraps nbgrader's feedback template.
OFFLINE_TEMPLATES = str(Path(__file__).resolve().parent.parent / "templates" / "offline")
FEEDBACK_TEMPLATE = "interp_feedback.html.j2"


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTMLExporter without its last step, which parses the finished page again with
    BeautifulSoup (~0.15 s for a 0.5 MB page, half of each student's feedback) only to give images
    without alt text a placeholder and ``jp-`` cells a tabindex. ``FeedbackPage`` gives every image
    its alt text before the page is written, and nbgrader's feedback template (classic) has no
    ``jp-`` cells. Its code highlighting is remembered across pages (``RememberedHighlight``).
    Otherwise what ``HTMLExporter.from_notebook_node`` does (nbconvert 7.17).

    The page loads no MathJax: its math is MathML already (``FeedbackPage``), and the templates'
    ``mathjax`` macro would make every student's browser fetch a script from a CDN when the page
    is opened (``OFFLINE_TEMPLATES`` replaces it with nothing). With nbgrader's feedback template,
    the page is ``FEEDBACK_TEMPLATE``: nbgrader's cells, without its list of graded cells (the
    package's summary replaces it) and without prompts, in a frame that fits a phone."""

    @default("template_paths")
    def _template_paths(self, prune=True, root_dirs=None):
        return [OFFLINE_TEMPLATES, *super()._template_paths(prune, root_dirs)]

    @default("template_file")
    def _template_file_default(self):
        """With nbgrader's feedback template (what generate_feedback configures): ours, which
        extends it with a page that fits a phone and one points summary, the package's."""
        return FEEDBACK_TEMPLATE if self.template_name == "feedback" else super()._template_file_default()

    # No In [n] / Out[n] prompts: nothing to a student, and a fifth of a phone's width.
    @default("exclude_input_prompt")
    def _no_input_prompt(self):
        return True

    @default("exclude_output_prompt")
    def _no_output_prompt(self):
        return True

    def from_notebook_node(self, nb, resources=None, **kw):
        langinfo = nb.metadata.get("language_info", {})
        lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
        self.register_filter("highlight_code",
                             self.filters.get("highlight_code", RememberedHighlight(pygments_lexer=lexer, parent=self)))
        resources = self._init_resources(resources)
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(
            notebook_metadata=self._nb_metadata, parent=self, resources=resources))
        return TemplateExporter.from_notebook_node(self, nb, resources, **kw)


class FeedbackPage(Preprocessor):
    enabled = Bool(True, help="Listed as a preprocessor, it should run.").tag(config=True)

    def preprocess(self, nb, resources):
        summary = summary_html(parts(nb))  # from the markdown headings, before they become HTML
        math, math_stops = MathBudget(), None
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "markdown":
                ran_out = math.ran_out
                self._markdown(cell, math)
                if math.ran_out and not ran_out:  # the rest of the page's math stays TeX from this cell on
                    math_stops = index
            if _is_test_cell(cell):
                # The verdict's execute_result carried its score to nbgrader at autograde (the
                # gradebook has it; GetGrades put it in the cell's metadata): on the page it would
                # be a stray "1.5" under the verdict, which says the points already.
                cell.outputs = [o for o in cell.outputs if o.get("output_type") != "execute_result"]
            for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
                _give_images_alt_text(output)
        if math_stops is not None:
            note = nbformat.v4.new_markdown_cell(_as_html_block(f'<p class="interp-math-note">{escape(MATH_NOTE)}</p>'))
            note.id = "interp-math-note"
            nb.cells.insert(math_stops, note)
        if summary:
            cell = nbformat.v4.new_markdown_cell(_as_html_block(f'<div class="interp-summary">{summary}</div>'))
            cell.id = "interp-summary"  # not a random one: a template that writes cell ids gives the same page each time
            nb.cells.insert(0, cell)
        resources.setdefault("inlining", {}).setdefault("css", []).append(PAGE_CSS)
        return nb, resources

    def _markdown(self, cell, math: MathBudget) -> None:
        """Math as MathML (as far as the page's ``math`` budget goes), emoji that carry meaning as text."""
        source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        try:
            html = render_markdown(source, cell.get("attachments"), anchors=False)
            rendered = readable_emoji(render_math(html, math))
        except Exception:  # noqa: BLE001 - the cell keeps its TeX
            self.log.warning("Math in a markdown cell could not be rendered", exc_info=True)
            return
        if rendered != html:
            block = _as_html_block(rendered.strip())
            if render_markdown(block).strip() == block:  # markdown passes it through unchanged
                cell.source = block
