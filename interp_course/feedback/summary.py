"""The summary at the top of the feedback page: points per part, linked to the graded cells.

A part is what follows a level-2 heading (``## Part 1 — ...``, or the ``<h2>`` that
``SanitizeSubmission`` leaves of it in a cell it had to rebuild as HTML) up to the next one;
only parts holding graded cells are listed, in notebook order. Scores come from the cell
metadata nbgrader's ``GetGrades`` fills in for feedback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from bs4 import BeautifulSoup

from interp_course.preprocessors.sanitize_submission import render_markdown


@dataclass
class GradedCell:
    grade_id: str
    kind: str  # "autograded" or "by hand"
    score: float | None  # None: not graded yet
    points: float


@dataclass
class Part:
    title: str
    cells: list[GradedCell] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(c.score or 0.0 for c in self.cells)

    @property
    def points(self) -> float:
        return sum(c.points for c in self.cells)


def _headings(source: str) -> list[str]:
    """The text of the level-2 headings of a markdown cell, as the page shows them."""
    try:
        html = render_markdown(source, anchors=False)
    except Exception:  # noqa: BLE001 - e.g. a missing attachment
        return []
    return [" ".join(h2.get_text().split()) for h2 in BeautifulSoup(html, "html.parser").find_all("h2")]


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parts(nb) -> list[Part]:
    """The notebook's parts with their graded cells, in order."""
    found: list[Part] = []
    current = Part("Before the first part")
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            headings = _headings(cell.source if isinstance(cell.source, str) else "".join(cell.source))
            if headings:
                if current.cells:
                    found.append(current)
                current = Part(headings[-1])
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and meta.get("grade_id"):
            kind = "autograded" if cell.cell_type == "code" and not meta.get("solution") else "by hand"
            current.cells.append(GradedCell(str(meta["grade_id"]), kind, _number(meta.get("score")),
                                            _number(meta.get("points")) or 0.0))
    if current.cells:
        found.append(current)
    return found


def _points(value: float) -> str:
    return f"{value:g}"


def summary_html(found: list[Part]) -> str:
    """A table: one row per part, its points, and a link to each of its graded cells."""
    if not found:
        return ""
    rows = []
    for part in found:
        links = ", ".join(
            f'<a href="#{escape(c.grade_id, quote=True)}">{escape(c.grade_id)}</a> '
            f"{'—' if c.score is None else _points(c.score)}/{_points(c.points)}"
            + (" (by hand)" if c.kind == "by hand" else "")
            for c in part.cells
        )
        rows.append(f"<tr><td>{escape(part.title)}</td><td>{_points(part.score)} / {_points(part.points)}</td>"
                    f"<td>{links}</td></tr>")
    total = sum(p.score for p in found), sum(p.points for p in found)
    return (
        "<h2>Your points, part by part</h2>"
        "<table><thead><tr><th>part</th><th>points</th><th>graded cells</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody>"
        f"<tfoot><tr><td>total</td><td>{_points(total[0])} / {_points(total[1])}</td><td></td></tr></tfoot></table>"
    )
