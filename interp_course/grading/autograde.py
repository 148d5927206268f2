"""One batch's autograde, in one process: plan, run the kernels side by side, judge.

``make grade`` runs this (``nbgrader_cli autograde``, as the grading account) where stock nbgrader
would run ``nbgrader autograde``; it is that app, with the same options, config files and guard,
and it grades each notebook with nbgrader's own ``Autograde`` converter. What it adds is the
batch: nbgrader grades one notebook at a time, and a sandboxed run takes seconds, so

1. **plan**: one ``Autograde`` pass over every submission. ``GradeInSandbox`` judges each one
   whose run is kept (``run_cache``) and hands every other run to :class:`workers.Runs`, which
   runs them side by side, on threads here or on a Dask cluster, while this pass goes on;
2. **judge**: as each of those runs is kept, an ``Autograde`` pass over that one student judges
   them from it (a run the workers lost is run there and then).

nbgrader stays the only writer of the gradebook and of ``autograded/``. What the grader needs
to know about the batch (who was planned and judged, who was judged from a faulted kept run,
why no kernel could start) it writes to ``report_fd``, a file the grader opened for it
(``report.BatchReport``): no student's text reaches that file, unlike this process's output.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from nbgrader.apps.autogradeapp import AutogradeApp
from nbgrader.apps.baseapp import NbGrader
from nbgrader.converters import Autograde, NbGraderException
from nbgrader.utils import temp_attrs
from traitlets import Float, Int, Unicode

from interp_course.course import Course
from interp_course.exit_status import REFUSED
from interp_course.security import guard
from interp_course.security.inert import one_line
from interp_course.grading import run_cache
from interp_course.grading.workers import Runs, runner
from interp_course.grading.report import JUDGED, KEPT_FAULT, OUT_OF_TIME, PLANNED, REFUSAL


class AutogradeBatch(AutogradeApp):
    """``nbgrader autograde ASSIGNMENT``, with the batch's sandboxed runs side by side."""

    name = "interp-course-autograde"
    workers = Int(os.cpu_count() or 1, help="Sandboxed kernels at a time on this machine.").tag(config=True)
    scheduler = Unicode("", help="tcp://HOST:PORT of a Dask scheduler whose workers run the kernels; "
                        "empty: this machine.").tag(config=True)
    time_limit = Float(0, help="Seconds after which the batch starts no sandboxed run (runs under way "
                       "finish); 0: no limit.").tag(config=True)
    report_fd = Int(-1, help="A file descriptor the grader opened: the batch's report (BatchReport).").tag(config=True)
    terminal_fd = Int(-1, help="A file descriptor the grader opened: the batch's progress, for its terminal "
                      "(-1: this process's output).").tag(config=True)

    aliases = {**AutogradeApp.aliases, "workers": "AutogradeBatch.workers", "scheduler": "AutogradeBatch.scheduler",
               "report-fd": "AutogradeBatch.report_fd", "terminal-fd": "AutogradeBatch.terminal_fd",
               "time-limit": "AutogradeBatch.time_limit"}

    planning = True  # GradeInSandbox finds its batch by this attribute (GradeInSandbox._batch)
    _runs: Runs | None = None

    def initialize(self, argv=None) -> None:
        super().initialize(argv)
        # The course config filters nbgrader's autograde log (by its app's name): this log too.
        for found in logging.getLogger(AutogradeApp.__name__).filters:
            self.log.addFilter(found)
        for fd in (self.report_fd, self.terminal_fd):
            if fd >= 0:
                os.set_inheritable(fd, False)  # no kernel or Chromium inherits them
        self._terminal = os.fdopen(self.terminal_fd, "w", buffering=1) if self.terminal_fd >= 0 else sys.stdout

    def start(self) -> None:
        NbGrader.start(self)
        if not getattr(Autograde.start, "_interp_course_guarded", False):
            guard.refuse("the course's guard did not run (nbgrader's environment config from `make setup`); "
                         "grade with `make grade`")
        if len(self.extra_args) != 1:
            self.fail("Give one argument: the assignment id")
        self.coursedir.assignment_id = self.extra_args[0]
        with tempfile.TemporaryDirectory(prefix="plans-") as plans:
            cache = run_cache.RunCache(Course(Path(self.coursedir.root)).run_cache)
            # Wall-clock time: a Dask worker on another machine compares it with its own clock.
            deadline = time.time() + self.time_limit if self.time_limit > 0 else 0.0
            self._runs = Runs(cache, lambda: runner(self.workers, self.scheduler, deadline), Path(plans), deadline,
                              self._say)
            failed = not self._autograde()
            self.planning = False
            refusal = self._runs.planning_done()
            if refusal:
                self._tell(REFUSAL, refusal)
                self.exit(REFUSED)
            for student in self._runs.finished():
                if self._runs.late(student):  # not run in time: no verdicts, nor the planning pass's blanks
                    cd = self.coursedir
                    shutil.rmtree(cd.format_path(cd.autograded_directory, student, cd.assignment_id), ignore_errors=True)
                    self._tell(OUT_OF_TIME, student)
                elif self._autograde(student):
                    self._tell(JUDGED, student)
                else:
                    failed = True
        if failed:
            self.exit(1)

    def _autograde(self, student: str = "") -> bool:
        """One ``Autograde`` pass: every submission, or only ``student``'s; whether all were graded."""
        with temp_attrs(self.coursedir, student_id=student or self.coursedir.student_id):
            try:
                Autograde(coursedir=self.coursedir, parent=self).start()
            except NbGraderException:
                return False
        return True

    def plan(self, student: str, key: str, write) -> None:
        """``GradeInSandbox``: run this notebook of ``student``'s on the batch's workers."""
        planned = len(self._runs.planned)
        self._runs.plan(student, key, write)
        if len(self._runs.planned) > planned:
            self._tell(PLANNED, student)

    def kept(self, key: str) -> bool:
        """``GradeInSandbox``, judging: whether this batch ran ``key``'s notebook and kept the run."""
        return self._runs.kept(key)

    def kept_fault(self, student: str, faults: str) -> None:
        """``GradeInSandbox``: this student was judged from a kept run whose kernel faulted."""
        self._tell(KEPT_FAULT, student, faults)

    def _say(self, line: str) -> None:
        self._terminal.write(one_line(line) + "\n")

    def _tell(self, word: str, *text: str) -> None:
        if self.report_fd >= 0:
            os.write(self.report_fd, (" ".join((word, *text)).replace("\n", " ") + "\n").encode())


def main(argv: list[str]) -> None:
    """Run the batch app with ``argv`` (what follows ``autograde`` on ``nbgrader_cli``'s command
    line: there nbgrader's guard, in the environment's config, sees the command it guards)."""
    AutogradeBatch.launch_instance(argv)
