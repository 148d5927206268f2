"""Put a submitted notebook back into the assignment's shape before it is graded.

Students can delete, duplicate, reorder or re-type cells and edit their metadata. nbgrader's
own ``OverwriteCells`` restores the source of test cells it finds, but a deleted test cell is
simply not graded and a duplicated one confuses the gradebook. This preprocessor rebuilds the
notebook on the released notebook's skeleton:

- every nbgrader cell of the release appears exactly once, in release order, with the release's
  cell type and nbgrader metadata (points, grade flags) — never the student's;
- a solution cell keeps the student's source (the first copy, if duplicated); a deleted one is
  restored from the release stub, so it scores like an unanswered cell;
- the student's own extra cells are kept after the nbgrader cell they followed, stripped of any
  nbgrader metadata (so they cannot claim points).

It runs in the sanitize step, before ``OverwriteCells`` restores test and locked cells.
"""

from __future__ import annotations

import copy
import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

from interp_course.course import Course


def _grade_id(cell) -> str | None:
    # Read by hand, not with nbgrader.utils: the student's metadata may be any JSON at all.
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta.get("grade_id") if isinstance(meta, dict) else None


def _plain(cell):
    cell = copy.deepcopy(cell)
    cell.get("metadata", {}).pop("nbgrader", None)
    return cell


def restore_structure(submitted, release):
    """A new cell list: the release's nbgrader cells once each, plus the student's extras."""
    known = {_grade_id(c) for c in release.cells if _grade_id(c)}
    answers, extras_after, current = {}, {None: []}, None
    for cell in submitted.cells:
        gid = _grade_id(cell)
        if gid in known:
            if gid not in answers:  # later duplicates are dropped
                answers[gid] = cell
                current = gid
                extras_after.setdefault(gid, [])
        else:
            extras_after.setdefault(current, []).append(_plain(cell))

    cells = list(extras_after[None])
    for template in release.cells:
        gid = _grade_id(template)
        if gid is None:
            continue  # the release has no un-tracked cells; nothing to restore
        cell = copy.deepcopy(template)
        meta = template.metadata["nbgrader"]
        student = answers.get(gid)
        if student is not None and meta.get("solution"):
            cell.source = student.get("source", "")
            if isinstance(cell.source, list):
                cell.source = "".join(cell.source)
        cells.append(cell)
        cells.extend(extras_after.get(gid, []))
    return cells


class RestoreStructure(NbGraderPreprocessor):
    """Sanitize step: rebuild the submission on the released notebook's skeleton."""

    def preprocess(self, nb, resources):
        assignment = resources["nbgrader"]["assignment"]
        notebook = resources["nbgrader"]["notebook"]
        path = Course.from_config(self.config).release(assignment) / f"{notebook}.ipynb"
        release = nbformat.read(path, as_version=4)
        before = len(nb.cells)
        nb.cells = restore_structure(nb, release)
        self.log.info("Restored notebook structure from %s (%d cells -> %d)", path, before, len(nb.cells))
        return nb, resources
