"""The real nbgrader CLI, run in the course root with this interpreter (as the grading account).

``nbgrader(course, *args)`` runs one command and streams its output. ``start_nbgrader`` starts a
command that waits to be told (``interp_course.grading.nbgrader_cli --when-told``): it imports its
libraries, ~1-3 s, while the grader is still busy with the step before; ``go()`` then runs it,
``cancel()`` ends it having done nothing. ``autograde`` (``interp_course.grading.autograde``) is
given a file of its own for its batch report, read with ``report()``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from interp_course.grading import log as grading_log
from interp_course.grading.report import MAX_BATCH_REPORT
from interp_course.security import grader_user
from interp_course.course import Course
from interp_course.security.inert import one_line


def nbgrader_env() -> dict[str, str]:
    """nbgrader runs `alembic` from PATH to migrate the gradebook: put this venv's bin/ first.

    A config file that fails to load stops nbgrader instead of leaving it on its stock pipeline.
    """
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "TRAITLETS_APPLICATION_RAISE_CONFIG_FILE_ERROR": "1"}


class Started:
    """One nbgrader command, started and waiting for ``go()`` or ``cancel()``."""

    def __init__(self, course: Course, args: tuple[str, ...], as_grader: bool = True):
        self.course, self.args, self.told = course, args, False
        # autograde writes its report to an unnamed file open in both processes, and its progress to a
        # pipe: channels of their own, which no student's text reaches (nbgrader's output may carry it)
        self._report = self._progress = None
        extra, fds = [], ()
        if args[:1] == ("autograde",):
            self._report = tempfile.TemporaryFile()
            read, write = os.pipe()
            self._progress = os.fdopen(read, "r", encoding="utf-8", errors="replace")
            extra, fds = [f"--report-fd={self._report.fileno()}", f"--terminal-fd={write}"], (self._report.fileno(), write)
        argv = [sys.executable, "-m", "interp_course.grading.nbgrader_cli", "--when-told", *args, *extra]
        env = nbgrader_env()
        if as_grader:
            argv, env = grader_user.command(argv), grader_user.environment(env)
        try:
            self.proc = subprocess.Popen(argv, cwd=course.root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, errors="replace", pass_fds=fds)
        finally:
            if fds:
                os.close(fds[1])  # the child's end of the pipe

    def go(self, check: bool = True, more: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """Run it, with the arguments ``more`` added; its output is kept, for the summary. While
        grading it goes to the log file (autograde's progress to the terminal too); otherwise it is
        all shown as it comes.

        It is printed through ``inert.one_line``: nbgrader logs names and messages from students' files.
        """
        self.args = (*self.args, *more)
        log = grading_log.current()
        if log:  # while grading, the command lines (and nbgrader's own) go to the log file only
            log.write("$ nbgrader " + shlex.join(self.args))
        else:  # one write: feedback and export start side by side
            print(one_line("$ nbgrader " + shlex.join(self.args)) + "\n", end="", flush=True)
        self._tell(f"go {json.dumps(list(more))}\n" if more else "go\n")
        progress = threading.Thread(target=self._show_progress, args=(log,), daemon=True)
        if self._progress is not None:
            progress.start()
        lines = []
        for line in self.proc.stdout:
            lines.append(line)
            if log:
                log.write(line)
            else:
                print(one_line(line.rstrip("\n")), flush=True)
        result = subprocess.CompletedProcess(self.proc.args, self.proc.wait(), "".join(lines))
        if self._progress is not None:
            progress.join()
        errors = sum("ERROR]" in line or "CRITICAL]" in line for line in lines)
        if log and errors:
            print(f"  nbgrader logged {errors} error line(s), e.g. a kernel fault: see "
                  f"{log.path.relative_to(self.course.root)}", flush=True)
        if check:
            result.check_returncode()
        return result

    def _show_progress(self, log) -> None:
        """autograde's progress lines, on the terminal and in the log, as they come."""
        with self._progress:
            for line in self._progress:
                print(one_line(line.rstrip("\n")), flush=True)
                if log:
                    log.write(grading_log.PROGRESS + line)

    def report(self) -> bytes:
        """What autograde wrote to its report file (once it has exited), bounded."""
        if self._report is None:
            return b""
        self._report.seek(0)
        return self._report.read(MAX_BATCH_REPORT)

    @property
    def waiting(self) -> bool:
        """Started and not yet told to go (nor cancelled)."""
        return not self.told

    def cancel(self) -> None:
        """End it before it reads any course file (nothing to do once it was told to go)."""
        if self.waiting:
            self._tell("")
            self.proc.stdout.read()
            self.proc.wait()
            if self._progress is not None:
                self._progress.close()

    def _tell(self, text: str) -> None:
        self.told = True
        try:
            self.proc.stdin.write(text)
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError):  # it stopped early (its error is in its output), or closed
            pass


def start_nbgrader(course: Course, *args: str, as_grader: bool = True) -> Started:
    return Started(course, args, as_grader)


def nbgrader(course: Course, *args: str, check: bool = True, as_grader: bool = True) -> subprocess.CompletedProcess:
    """Run one nbgrader command now (``start_nbgrader(...).go()``)."""
    return start_nbgrader(course, *args, as_grader=as_grader).go(check)
