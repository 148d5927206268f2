"""The full log of a grading run: everything nbgrader prints, in one file.

``make grade`` shows the instructor what they act on (the progress, the table, what was not
graded and why); nbgrader's own lines (its warnings, each kernel fault, tracebacks) go to
``logs/grade-<date>-<time>.log`` in the course root, which the closing lines name. Everything in
it comes through ``inert.one_line`` (students' names and outputs reach nbgrader's log).

A few lines in it mean the sandbox was weaker than configured (no cgroup limits, figures not
drawn): those are also kept as *notices*, which the closing lines print on the terminal once.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from interp_course.exit_status import Refusal
from interp_course.security.inert import one_line

_current: "GradingLog | None" = None

PROGRESS = "[progress] "  # starts each line of a batch's progress in the log (nbgrader_process.Started)

# What a line says -> the notice the terminal gets (once per run). The messages come from
# the sandbox and the figures code, run in the batch's autograde process.
NOTICES = {
    "Sandbox cgroup limits are NOT enforced": (
        "kernels ran WITHOUT cgroup limits (memory and process count per notebook), as ALLOW_NO_CGROUP=1 "
        "allows: their memory was capped per process only; `make setup` as root makes the cgroups"),
    "Figures not drawn": "some students' figures were not drawn (no Chromium, or no cgroup for its sandbox)",
}


class GradingLog:
    def __init__(self, folder: Path):
        if os.path.lexists(folder) and not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise Refusal(f"{folder} should be a folder but is not (a link?): remove it")
        folder.mkdir(mode=0o755, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(100):
            self.path = folder / f"grade-{stamp}{f'-{n}' if n else ''}.log"
            try:  # a new file of ours: never through a link, never an existing file
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
                break
            except FileExistsError:
                continue
        else:
            raise Refusal(f"cannot create a log file in {folder}")
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        self._lock = threading.Lock()  # feedback and export write their lines side by side
        self.notices: list[str] = []

    def write(self, line: str) -> None:
        with self._lock:
            self._file.write(one_line(line.rstrip("\n")) + "\n")
            self._file.flush()
            for said, notice in NOTICES.items():
                if said in line and notice not in self.notices:
                    self.notices.append(notice)

    def close(self) -> None:
        self._file.close()


@contextmanager
def logging_to(folder: Path):
    """Send nbgrader's lines to a new log file in ``folder`` while the block runs."""
    global _current
    log = GradingLog(folder)
    _current = log
    try:
        yield log
    finally:
        _current = None
        log.close()


def current() -> GradingLog | None:
    return _current
