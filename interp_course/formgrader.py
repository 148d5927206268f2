"""Formgrader for TAs: a Jupyter server on loopback, run as the grading account.

nbgrader's formgrader is a Jupyter server extension; manual grading writes the gradebook, and
"generate feedback" writes feedback/. The grading account owns exactly those (and autograded/),
and cannot change the instructor's files, so the server runs as it (``grader_user``), never as
root: a student's script that somehow ran in a TA's page would act with no more than that. The
server listens on 127.0.0.1 only, behind a random token (reach it from a laptop with
``ssh -L PORT:127.0.0.1:PORT``). The course is checked as for ``grade`` first.

Run as ``python -m interp_course.formgrader`` the module is that server: stock ``jupyter server``
with one change. Formgrader serves a submission's other files (``/formgrader/submissions/<id>/
<file>``, which a markdown link on the grading page resolves to) as they are, on the TA's own
origin: a student's ``report.html`` or ``figure.svg`` opened from there would run its script with
the TA's session. Here those responses carry ``Content-Security-Policy: sandbox`` (no script, an
opaque origin), as Jupyter's own ``/files/`` does (which still allows script there).
"""

from __future__ import annotations

import secrets
import subprocess
import sys

from interp_course import grader_user, guard
from interp_course.course import Course
from interp_course.nbgrader_process import nbgrader_env


def server_command(course: Course, port: int, token: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment of the server (as the grading account when the caller is root)."""
    argv = [sys.executable, "-m", "interp_course.formgrader", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", f"--ServerApp.root_dir={course.root}", "--ServerApp.open_browser=False"]
    env = grader_user.environment(nbgrader_env())
    env["JUPYTER_TOKEN"] = token  # not on the command line, where other local users could read it
    return grader_user.command(argv), env


def url(port: int, token: str, path: str = "formgrader") -> str:
    return f"http://127.0.0.1:{port}/{path}?token={token}"


def start(course: Course, port: int, token: str | None = None) -> tuple[subprocess.Popen, str]:
    """Check the course, hand the grading account its state, start the server; (process, token)."""
    guard.check_grading(course)
    grader_user.prepare_state(course)
    token = token or secrets.token_hex(24)
    argv, env = server_command(course, port, token)
    return subprocess.Popen(argv, cwd=course.root, env=env), token


def serve(course: Course, port: int) -> int:
    """``python -m interp_course formgrader``: run until interrupted."""
    process, token = start(course, port)
    print(f"Formgrader for {course.root}, as {grader_user.ACCOUNT if grader_user.is_root() else 'you'}:\n"
          f"  {url(port, token)}\n(Ctrl-C stops it)", flush=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()


def sandbox_submission_files() -> None:
    """Submitted files that formgrader serves run no script (see the module docstring)."""
    from nbgrader.server_extensions.formgrader.handlers import SubmissionFilesHandler

    stock = SubmissionFilesHandler.content_security_policy
    SubmissionFilesHandler.content_security_policy = property(lambda self: f"{stock.fget(self)}; sandbox")


if __name__ == "__main__":
    from jupyter_server.serverapp import ServerApp

    sandbox_submission_files()
    sys.exit(ServerApp.launch_instance())
