"""nbgrader's file-name collector for a Canvas bulk download (``make collect``): see ``interp_course.lms``."""

from __future__ import annotations

import os
from pathlib import Path

from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import Unicode

from interp_course.lms import CANVAS_FILE, ROSTER_STUDENT_COLUMN, Entry, plan, read_roster


class CanvasCollector(FileNameCollectorPlugin):
    """nbgrader's file-name collector for a Canvas download, with Canvas user ids mapped by a roster."""

    named_regexp = Unicode(r"^.*/" + CANVAS_FILE.pattern,
                           help="Canvas's submission file name, anywhere in the extracted folder").tag(config=True)
    roster = Unicode("", help="CSV exported from Canvas's gradebook (Grades > Export)").tag(config=True)
    student_column = Unicode(ROSTER_STUDENT_COLUMN, help="roster column holding the nbgrader student id").tag(config=True)

    _plans: dict[str, dict[str, Entry]] | None = None

    def _plan_for(self, folder: str) -> dict[str, Entry]:
        # A Canvas download is flat: a file's siblings are the rest of the download.
        if self._plans is None:
            self._plans = {}
            self._roster = read_roster(Path(self.roster), self.student_column)
        if folder not in self._plans:
            names = [n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n))]
            self._plans[folder] = {e.name: e for e in plan(names, *self._roster)}
        return self._plans[folder]

    def collect(self, submitted_file: str) -> dict | None:
        info = super().collect(submitted_file)
        if info is None:
            return None
        entry = self._plan_for(os.path.dirname(submitted_file)).get(os.path.basename(submitted_file))
        if entry is None or entry.student is None:
            return None
        return {"student_id": entry.student, "file_id": entry.file_id}
