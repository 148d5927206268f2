"""One grading run of an assignment, told truthfully.

1. the gradebook's record of each assignment is rebuilt if missing (``gradebook.py``), for all of
   them before any is graded;
2. every submission is read and the gradable ones staged, rescued where possible (``staging.py``);
3. one autograde batch (``autograde.py``: nbgrader's autograde, with the kernels run side by
   side) grades the staged copies; a student counts as graded only if this run wrote their
   autograded notebook and, if their notebook ran in this batch, judged it from that run
   (nbgrader's exit status covers the whole batch);
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
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from interp_course.grading import log as grading_log
from interp_course.security import grader_user, guard, student_id
from interp_course.course import COURSE_ID, Course
from interp_course.exit_status import REFUSED, Refusal
from interp_course.lms.exports import GRADES_EXPORTER, assignment_scores, write_grades_by_question
from interp_course.grading.gradebook import ensure_gradebook
from interp_course.grading.nbgrader_process import Started
from interp_course.grading.report import BatchReport, closing_lines, feedback_page, nbgrader_failures
from interp_course.grading.staging import Problem, Submission, stage_all, submission_folders
from interp_course.security.inert import one_line
from interp_course.security.untrusted_files import open_folder

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
    time_limit: float = 0  # seconds after which the batch starts no sandboxed run; 0: none

    def options(self) -> tuple[str, ...]:
        """The batch's options for its autograde (``grading.autograde.AutogradeBatch``)."""
        return (f"--workers={self.workers}", *([f"--scheduler={self.scheduler}"] if self.scheduler else []),
                *([] if self.reuse_runs else ["--GradeInSandbox.reuse_runs=False"]),
                *(["--GradeInSandbox.rerun_faulted=True"] if self.rerun_faulted else []),
                *([f"--time-limit={self.time_limit:g}"] if self.time_limit else []))

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
    log, report = "", BatchReport()
    # Stage into a fresh folder of the course root that only this run uses, and point nbgrader at
    # it; submitted/ is only ever read. (Inside the root, so nbgrader's own path matching sees a
    # plain relative name, whatever $TMPDIR is.)
    with tempfile.TemporaryDirectory(prefix=".staged-", dir=course.root) as staging:
        submissions = stage_all(course.submitted, assignment, notebooks, Path(staging), batch.students)
        grader_user.hand_over(Path(staging))  # nbgrader reads and writes it as the grading account
        gradable = [s for s in submissions if s.problem is None]
        feedback = start_nbgrader("generate_feedback", assignment, "--force", "--log-level=WARN") if gradable else None
        try:
            if gradable:
                # One batch (grading.autograde): judges every student whose run is kept, runs the
                # others' notebooks side by side and judges each as soon as its run is kept.
                autograde = autograde if autograde is not None else start_nbgrader("autograde")
                result = autograde.go(check=False, more=(assignment, "--create", "--force", "--log-level=WARN",
                                                         f"--CourseDirectory.submitted_directory={Path(staging).name}",
                                                         *batch.options()))
                log, report = result.stdout, BatchReport.read(autograde.report())
                if report.refusal:  # the batch's first kernel could not start: nobody was judged
                    raise Refusal(f"{report.refusal}; nothing was exported and no feedback written. Fix the "
                                  "cause and run `make grade` again")
                if result.returncode == REFUSED:
                    raise _guard_refused("autograde", result.stdout)
        except BaseException:
            if feedback is not None:
                feedback.cancel()
            raise
        failures = {path.parent.name: why for path, why in nbgrader_failures(log).items()
                    if path.parent.parent == Path(staging)}
    elapsed = time.perf_counter() - start
    for s in gradable:
        if s.student in report.out_of_time:
            s.problem = Problem(f"not run: the batch's time limit ({_minutes(batch.time_limit)}) ran out before its "
                                "notebook ran", "run `make grade` again (runs kept so far are not run again), with a "
                                "larger TIME_LIMIT or more WORKERS")
            continue
        # A planned student's autograded notebook is written twice: it counts once they were judged.
        judged = s.student not in report.planned or s.student in report.judged
        if not (judged and all(_written_since(course.autograded / s.student / assignment / f"{n}.ipynb", started)
                               for n in s.files)):
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
        print(f"Kernels: {len(report.planned)} submission(s) run in the sandbox on {batch.where()}, "
              f"{len(gradable) - len(report.planned)} judged from kept runs (gradebook/runs/).")
    if report.kept_faults:
        print(f"Of those, {len(report.kept_faults)} faulted when they ran and were not run again "
              "(`make grade RERUN_FAULTED=1` runs them again):")
        for student, faults in sorted(report.kept_faults.items()):
            print(one_line(f"  {student}: {faults}"))
    for line in closing_lines(assignment, submissions, elapsed, stale, no_feedback):
        print(line)
    return len(graded) == len(submissions) and not no_feedback


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def _log_name(course: Course) -> str:
    log = grading_log.current()
    return str(log.path.relative_to(course.root)) if log else "the output above"


def _guard_refused(step: str, output: str) -> Refusal:
    """nbgrader's own guard refused (``guard.refuse``): its reason, from nbgrader's output."""
    reasons = [line.partition(guard.REFUSING)[2].strip() for line in output.splitlines() if guard.REFUSING in line]
    return Refusal(f"nbgrader's own guard refused to {step}: {reasons[-1] if reasons else 'see the log'}")


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
                grade = gb.find_grade(grade_id, notebook, assignment, student)
                grade.manual_score = score
                grade.needs_manual_grade = False  # as formgrader's own "save" does, once a score is entered
        gb.db.commit()
