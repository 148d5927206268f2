"""The last feedback step: a page a student can read offline.

* a summary of the points per part at the top, linking to each graded cell
  (``interp_course.feedback_summary``);
* math pre-rendered to MathML (``interp_course.math_render``) instead of TeX left for MathJax
  from a CDN;
* a stylesheet that wraps long output lines (verdicts, errors) instead of scrolling sideways and
  fits images to the page;
* alt text on every image: a figure's is its title (``RenderFigures``), any other image gets
  nbconvert's placeholder here, so ``FeedbackExporter`` can skip nbconvert's pass that adds it.

Runs after ``SanitizeSubmission`` (an ``HTMLExporter`` preprocessor, so it runs before the
converter's own) and after ``GetGrades``: the markdown it rewrites is already inert, and what it
adds is its own HTML (escaped text, MathML rebuilt from an allowlist).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import nbformat
from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, default

from interp_course.feedback_summary import parts, summary_html
from interp_course.math_render import render_math
from interp_course.preprocessors.sanitize_submission import _as_html_block, render_markdown

PAGE_CSS = """
/* Offline feedback: long lines wrap, nothing scrolls sideways, figures fit the page. */
div.output_area pre, div.output_subarea pre, div.output_text pre {
  white-space: pre-wrap; word-break: normal; overflow-wrap: break-word; overflow-x: visible;
}
div.output_subarea { overflow-x: visible; max-width: 100%; }
div.output_area img, div.output_png img { max-width: 100%; height: auto; }
div.interp-summary table { border-collapse: collapse; margin: 0.5em 0 1em; }
div.interp-summary td, div.interp-summary th { padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }
math[display="block"] { margin: 0.6em 0; }
"""


NO_ALT = "No description has been provided for this image"  # nbconvert's words


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


# Templates looked up before nbconvert's and nbgrader's: an empty ``mathjax`` macro.
OFFLINE_TEMPLATES = str(Path(__file__).resolve().parent.parent / "templates" / "offline")


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTMLExporter without its last step, which parses the finished page again with
    BeautifulSoup (~0.15 s for a 0.5 MB page, half of each student's feedback) only to give images
    without alt text a placeholder and ``jp-`` cells a tabindex. ``FeedbackPage`` gives every image
    its alt text before the page is written, and nbgrader's feedback template (classic) has no
    ``jp-`` cells. Its code highlighting is remembered across pages (``RememberedHighlight``).
    Otherwise what ``HTMLExporter.from_notebook_node`` does (nbconvert 7.17).

    The page loads no MathJax: its math is MathML already (``FeedbackPage``), and the templates'
    ``mathjax`` macro would make every student's browser fetch a script from a CDN when the page
    is opened (``OFFLINE_TEMPLATES`` replaces it with nothing)."""

    @default("template_paths")
    def _template_paths(self, prune=True, root_dirs=None):
        return [OFFLINE_TEMPLATES, *super()._template_paths(prune, root_dirs)]

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
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                self._math(cell)
            for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
                _give_images_alt_text(output)
        if summary:
            cell = nbformat.v4.new_markdown_cell(_as_html_block(f'<div class="interp-summary">{summary}</div>'))
            cell.id = "interp-summary"  # not a random one: a template that writes cell ids gives the same page each time
            nb.cells.insert(0, cell)
        resources.setdefault("inlining", {}).setdefault("css", []).append(PAGE_CSS)
        return nb, resources

    def _math(self, cell) -> None:
        source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        try:
            html = render_markdown(source, cell.get("attachments"), anchors=False)
            rendered = render_math(html)
        except Exception:  # noqa: BLE001 - the cell keeps its TeX
            self.log.warning("Math in a markdown cell could not be rendered", exc_info=True)
            return
        if rendered != html:
            block = _as_html_block(rendered.strip())
            if render_markdown(block).strip() == block:  # markdown passes it through unchanged
                cell.source = block
