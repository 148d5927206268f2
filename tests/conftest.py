"""Shared fixtures: real nbgrader courses, graded once per test session.

Grading is the slow part (a sandboxed kernel per submission), so a whole corpus is submitted and
graded in one batch by `python -m interp_course grade` (what `make grade` runs), as an instructor
would, in a scratch copy of the course; the tests then read its gradebook, feedback and CSVs.

Run as root (as CI does), the course is released as root and graded as the unprivileged grading
account, exactly as `make grade` does (interp_course.security.grader_user): scratch courses therefore live
in a folder that account can reach, not in pytest's private tmp_path.

Kernels start only as that account, forked from a zygote (interp_course.sandbox.kernel_manager): tests that drive
kernels themselves run that code in a process of the grading account (the ``grader`` fixture).
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import os
import secrets
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from interp_course import cli, corpus
from interp_course.security import grader_user, manifest
from interp_course.sandbox.cgroups import CgroupUnavailable, prepare_delegated_parent
from interp_course.cli import nbgrader_env
from interp_course.course import CHECKOUT, Course

PUZZLE1 = "puzzle1"
# A private file of the instructor's (mode 0600) in every scratch course: attacks aim at it.
PRIVATE_NOTES = "instructor-notes.txt"


def grader_tmp(course: Path) -> Path:
    """TMPDIR of the grading processes of one course (their scratch folders land there)."""
    tmp = course.parent / f"{course.name}-tmp"
    tmp.mkdir(mode=0o700, exist_ok=True)
    if grader_user.is_root():
        user = grader_user.account()
        os.chown(tmp, user.pw_uid, user.pw_gid)
    return tmp


def run_nbgrader(course: Path, *args: str, as_grader: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real nbgrader CLI in the course, as the grading account when we are root (as `make grade`)."""
    return finish_nbgrader(start_nbgrader(course, *args, as_grader=as_grader, env=env))


def start_nbgrader(course: Path, *args: str, as_grader: bool = True, env: dict | None = None) -> subprocess.Popen:
    """``run_nbgrader``, started (``finish_nbgrader`` waits for it)."""
    argv = [sys.executable, "-m", "nbgrader", *args, "--log-level=ERROR"]
    env = {**nbgrader_env(), "TMPDIR": str(grader_tmp(course)), **(env or {})}
    if as_grader:
        argv, env = grader_user.command(argv), grader_user.environment(env)
    # Its output goes to files: a full pipe would stop it while nobody reads.
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(argv, cwd=course, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err, text=True)
    proc.output_files = (out, err)
    return proc


def finish_nbgrader(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    """Close its stdin (if still open), wait for it and read its output."""
    proc.communicate()
    output = []
    for file in proc.output_files:
        file.seek(0)
        output.append(file.read())
        file.close()
    return subprocess.CompletedProcess(proc.args, proc.returncode, *output)


def snapshot(course: Path) -> dict[str, str]:
    """Content and mode of everything grading must leave alone: the instructor's files, every
    submission, the private notes, the course root itself and the grading package."""
    tops = [course / name for name in ("source", "release", "solutions", "grader_tests", "submitted",
                                       "nbgrader_config.py", "course-manifest.json", PRIVATE_NOTES)]
    seen = {str(course): f"{stat.S_IMODE(os.lstat(course).st_mode):o}"}
    for top in [*tops, manifest.PACKAGE]:
        paths = [top] if not top.is_dir() else [Path(f, n) for f, ds, fs in os.walk(top) for n in ds + fs]
        for path in paths:
            if "__pycache__" in path.parts or not os.path.lexists(path):
                continue
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                what = os.readlink(path) if stat.S_ISLNK(info.st_mode) else "dir"
            seen[str(path)] = f"{stat.S_IFMT(info.st_mode):o} {stat.S_IMODE(info.st_mode):o} {what}"
    return seen


# The files that read the corpus grading (the session fixture ``graded_course``, ~10 minutes).
CORPUS_FILES = {"test_feedback_browser.py", "test_formgrader_browser.py", "test_grader_attacks.py", "test_grading.py"}


def pytest_xdist_make_scheduler(config, log):
    """`make test` runs the end-to-end files on two processes (pytest-xdist): each file stays on
    one process, so its module fixtures are built once, and the CORPUS_FILES share one, which
    grades the corpus once while the other process runs the other files."""
    from xdist.scheduler import LoadScopeScheduling

    class FilesCorpusTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return "corpus" if Path(file).name in CORPUS_FILES else file

    return FilesCorpusTogether(config, log)


def pytest_collection_modifyitems(config, items):
    strays = sorted({item.path.name for item in items if "graded_course" in item.fixturenames} - CORPUS_FILES)
    if strays:
        raise pytest.UsageError(f"{', '.join(strays)} read(s) the corpus grading: add to conftest.CORPUS_FILES, "
                                "or two processes grade the corpus")


@pytest.fixture(scope="session")
def courses_dir():
    """Where scratch courses live: a folder the grading account can pass through."""
    base = Path(tempfile.mkdtemp(prefix="icg-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@dataclass
class GradedCourse:
    root: Path
    assignment: str
    result: subprocess.CompletedProcess  # of `python -m interp_course grade`: what the instructor sees
    seconds: float
    before: dict = field(default_factory=dict)  # snapshot() taken before grading
    log: str = ""  # the run's log file (nbgrader's and the workers' own lines)

    @property
    def notebook(self) -> str:
        return corpus.notebook_name(Course(self.root), self.assignment)

    def scores(self, student: str) -> dict[str, float]:
        """Per-cell auto scores from the real SQLite gradebook."""
        from nbgrader.api import Gradebook

        with Gradebook(Course(self.root).db_url) as gb:
            notebook = gb.find_submission_notebook(self.notebook, self.assignment, student)
            return {g.name: g.auto_score for g in notebook.grades}

    def feedback(self, student: str) -> str:
        return (self.root / "feedback" / student / self.assignment / f"{self.notebook}.html").read_text()

    def grades_csv(self) -> list[dict]:
        with open(self.root / "grades.csv", newline="") as f:
            return list(csv.DictReader(f))


def make_course(dest: Path, content_root: Path = CHECKOUT, assignments=(PUZZLE1,)) -> Path:
    """A scratch course: the engine's config plus the assignments' content; nbgrader state empty."""
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o755)
    (dest / PRIVATE_NOTES).write_text("the instructor's private notes\n")
    (dest / PRIVATE_NOTES).chmod(0o600)
    config = (CHECKOUT / "nbgrader_config.py").read_text()
    # The corpus's runaway cells need only hit a timeout, not the course's generous one. The
    # attacks in the corpus are told where the course is, as if they had guessed it right.
    (dest / "nbgrader_config.py").write_text(
        config + "\nc.Execute.timeout = 30\n"
        f"c.SandboxedKernelManager.extra_env = {{'ATTACK_COURSE_ROOT': {str(dest)!r}}}\n")
    content = Course(content_root)
    for a in assignments:
        shutil.copytree(content.source(a), dest / "source" / a)
        shutil.copytree(content.solutions(a), dest / "solutions" / a)
        shutil.copytree(content.grader_tests(a), dest / "grader_tests" / a,
                        ignore=shutil.ignore_patterns("submissions", "__pycache__"))
    return dest


def submit(course: Path, assignment: str, names: list[str], corpus_dir: Path) -> None:
    notebook = corpus.notebook_name(Course(course), assignment)
    for name in names:
        target = course / "submitted" / name / assignment / f"{notebook}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus_dir / f"{name}.ipynb", target)


def release(course: Path, assignment: str = PUZZLE1) -> Path:
    """`make release` in a scratch course: generate_assignment as root, then the manifest."""
    cli.release(Course(course), [assignment])
    return course


def keep_runs_of(graded: GradedCourse, course: Path) -> Path:
    """Give ``course`` the kept runs (``gradebook/runs/``) of the session's corpus grading, as if it
    had run those notebooks itself: a run's key covers the notebook, the inputs, the models and the
    engine, so only the same notebook in the same set-up is judged from it. For tests of what
    happens around a run (exit statuses, rescues, pages, a TA's grading), not of running one:
    those (``test_scale_out``, ``test_sandbox_execute``, ...) keep running their own kernels."""
    store = Course(course).run_cache
    shutil.copytree(Course(graded.root).run_cache, store, dirs_exist_ok=True)
    grader_user.hand_over(store)
    return course


def grade_all(course: Path, assignment: str = PUZZLE1, only: list[str] = (), workers: int = 2,
              rerun: bool = False) -> GradedCourse:
    """`python -m interp_course grade` on the course (what `make grade` runs: the production batch,
    not a copy of it), with ``workers`` local workers; ``only``: just these students
    (``--student``); ``rerun``: run every notebook again rather than judge its kept run."""
    start = time.perf_counter()
    argv = [sys.executable, "-m", "interp_course", "--root", str(course), "grade", "--assignment", assignment,
            "--workers", str(workers), *(["--no-cache"] if rerun else []),
            *[arg for student in only for arg in ("--student", student)]]
    result = subprocess.run(argv, env={**nbgrader_env(), "TMPDIR": str(grader_tmp(course))}, capture_output=True,
                            text=True)
    seconds = time.perf_counter() - start
    logs = sorted((course / "logs").glob("grade-*.log"), key=lambda p: p.stat().st_mtime)
    return GradedCourse(course, assignment, result, seconds, log=logs[-1].read_text() if logs else "")


@pytest.fixture(scope="session")
def released_course(courses_dir) -> Path:
    return release(make_course(courses_dir / "course"))


@pytest.fixture(scope="session")
def graded_course(released_course) -> GradedCourse:
    """Every Puzzle 1 corpus submission, graded in one batch by `python -m interp_course grade`."""
    submissions = corpus.load(Course(), PUZZLE1).SUBMISSIONS
    submit(released_course, PUZZLE1, [s.name for s in submissions], Course().corpus(PUZZLE1))
    before = snapshot(released_course)
    graded = grade_all(released_course)
    graded.before = before
    n = len(submissions)
    print(f"\nautograded {n} submissions in {graded.seconds:.0f} s ({graded.seconds / n:.1f} s each)")
    return graded


# --- test code run as the grading account -------------------------------------------------------
# A process of the grading account that runs functions of the test modules on request, one JSON
# line each way: what they print goes to its log, not into the replies.
_GRADER_SERVER = r"""
import asyncio, importlib, json, os, sys, traceback
replies = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
from interp_course.sandbox import zygote


def describe(exc, depth=0):
    if exc is None or depth > 5:
        return None
    return {"module": type(exc).__module__, "qualname": type(exc).__qualname__, "message": str(exc),
            "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, chain=False)),
            "cause": describe(exc.__cause__, depth + 1)}


replies.write(json.dumps({"uid": os.getuid(), "runs": zygote.runs_root()}) + "\n")
for line in sys.stdin:
    request = json.loads(line)
    try:
        fn = importlib.import_module(request["module"])
        for name in request["name"].split("."):
            fn = getattr(fn, name)
        result = fn(*request["args"], **request["kwargs"])
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        reply = {"result": result}
    except Exception as exc:
        reply = {"error": describe(exc)}
    replies.write(json.dumps(reply) + "\n")
"""


def _rebuilt(info: dict) -> BaseException:
    """The grading account's exception, as the same class here where it can be imported."""
    try:
        cls = importlib.import_module(info["module"])
        for name in info["qualname"].split("."):
            cls = getattr(cls, name)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(cls)
        exc = cls.__new__(cls)
        BaseException.__init__(exc, info["message"])
    except Exception:  # noqa: BLE001
        exc = RuntimeError(f"{info['module']}.{info['qualname']}: {info['message']}")
    exc.__cause__ = _rebuilt(info["cause"]) if info.get("cause") else None
    exc.add_note("raised in the grading account's process:\n" + info["traceback"])
    return exc


class Grader:
    """One process of the grading account (as root; else of this user) that runs the tests' kernel
    code where grading runs it: unprivileged, its kernels forked from its zygote, each in a cgroup
    of its own under a parent delegated to it (as `make setup` delegates /interp-course).

    ``call(fn, *args, **kwargs)`` runs ``fn`` (a module-level function of a test module or of this
    file; arguments and result JSON) there and returns its result, or raises its exception.
    ``runs`` is its runs folder (kernels' working folders must lie there), ``tmp`` its TMPDIR,
    ``cgroup_parent`` the delegated parent (None where no cgroup can be made: not root, or no
    controllers).
    """

    def __init__(self) -> None:
        root = grader_user.is_root()
        if root:
            try:
                user = grader_user.account()
            except grader_user.AccountMissing:
                pytest.skip(f"kernels start only as the grading account {grader_user.ACCOUNT}: run `make setup`")
        self.tmp = Path(tempfile.mkdtemp(prefix="gr-"))
        self.cgroup_parent: str | None = None
        self.cgroup_dirs: list[str] = []
        if root:
            os.chown(self.tmp, user.pw_uid, user.pw_gid)
            name = f"/interp-course-test-{secrets.token_hex(3)}"
            try:
                self.cgroup_dirs = prepare_delegated_parent(user.pw_uid, parent=name)
                self.cgroup_parent = name
            except (CgroupUnavailable, OSError):
                pass
        argv = [sys.executable, "-c", _GRADER_SERVER]
        env = {**os.environ, "TMPDIR": str(self.tmp),
               "PYTHONPATH": os.pathsep.join([str(CHECKOUT), str(CHECKOUT / "tests")])}
        argv, env = grader_user.command(argv), grader_user.environment(env)
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(argv, cwd=self.tmp, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        hello = self._reply(60)
        self.uid, self.runs = hello["uid"], Path(hello["runs"])

    def log_tail(self, n: int = 4000) -> str:
        self.log.seek(0)
        return self.log.read()[-n:]

    def _reply(self, within: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], within)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"the grading account's process gave no answer within {within:.0f} s "
                               f"(exit {self.proc.returncode}); its log:\n{self.log_tail()}")
        return json.loads(line)

    def call(self, fn, *args, within: float = 600, **kwargs):
        """``fn(*args, **kwargs)`` in the grading account's process (a coroutine is run to its end)."""
        request = {"module": fn.__module__, "name": fn.__qualname__, "args": args, "kwargs": kwargs}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = self._reply(within)
        if "error" in reply:
            raise _rebuilt(reply["error"])
        return reply["result"]

    def hand_over(self, path: Path) -> Path:
        """Give ``path`` (made here, e.g. in ``runs``) to the grading account."""
        grader_user.hand_over(path)
        return path

    def cgroups(self) -> set[str]:
        """Names of the cgroups made in the delegated parent (kernels' and zygotes')."""
        return {name for d in self.cgroup_dirs if os.path.isdir(d) for name in os.listdir(d)
                if name.startswith("sbx-") and os.path.isdir(os.path.join(d, name))}

    def close(self) -> int:
        """End the process (its zygotes go with it, then its runs folder); its exit status."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def remove(self) -> None:
        for d in self.cgroup_dirs:
            for name in os.listdir(d) if os.path.isdir(d) else []:
                if name.startswith("sbx-"):
                    try:
                        os.rmdir(os.path.join(d, name))
                    except OSError:
                        pass
            try:
                os.rmdir(d)
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.log.close()


def zygote_cgroups() -> list[str]:
    """(As the grading account) the cgroups of this process's running zygotes."""
    from interp_course.sandbox.kernel_manager import _zygotes

    return sorted(z.cgroup.name for z in _zygotes.values() if z.cgroup is not None)


class _Graders:
    """The grading account's process of one test module (a new one if the last one ended)."""

    def __init__(self) -> None:
        self.current: Grader | None = None
        self.ended: list[Grader] = []

    def get(self) -> Grader:
        if self.current is not None and self.current.proc.poll() is not None:
            self.ended.append(self.current)
            self.current = None
        if self.current is None:
            self.current = Grader()
        return self.current


@pytest.fixture(scope="module")
def _graders():
    graders = _Graders()
    try:
        yield graders
        g = graders.current
        if g is not None:
            code = g.close()
            assert code == 0, f"the grading account's process exited with {code}:\n{g.log_tail()}"
            assert not g.cgroups(), f"cgroups left after the grader ended: {sorted(g.cgroups())}"
    finally:
        for g in [*graders.ended, *([graders.current] if graders.current else [])]:
            g.close()
            g.remove()


@pytest.fixture
def grader(_graders):
    """The grading account's process (see ``Grader``), one per test module, as one grader process
    grades a whole batch: its zygotes serve the module's tests. After each test no kernel's cgroup
    may be left (only its zygotes'), and once it has ended, nothing at all."""
    g = _graders.get()
    yield g
    assert g.proc.poll() is None, f"the grading account's process ended during the test:\n{g.log_tail()}"
    left = g.cgroups() - set(g.call(zygote_cgroups))
    assert not left, f"a kernel's cgroup outlived it: {sorted(left)}"
