"""One grading run of an assignment, told truthfully.

1. the gradebook's record of each assignment is rebuilt if missing (``gradebook.py``), for all of
   them before any is graded;
2. every submission is read and the gradable ones staged, rescued where possible (``staging.py``);
3. one ``nbgrader autograde`` batch grades the staged copies; a student counts as graded only if
   this run wrote their autograded notebook (nbgrader's exit status covers the whole batch);
4. the TA's manual grades (demo only), then feedback and grades.csv side by side, and
   grades_by_question.csv (``exports.py``); a "not graded" feedback page for a student whose file
   was at fault;
5. the table, then the closing lines (``report.py``).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from interp_course.grading import log as grading_log, run_cache
from interp_course.security import grader_user, guard, student_id
from interp_course.course import COURSE_ID, Course
from interp_course.exit_status import REFUSED, Refusal
from interp_course.lms.exports import GRADES_EXPORTER, assignment_scores, write_grades_by_question
from interp_course.grading.gradebook import ensure_gradebook
from interp_course.grading.nbgrader_process import Started
from interp_course.grading.report import closing_lines, feedback_page, nbgrader_failures
from interp_course.grading.staging import Problem, Submission, stage_all, submission_folders
from interp_course.security.inert import one_line
from interp_course.security.untrusted_files import UnsafeFile, open_folder, read_regular_file

# run_nbgrader(*args, check=False): the nbgrader CLI run in the course root (cli.nbgrader).
RunNbgrader = Callable[..., subprocess.CompletedProcess]
# start_nbgrader(*args): the same, started to wait for go() or cancel() (nbgrader_process.start_nbgrader).
StartNbgrader = Callable[..., Started]


def prepare_gradebook(course: Course, assignments: list[str], run_nbgrader: RunNbgrader) -> None:
    """Rebuild what the gradebook lacks for the assignments to grade, before grading any of them:
    a ``Refusal`` then leaves nothing half graded."""
    for assignment in assignments:
        if submission_folders(course.submitted, assignment):
            rebuilt = ensure_gradebook(course, assignment, lambda *args: run_nbgrader(*args, check=False).returncode)
            if rebuilt:
                print(rebuilt)


@dataclass(frozen=True)
class Batch:
    """Whom a batch grades and how it runs its sandboxed kernels (``make grade WORKERS= SCHEDULER=
    NO_CACHE= STUDENTS=``)."""

    students: tuple[str, ...] = ()  # only these students' submissions; empty: everyone's
    workers: int = os.cpu_count() or 1
    scheduler: str = ""  # tcp://HOST:PORT of a Dask scheduler; empty: this machine
    reuse_runs: bool = True  # False: run every notebook again (and keep the new runs)
    rerun_faulted: bool = False  # True: run again the notebooks whose kept run's kernel faulted

    def where(self) -> str:
        return f"the Dask scheduler at {self.scheduler}" if self.scheduler else f"{self.workers} local worker(s)"


def grade_assignment(course: Course, assignment: str, start_nbgrader: StartNbgrader, manual: dict | None = None,
                     batch: Batch = Batch(), autograde: Started | None = None) -> bool:
    """Grade one assignment's submissions; whether every one of them was graded.

    Each nbgrader command is started while the step before it runs, and told to go when its turn
    comes: its imports (~1-3 s) are then paid beside other work. ``autograde``: an
    ``nbgrader autograde`` started earlier without arguments (``cli.grade`` starts one before its
    checks), used for the first pass; it is told this batch's arguments with ``go``.
    """
    def run_nbgrader(*args, check=True):
        return start_nbgrader(*args).go(check)

    found = submission_folders(course.submitted, assignment, batch.students)
    missing = sorted(set(batch.students) - {student for student, _ in found})
    if missing:
        print(one_line(f"No submission of {', '.join(map(student_id.shown, missing))} for {assignment} in submitted/"))
    if not found:
        print(f"Nothing in submitted/ for {assignment}: put notebooks at "
              f"submitted/<student>/{assignment}/<notebook>.ipynb")
        return True
    notebooks = course.notebooks(assignment)
    started, start = time.time(), time.perf_counter()
    written_since = {}  # student -> the time their autograded notebook must be newer than
    log, planned, kept_faults = "", [], {}
    # Stage into fresh folders of the course root that only this run uses, and point nbgrader at
    # them; submitted/ is only ever read. (Inside the root, so nbgrader's own path matching sees a
    # plain relative name, whatever $TMPDIR is.)
    with tempfile.TemporaryDirectory(prefix=".staged-", dir=course.root) as staging, \
            tempfile.TemporaryDirectory(prefix=".staged-", dir=course.root) as second, \
            tempfile.TemporaryDirectory(prefix=".plans-", dir=course.root) as plans:
        submissions = stage_all(course.submitted, assignment, notebooks, Path(staging), batch.students)
        for folder in (staging, second, plans):
            grader_user.hand_over(Path(folder))  # nbgrader reads and writes them as the grading account
        gradable = [s for s in submissions if s.problem is None]
        feedback = start_nbgrader("generate_feedback", assignment, "--force", "--log-level=WARN") if gradable else None
        judging = workers = None
        try:
            if gradable:
                # 1. One nbgrader run for the whole batch (a failing student never stops the others):
                #    students whose run is kept are judged now; the others' runs are written as plans.
                #    2. The workers run the plans as they are written, side by side, and keep the runs.
                reuse = [] if batch.reuse_runs else ["--GradeInSandbox.reuse_runs=False"]
                reuse += ["--GradeInSandbox.rerun_faulted=True"] if batch.rerun_faulted else []
                planning = autograde if autograde is not None else start_nbgrader("autograde")
                workers = _Workers(Path(plans), course, batch)
                log = _autograde(planning, _autograde_args(assignment, staging,
                                                           f"--GradeInSandbox.plan_folder={plans}", *reuse)[1:])
                workers.planning_done()
                planned = sorted(p.name for p in (Path(plans) / run_cache.PLANNED).glob("*"))
                kept_faults = _kept_faults(Path(plans))
                if planned and workers.refusal():
                    # The batch's first kernel could not start: nobody is judged, nothing exported.
                    raise Refusal(f"{workers.refusal()}; nothing was exported and no feedback written. Fix the "
                                  "cause and run `make grade` again")
                if planned:
                    # 3. nbgrader judges those students from their kept runs, each as soon as the
                    #    workers have finished it. A run no worker kept is executed by nbgrader itself.
                    for student in planned:
                        os.rename(Path(staging) / student, Path(second) / student)
                    written_since.update(dict.fromkeys(planned, time.time()))
                    judging = start_nbgrader(*_autograde_args(assignment, second, f"--GradeInSandbox.runs_from={plans}"))
                    log += _autograde(judging, stdin_until=workers.wait)
                workers.finish()
        except BaseException:
            if workers is not None:
                workers.stop()
            for waiting in (feedback, judging):
                if waiting is not None:
                    waiting.cancel()
            raise
        failures = {path.parent.name: why for path, why in nbgrader_failures(log).items()
                    if path.parent.parent in (Path(staging), Path(second))}
    elapsed = time.perf_counter() - start
    for s in gradable:
        since = written_since.get(s.student, started)
        if not all(_written_since(course.autograded / s.student / assignment / f"{n}.ipynb", since) for n in s.files):
            s.problem = Problem(f"nbgrader could not grade it ({failures.get(s.student, f'see its errors in {_log_name(course)}')})",
                                f"read nbgrader's traceback in {_log_name(course)} (after \"There was an error "
                                f"processing assignment\" for {s.student}), fix the cause and run again")
    graded = [s for s in submissions if s.problem is None]
    no_feedback = set()
    if feedback is not None and not graded:
        feedback.cancel()
    if graded and manual:
        apply_manual_grades(course, assignment, {k: v for k, v in manual.items() if k in {s.student for s in graded}})
    # Feedback and export only read the gradebook: they run side by side.
    with ThreadPoolExecutor(max_workers=1) as background:
        exported = background.submit(run_nbgrader, "export", "--to", str(course.grades_csv),
                                     f"--exporter={GRADES_EXPORTER}", "--log-level=WARN")
        if graded:
            made = feedback.go(check=False)
            if made.returncode == REFUSED:
                raise _guard_refused("generate feedback", made.stdout)
            no_feedback = {s.student for s in graded if not all(
                _written_since(course.feedback / s.student / assignment / f"{n}.html", started) for n in s.files)}
        exported.result()
    for s in submissions:  # after generate_feedback, which may rewrite an earlier run's page
        if s.problem is not None and s.problem.for_student:
            _write_not_graded_feedback(course, assignment, s, notebooks)
    print(f"Per-question scores: {write_grades_by_question(course).name}")
    print_table(assignment, read_grades(course, assignment, [s.student for s in graded]))
    # nbgrader exports a row for everyone in the gradebook: an earlier submission's grade, or 0
    # for one it failed on. Say so, rather than let that row pass for a grade of this submission.
    stale = {r["student_id"]: float(r["score"]) for r in
             read_grades(course, assignment, [s.student for s in submissions if s.problem is not None])}
    if gradable:
        print(f"Kernels: {len(planned)} submission(s) run in the sandbox on {batch.where()}, "
              f"{len(gradable) - len(planned)} judged from kept runs (gradebook/runs/).")
    if kept_faults:
        print(f"Of those, {len(kept_faults)} faulted when they ran and were not run again "
              "(`make grade RERUN_FAULTED=1` runs them again):")
        for student, faults in sorted(kept_faults.items()):
            print(one_line(f"  {student}: {faults}"))
    for line in closing_lines(assignment, submissions, elapsed, stale, no_feedback):
        print(line)
    return len(graded) == len(submissions) and not no_feedback


def _kept_faults(plans: Path) -> dict[str, str]:
    """Students the planning pass judged from a kept run whose kernel faulted, and the faults
    (``GradeInSandbox._kept_fault``: written by the grading account; read as untrusted anyway)."""
    folder = plans / run_cache.KEPT_FAULTED
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return {}
    found = {}
    try:
        for name in sorted(os.listdir(fd)):
            try:
                found[name] = read_regular_file(fd, name, limit=4096).decode(errors="replace")
            except (UnsafeFile, OSError):
                found[name] = "(a kernel fault)"
    finally:
        os.close(fd)
    return found


def _log_name(course: Course) -> str:
    log = grading_log.current()
    return str(log.path.relative_to(course.root)) if log else "the output above"


def _autograde_args(assignment: str, staging: str, *options: str) -> tuple[str, ...]:
    """``nbgrader autograde`` over one staged folder."""
    return ("autograde", assignment, "--create", "--force", "--log-level=WARN",
            f"--CourseDirectory.submitted_directory={Path(staging).name}", *options)


def _autograde(started: Started, more: tuple[str, ...] = (), stdin_until=None) -> str:
    """Run a started ``nbgrader autograde`` (with the arguments ``more`` added); its log."""
    result = started.go(check=False, more=more, stdin_until=stdin_until)
    if result.returncode == REFUSED:
        raise _guard_refused("autograde", result.stdout)
    return result.stdout


def _guard_refused(step: str, output: str) -> Refusal:
    """nbgrader's own guard refused (``guard.refuse``): its reason, from nbgrader's output."""
    reasons = [line.partition(guard.REFUSING)[2].strip() for line in output.splitlines() if guard.REFUSING in line]
    return Refusal(f"nbgrader's own guard refused to {step}: {reasons[-1] if reasons else 'see the log'}")


class _Workers:
    """``python -m interp_course.grading.workers --follow`` as the grading account, started beside the
    planning ``nbgrader autograde``: it runs each plan as soon as it is written (no pool starts
    if none is), and its lines are shown as they come."""

    def __init__(self, plans: Path, course: Course, batch: Batch):
        argv = [sys.executable, "-m", "interp_course.grading.workers", str(plans), str(course.run_cache), "--follow",
                "--workers", str(batch.workers), *(["--scheduler", batch.scheduler] if batch.scheduler else [])]
        env = {**os.environ}
        if grader_user.is_root():
            argv, env = grader_user.command(argv), grader_user.environment(env)
        self.proc = subprocess.Popen(argv, cwd=course.root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace")
        self._checked, self._refusal = threading.Event(), ""
        self._lines = threading.Thread(target=self._show, args=(grading_log.current(),), daemon=True)
        self._lines.start()

    def _show(self, log) -> None:
        try:
            for line in self.proc.stdout:
                check = line.removeprefix(grading_log.WORKER_MARK)
                if check.startswith(grading_log.CHECKED):
                    self._refusal = check[len(grading_log.REFUSED):].strip() if check.startswith(grading_log.REFUSED) else ""
                    self._checked.set()
                if not line.startswith(grading_log.WORKER_MARK):  # the workers' warnings go to the log file only
                    print(one_line(line.rstrip("\n")), flush=True)
                if log:
                    log.write(line)
        finally:
            self._checked.set()

    def refusal(self) -> str:
        """Once the workers have started the batch's first kernel (or exited): why no kernel could
        start there (``workers.check_kernel``), or empty."""
        self._checked.wait()
        return self._refusal

    def planning_done(self) -> None:
        """No more plans: the workers finish the ones they have, then exit."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def wait(self) -> int:
        return self.proc.wait()

    def finish(self) -> None:
        self.planning_done()
        status = self.proc.wait()
        self._lines.join()
        if status != 0:
            print(f"The workers stopped with exit status {status}; nbgrader runs what they did not.")

    def stop(self) -> None:
        """On an error: end the workers (a kernel dies with its worker: bwrap --die-with-parent)."""
        self.planning_done()
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait()
        self._lines.join()


def _written_since(path: Path, since: float) -> bool:
    """Whether this run wrote ``path``: nbgrader removes a failed student's output, and --force
    replaces an earlier run's, so an output as old as the run is this run's. A link there (the
    kernel works in that folder) is not an output: lstat, never follow."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_mtime >= since - 1


def _write_not_graded_feedback(course: Course, assignment: str, submission: Submission, notebooks: list[str]) -> None:
    """Tell the student, in the feedback file nbgrader would have written, what was wrong with the file.

    Run as root in folders the grading account owns: every component from feedback/ down is opened
    without following a link, so a link planted anywhere on the way is never written through."""
    page = feedback_page(assignment, submission.problem.for_student).encode()
    try:
        folder = open_folder(course.feedback, [submission.student, assignment], create=True)
    except OSError:
        return  # a link or a file on the way: not ours to write through; nbgrader never makes links here
    try:
        for name in notebooks:
            try:
                fd = os.open(f"{name}.html", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o644, dir_fd=folder)
            except OSError:
                continue
            with os.fdopen(fd, "wb") as f:
                f.write(page)
    finally:
        os.close(folder)


def read_grades(course: Course, assignment: str, students: list[str]) -> list[dict]:
    """grades.csv's row ({student_id, score, max_score}) of each of ``students`` the gradebook has,
    sorted by id: read from the gradebook itself (read-only), so the table shows every student as
    the gradebook holds them, whatever grades.csv's cells had to be quoted or neutralised into."""
    if not students:
        return []
    try:
        scores, max_score = assignment_scores(course, assignment)
    except Refusal:  # no gradebook, or no such assignment in it: nothing to show
        return []
    return [{"student_id": s, "score": scores[s] or 0.0, "max_score": max_score}
            for s in sorted(set(students)) if s in scores]


def print_table(assignment: str, rows: list[dict]) -> None:
    print(f"\n{assignment:<24}{'score':>8}{'max score':>11}")
    for row in rows:
        print(f"{one_line(student_id.shown(row['student_id'])):<24}{float(row['score']):>8g}"
              f"{float(row['max_score']):>11g}")
    print()


def apply_manual_grades(course: Course, assignment: str, grades: dict[str, dict[str, float]]) -> None:
    """Enter a TA's manual scores (what formgrader would do) into the gradebook, as the grading account."""
    if grader_user.is_root():
        code = ("import json, sys; from interp_course.grading.batch import apply_manual_grades; from interp_course.course "
                "import Course; apply_manual_grades(Course(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]))")
        argv = grader_user.command([sys.executable, "-c", code, str(course.root), assignment, json.dumps(grades)])
        subprocess.run(argv, cwd=course.root, env=grader_user.environment(), check=True)
        return
    from nbgrader.api import Gradebook

    from interp_course.corpus import notebook_name

    print("Entering the TA's manual grades (what formgrader would do)")
    notebook = notebook_name(course, assignment)
    with Gradebook(course.db_url, course_id=COURSE_ID) as gb:
        for student, cells in grades.items():
            for grade_id, score in cells.items():
                gb.find_grade(grade_id, notebook, assignment, student).manual_score = score
        gb.db.commit()
