"""A notebook of every way found to get a student's script into the feedback or formgrader page.

Each attack, when it runs, sets ``data-pwned-<n>`` on the page's <html> element and fetches
``<beacon><n>``. The marker name is assembled at run time ('data-pw'+'ned-'), so the attack's
own text, shown escaped on a sanitized page, never contains it. Ordinary content (a table, bold
text, an image with a numeric width, LaTeX) sits beside the attacks to check it survives.

Also runnable: ``python tests/inert_attacks.py NOTEBOOK OUTDIR`` writes OUTDIR/feedback.html and
OUTDIR/formgrade.html (and the pages of an empty notebook): NOTEBOOK rendered as nbgrader renders
it under the course's nbgrader_config.py. The browser test runs it in a subprocess: loading that
config imports torch and sets the model environment.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import nbformat
from bs4 import BeautifulSoup
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output, new_raw_cell

ROOT = Path(__file__).resolve().parent.parent
PNG_1PX = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
MARKER = "pwned"  # only ever written as 'pw'+'ned' in a payload


def js(n: int, beacon: str, quote: str = "'") -> str:
    """The payload of attack n: fetch the beacon, then mark the top page. No double quotes,
    spaces or '>' (it must survive an unquoted attribute)."""
    q = quote
    return (
        f"fetch({q}{beacon}{n}{q}).catch(function(){{}});"
        f"top.document.documentElement.setAttribute({q}data-pw{q}+{q}ned-{n}{q},1)"
    )


def html_output(html: str, metadata: dict | None = None):
    return new_output("display_data", data={"text/html": html, "text/plain": "<HTML object>"}, metadata=metadata or {})


def attack_notebook(
    beacon: str = "http://localhost:9/beacon/", schema_breaking: bool = True
) -> tuple[nbformat.NotebookNode, dict[int, str]]:
    """The attack notebook and {attack number: description}.

    ``schema_breaking`` adds execution counts that are markup, not integers: the templates print
    them unescaped, but nbconvert refuses to render a notebook that fails its schema, so a page
    with them cannot be made from the unsanitized notebook at all.
    """
    attacks: dict[int, str] = {}
    outputs = []
    cells = []

    def out(n: int, what: str, output) -> None:
        attacks[n] = what
        outputs.append(output)

    def md(n: int, what: str, source: str, **kw) -> None:
        attacks[n] = what
        cells.append(new_markdown_cell(source, **kw))

    j = lambda n, q="'": js(n, beacon, q)  # noqa: E731

    out(1, "text/html <script>", html_output(f"<script>{j(1)}</script>"))
    out(2, "text/html <img onerror>", html_output(f'<img src="x" onerror="{j(2)}">'))
    out(3, "text/html <iframe srcdoc>", html_output(f'<iframe srcdoc="<script>{j(3)}</script>"></iframe>'))
    # nbconvert's template prefixes `var element = $(...)`; a hoisted function keeps the payload
    # running without jQuery, as a real attacker's would
    out(4, "application/javascript (IPython.display.Javascript)",
        new_output("display_data", data={"application/javascript": f"function $(){{}};{j(4)}"}))
    out(5, "text/html <svg onload>", html_output(f'<svg onload="{j(5)}"><circle r="1"/></svg>'))
    out(6, "text/html <svg><animate onbegin>",
        html_output(f'<svg><animate onbegin="{j(6)}" attributeName="x" dur="1s"/></svg>'))
    out(7, "text/html <details ontoggle>", html_output(f'<details open ontoggle="{j(7)}"><summary>s</summary></details>'))
    out(8, "text/html <body onload>", html_output(f'<body onload="{j(8)}">'))
    out(9, "text/html <object data=data:text/html>",
        html_output(f'<object data="data:text/html,<script>{j(9)}</script>"></object>'))
    out(10, "text/html isolated (iframe of a data: URL)",
        html_output(f"<script>{j(10)}</script>", metadata={"text/html": {"isolated": True}}))
    out(11, "image/png width metadata breaking out of an unquoted attribute",
        new_output("display_data", data={"image/png": "AAAA"}, metadata={"image/png": {"width": f"1 onerror={j(11, '`')}"}}))
    out(12, 'image/png width metadata 1" onerror="...',
        new_output("display_data", data={"image/png": "AAAA"}, metadata={"width": f'1" onerror="{j(12)}'}))
    out(13, "image/svg+xml with <script> and onload",
        new_output("display_data", data={"image/svg+xml": (
            f'<svg xmlns="http://www.w3.org/2000/svg" onload="{j(13)}"><script>{j(13)}</script>'
            '<circle r="1"/></svg>')}))
    out(14, "text/markdown output with raw <img onerror>",
        new_output("display_data", data={"text/markdown": f'<img src="x" onerror="{j(14)}">'}))
    if schema_breaking:  # a kernel can send any JSON as an execution count
        result = new_output("execute_result", data={"text/plain": "1"}, execution_count=1)
        result.execution_count = f'<img src="x" onerror="{j(15)}">'
        out(15, "output execution_count as markup", result)
    out(16, "mXSS through <math><style>", html_output(
        f'<math><mtext><table><mglyph><style><!--</style><img title="--&gt;&lt;img src=1 onerror={j(16, "`")}&gt;">'))
    out(17, "text/html javascript: link (needs a click)", html_output(f'<a href="javascript:{j(17)}">click</a>'))

    attack_cell = new_code_cell("display(evil)", execution_count=1)
    attack_cell.outputs = outputs
    if schema_breaking:
        attack_cell.execution_count = f'<img src="x" onerror="{j(18)}">'
        attacks[18] = "cell execution_count as markup"
    cells.append(attack_cell)

    md(20, "markdown <script>", f"My answer.\n\n<script>{j(20)}</script>\n")
    md(21, "markdown inline <img onerror>", f'It is the mean <img src="x" onerror="{j(21)}"> vector.')
    md(22, "markdown javascript: link (needs a click)", f"[see here](javascript:{j(22)})")
    md(23, "markdown mermaid block closing its <pre>", f'```mermaid\n</pre><img src="x" onerror="{j(23)}">\n```')
    md(24, "markdown <iframe srcdoc>", f'<iframe srcdoc="<script>{j(24)}</script>"></iframe>')
    md(25, "markdown attachment served as text/html",
       "![a](attachment:evil.html)",
       attachments={"evil.html": {"text/html": "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="}})
    md(26, "markdown heading whose id clobbers a formgrader score input", "# cell-answer\n\ntext")
    cells.append(new_raw_cell(f"<script>{j(27)}</script>", metadata={"raw_mimetype": "text/html"}))
    attacks[27] = "raw cell text/html <script>"

    # Ordinary content that must survive.
    cells.append(new_markdown_cell(
        "## Why it happens\n\nThe embeddings share a **large mean** $\\bar x = \\frac{1}{n}\\sum_i x_i$, so "
        "$\\cos(x, y) \\approx 1$ when $a < b$.\n\n> quoted\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "See [the paper](https://arxiv.org/abs/1702.01417) and `code < 3`."
    ))
    cells.append(new_code_cell("df", execution_count=2, outputs=[
        html_output(
            '<style scoped>.dataframe tbody tr th {vertical-align: top;}</style>'
            '<table border="1" class="dataframe"><thead><tr style="text-align: right;"><th></th><th>cos</th></tr>'
            "</thead><tbody><tr><th>0</th><td>0.93</td></tr></tbody></table>"
            "<p><b>bold result</b> and <i>italic</i></p>"
        ),
        new_output("display_data", data={"image/png": PNG_1PX, "text/plain": "<Figure>"},
                   metadata={"image/png": {"width": 200, "height": 100}}),
        new_output("stream", name="stdout", text="plain text result 0.93\n"),
        new_output("execute_result", data={"text/plain": "3"}, execution_count=2),
    ]))
    # built without nbformat's validation: the kernel's JSON is not schema-checked either
    nb = nbformat.from_dict({"nbformat": 4, "nbformat_minor": 5, "cells": cells, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2, "version_minor": 0}},
    }})
    return nb, attacks


# ------------------------------------------------------------------------------ page checks
URL_ATTRIBUTES = ("href", "src", "action", "formaction", "data", "xlink:href", "background", "poster")
ACTIVE_ELEMENTS = ("iframe", "frame", "object", "embed", "applet", "base", "form", "svg", "math", "meta")


def live_content(html: str) -> list[str]:
    """What on a page could run a student's code, or hijack the page's own scripts (the
    template's own handlers included: compare with an empty notebook's page)."""
    found = []
    for el in BeautifulSoup(html, "html.parser").find_all(True):
        for name, value in el.attrs.items():
            value = " ".join(value) if isinstance(value, list) else str(value)
            squashed = re.sub(r"[\x00-\x20]+", "", value).lower()
            if name.lower().startswith("on"):
                found.append(f"<{el.name} {name}>")
            elif name.lower() == "srcdoc":
                found.append(f"<{el.name} srcdoc>")
            elif name.lower() in URL_ATTRIBUTES and squashed.startswith(("javascript:", "vbscript:", "data:text")):
                found.append(f"<{el.name} {name}={squashed.split(':')[0]}:>")
        if el.name in ACTIVE_ELEMENTS and not (el.name == "meta" and "http-equiv" not in el.attrs):
            found.append(f"<{el.name}>")
        if el.name == "script" and "ned-" in el.get_text():
            found.append("<script> with a student's payload")
        if "mermaid" in (el.get("class") or []) and el.name == "pre":
            found.append("<pre class=mermaid>")
        if el.get("id") == "cell-answer":
            found.append("id from a student's heading")
    return found


def students_live_content(page: str, empty_page: str) -> list[str]:
    """live_content of a page, less what its template puts on every page (``empty_page``:
    an empty notebook rendered the same way)."""
    found = Counter(live_content(page))
    found.subtract(live_content(empty_page))
    return sorted(found.elements())


# ------------------------------------------------------------------------------- rendering
FEEDBACK_RESOURCES = {"nbgrader": {"notebook": "puzzle1", "score": 1.0, "max_score": 10.0, "late_penalty": 0}}
FORMGRADE_RESOURCES = {
    "assignment_id": "puzzle1", "notebook_id": "puzzle1", "submission_id": "s1", "index": 0, "total": 1,
    "base_url": "", "student": "mallory", "last_name": "M", "first_name": "M", "notebook_path": "x",
}


def feedback_exporter(config=None):
    """The exporter ``nbgrader generate_feedback`` builds (GenerateFeedback.start), its converter
    preprocessors left out (GetGrades needs a gradebook)."""
    from nbgrader.converters.generate_feedback import GenerateFeedback
    from traitlets.config import Config

    converter = GenerateFeedback(coursedir=None, config=config or Config())
    return converter.exporter_class(parent=converter, config=converter.config)


def formgrade_exporter(config=None):
    """The exporter formgrader renders a submission with (FormgradeExtension.build_extra_config
    and init_tornado_settings: HTMLExporter(config=...) with the 'formgrade' template)."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config

    config = Config(config or {})
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    return HTMLExporter(config=config)


def render(kind: str, nb, config=None) -> str:
    if kind == "feedback":
        html, _ = feedback_exporter(config).from_notebook_node(nb, resources=dict(FEEDBACK_RESOURCES))
    else:
        html, _ = formgrade_exporter(config).from_notebook_node(nb, resources=dict(FORMGRADE_RESOURCES))
    return html


def course_config():
    """nbgrader_config.py as nbgrader loads it; raises if it does not load (nbgrader would
    only log that and carry on with its defaults)."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()


if __name__ == "__main__":
    notebook, outdir = sys.argv[1:3]
    config = course_config()
    for kind in ("feedback", "formgrade"):
        nb = nbformat.read(notebook, as_version=4)
        (Path(outdir) / f"{kind}.html").write_text(render(kind, nb, config))
        (Path(outdir) / f"{kind}-empty.html").write_text(render(kind, nbformat.v4.new_notebook(), config))
