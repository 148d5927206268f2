"""Formgrader for TAs: a Jupyter server on loopback, run as the grading account.

nbgrader's formgrader is a Jupyter server extension; manual grading writes the gradebook, and
"generate feedback" writes feedback/. The grading account owns exactly those (and autograded/),
and cannot change the instructor's files, so the server runs as it (``grader_user``), never as
root: a student's script that somehow ran in a TA's page would act with no more than that. The
server listens on 127.0.0.1 only, behind a random token (reach it from a laptop with
``ssh -L PORT:127.0.0.1:PORT``). The course is checked as for ``grade`` first.

Run as ``python -m interp_course.formgrader`` the module is that server: stock ``jupyter server``
with these changes to nbgrader's formgrader (0.9.6):

- Formgrader serves a submission's other files (``/formgrader/submissions/<id>/<file>``, which a
  markdown link on the grading page resolves to) as they are, on the TA's own origin: a student's
  ``report.html`` or ``figure.svg`` opened from there would run its script with the TA's session.
  Here those responses carry ``Content-Security-Policy: sandbox`` (no script, an opaque origin), as
  Jupyter's own ``/files/`` does (which still allows script there).
- The submission page (``FormgradeExporter``) loads MathJax from this server (the
  ``jupyter_server_mathjax`` extension), not from a CDN an offline grading server cannot reach;
  opens with links to the answers graded by hand; and shows each answer's rubric beside it, under
  its score box (``RubricBesideScore``).
- A course that does not use nbgrader's exchange (its root does not exist: this course hands out
  and collects through Canvas) gets no "exchange directory missing" banner and no
  ``[C] Unwritable directory`` line on every request (``QuietExchangeList``).
- Students are named as the roster names them (``start(roster=...)`` writes the names into the
  gradebook), and by their id where no roster did, not "None, None"; a student without an email
  (a Canvas roster has none) has an empty cell, not "None" (``SCRIPT_PATCHES``).
"""

from __future__ import annotations

import csv
import functools
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from interp_course.security import grader_user, guard
from interp_course.course import COURSE_ID, Course
from interp_course.exit_status import Refusal
from interp_course.grading.nbgrader_process import nbgrader_env

TEMPLATES = Path(__file__).resolve().parent / "templates" / "formgrader"
FORMGRADE_TEMPLATE = "interp_formgrade.html.j2"
MATHJAX = "static/jupyter_server_mathjax/MathJax.js"  # the jupyter_server_mathjax extension's, under base_url


def server_command(course: Course, port: int, token: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment of the server (as the grading account when the caller is root)."""
    argv = [sys.executable, "-m", "interp_course.formgrader", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", f"--ServerApp.root_dir={course.root}", "--ServerApp.open_browser=False"]
    env = grader_user.environment(nbgrader_env())
    env["JUPYTER_TOKEN"] = token  # not on the command line, where other local users could read it
    return grader_user.command(argv), env


def url(port: int, token: str, path: str = "formgrader") -> str:
    return f"http://127.0.0.1:{port}/{path}?token={token}"


def start(course: Course, port: int, token: str | None = None,
          roster: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Check the course, hand the grading account its state, name the students from ``roster`` (a
    Canvas Grades > Export CSV), start the server; (process, token)."""
    guard.check_grading(course)
    grader_user.prepare_state(course)
    if roster is not None:
        named = name_students(course, roster_names(roster))
        print(f"Named {named} student(s) of the gradebook from {roster}")
    token = token or secrets.token_hex(24)
    argv, env = server_command(course, port, token)
    return subprocess.Popen(argv, cwd=course.root, env=env), token


def serve(course: Course, port: int, roster: Path | None = None) -> int:
    """``python -m interp_course formgrader``: run until interrupted."""
    process, token = start(course, port, roster=roster)
    print(f"Formgrader for {course.root}, as {grader_user.ACCOUNT if grader_user.is_root() else 'you'}:\n"
          f"  {url(port, token)}\n(Ctrl-C stops it)", flush=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()


def roster_names(roster: Path, student_column: str | None = None) -> dict[str, tuple[str, str]]:
    """{student id: (first name, last name)} from a Canvas roster (Grades > Export): its ``Student``
    column is "Last, First"; the student id column is the one ``make collect`` reads."""
    from interp_course.lms import canvas_collect

    column = student_column or canvas_collect.ROSTER_STUDENT_COLUMN
    try:
        with open(roster, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise Refusal(f"cannot read the roster {roster} ({error}): export it from Canvas (Grades > Export)") from None
    names = {}
    for row in rows:
        student, name = (row.get(column) or "").strip(), (row.get("Student") or "").strip()
        if student and name and (row.get(canvas_collect.ROSTER_ID_COLUMN) or "").strip().isdigit():
            last, _, first = name.partition(",")
            names[student] = (first.strip(), last.strip())
    return names


def name_students(course: Course, names: dict[str, tuple[str, str]]) -> int:
    """Give the gradebook's students without a name theirs from ``names`` (as the grading account,
    which owns the gradebook); how many were named. A name a TA gave in formgrader stays."""
    if grader_user.is_root():
        code = ("import json, sys; from interp_course.formgrader import name_students; from interp_course.course "
                "import Course; print(name_students(Course(sys.argv[1]), json.load(sys.stdin)))")
        done = subprocess.run(grader_user.command([sys.executable, "-c", code, str(course.root)]), cwd=course.root,
                              env=grader_user.environment(nbgrader_env()), input=json.dumps(names), text=True,
                              capture_output=True, check=True)
        return int(done.stdout.strip().splitlines()[-1])
    from nbgrader.api import Gradebook

    named = 0
    with Gradebook(course.db_url, course_id=COURSE_ID) as gb:
        for student in gb.students:
            if student.id in names and not (student.first_name or student.last_name):
                student.first_name, student.last_name = names[student.id]
                named += 1
        gb.db.commit()
    return named


def sandbox_submission_files() -> None:
    """Submitted files that formgrader serves run no script (see the module docstring)."""
    from nbgrader.server_extensions.formgrader.handlers import SubmissionFilesHandler

    stock = SubmissionFilesHandler.content_security_policy
    SubmissionFilesHandler.content_security_policy = property(lambda self: f"{stock.fget(self)}; sandbox")


def _formgrade_exporter():
    """nbgrader's exporter of the submission page, with the page's changes (module docstring)."""
    from nbconvert.exporters import HTMLExporter
    from traitlets import Unicode, default

    class FormgradeExporter(HTMLExporter):
        """Formgrader's submission page: nbgrader's ``formgrade`` template extended by
        ``templates/formgrader/interp_formgrade.html.j2``, whose ``mathjax`` macro loads
        ``mathjax_script`` from this server; each rubric beside its answer (``RubricBesideScore``)."""

        mathjax_script = Unicode("", help="MathJax.js on this server")

        @default("template_paths")
        def _template_paths(self, prune=True, root_dirs=None):
            return [str(TEMPLATES), *super()._template_paths(prune, root_dirs)]

        @default("template_file")
        def _template_file_default(self):
            return FORMGRADE_TEMPLATE if self.template_name == "formgrade" else super()._template_file_default()

        def _create_environment(self):
            environment = super()._create_environment()
            environment.globals["interp_mathjax_url"] = self.mathjax_script
            return environment

    return FormgradeExporter


@functools.cache
def _quiet_exchange_list():
    from nbgrader.exchange.abc.exchange import ExchangeError
    from nbgrader.exchange.default.list import ExchangeList

    class QuietExchangeList(ExchangeList):
        """nbgrader's exchange listing, for a course whose exchange root does not exist (it does
        not use the exchange): "missing", as nbgrader's own says, without logging a critical
        "Unwritable directory" on each of formgrader's requests."""

        def start(self):
            if not os.path.lexists(self.root):
                raise ExchangeError(f"this course does not use nbgrader's exchange ({self.root} does not exist)")
            return super().start()

    return QuietExchangeList


def __getattr__(name: str):
    if name == "QuietExchangeList":  # made on first use: nbgrader is imported by the server only
        return _quiet_exchange_list()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# nbgrader 0.9.6's scripts write what a student's record lacks as "None": "None, None" for no name
# (Manage Students and an assignment's submissions), "None" for no email. The server's copies name
# such a student by their id and leave the email blank: {script: [(nbgrader's lines, ours)]}.
_JOINED_NAME = '[last_name, first_name].filter(function (x) { return x; }).join(", ")'
SCRIPT_PATCHES = {
    "manage_students.js": [
        ('        if (last_name === null) last_name = "None";\n'
         '        var first_name = this.model.get("first_name");\n'
         '        if (first_name === null) first_name = "None";\n'
         '        var name = last_name + ", " + first_name;\n',
         '        var first_name = this.model.get("first_name");\n'
         f'        var name = {_JOINED_NAME} || this.model.get("id");\n'),
        ('        if (email === null) email = "None";\n',
         '        if (email === null) email = "";\n'),
    ],
    "manage_submissions.js": [
        ('        if (last_name === null) last_name = "None";\n'
         '        if (first_name === null) first_name = "None";\n'
         '        var name = last_name + ", " + first_name;\n',
         f'        var name = {_JOINED_NAME} || student;\n'),
    ],
}


def patched_script(name: str) -> str:
    """nbgrader's formgrader script ``name`` with ``SCRIPT_PATCHES``."""
    from nbgrader.server_extensions.formgrader import handlers

    script = (Path(handlers.static_path) / "js" / name).read_text()
    for stock, ours in SCRIPT_PATCHES[name]:
        script = script.replace(stock, ours)
    return script


def formgrade_pages() -> None:
    """The changes to nbgrader's formgrader extension (module docstring), made as it loads."""
    from jupyter_server.utils import url_path_join
    from nbgrader.server_extensions.formgrader import handlers
    from nbgrader.server_extensions.formgrader.formgrader import FormgradeExtension
    from tornado import web

    from interp_course.preprocessors.rubric import RubricBesideScore

    exporter_class = _formgrade_exporter()
    stock_config, stock_settings, stock_handlers = (FormgradeExtension.build_extra_config,
                                                    FormgradeExtension.init_tornado_settings,
                                                    FormgradeExtension.init_handlers)

    def build_extra_config(self):
        config = stock_config(self)
        config.ExchangeFactory.list = "interp_course.formgrader.QuietExchangeList"  # a name: shown as JSON
        return config

    def init_tornado_settings(self, webapp):
        stock_settings(self, webapp)
        exporter = exporter_class(config=self.config)
        exporter.mathjax_script = url_path_join(webapp.settings.get("base_url", "/"), MATHJAX)
        exporter.register_preprocessor(RubricBesideScore, enabled=True)
        webapp.settings["nbgrader_exporter"] = exporter

    class PatchedScript(web.RequestHandler):
        """One of nbgrader's scripts with ``SCRIPT_PATCHES``."""

        def initialize(self, script: str):
            self.script = script

        def get(self):
            self.set_header("Content-Type", "application/javascript; charset=UTF-8")
            self.write(patched_script(self.script))

    def init_handlers(self, webapp):
        # added before nbgrader's own handlers: these answer first
        base = webapp.settings.get("base_url", "/")
        webapp.add_handlers(".*$", [(url_path_join(base, f"formgrader/static/js/{script}"), PatchedScript,
                                     {"script": script}) for script in SCRIPT_PATCHES])
        stock_handlers(self, webapp)

    stock_render = handlers.ManageAssignmentsHandler.render

    def render(self, name, **ns):
        if name == "manage_assignments.tpl" and ns.get("exchange_missing") and not os.path.lexists(ns.get("exchange") or ""):
            ns["exchange_missing"] = False  # not missing: not used
        return stock_render(self, name, **ns)

    FormgradeExtension.build_extra_config = build_extra_config
    FormgradeExtension.init_tornado_settings = init_tornado_settings
    FormgradeExtension.init_handlers = init_handlers
    handlers.ManageAssignmentsHandler.render = render


if __name__ == "__main__":
    from jupyter_server.serverapp import ServerApp

    sandbox_submission_files()
    formgrade_pages()
    sys.exit(ServerApp.launch_instance())

