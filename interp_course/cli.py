"""Release, collect, grade and export an nbgrader course graded in a sandbox.

``python -m interp_course {setup,release,collect,grade,refresh,canvas,formgrader,demo,corpus}``; ``--help``
on each says what it does.

Each step runs the real nbgrader command line from the course root, so what the demo shows is
what an instructor gets by typing ``nbgrader generate_assignment|autograde|generate_feedback|
export`` themselves (nbgrader_config.py wires in the sandboxed grader). Run as root, every step
that touches submissions runs as the unprivileged grading account (``interp_course.security.grader_user``),
and ``grade`` first checks that the safe pipeline is in force (``interp_course.security.guard``): when it
is not, it refuses with exit status 2.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from interp_course import models
from interp_course.grading import log as grading_log
from interp_course.lms import canvas_collect, canvas_grades
from interp_course.security import grader_user, guard, manifest
from interp_course.grading.batch import Batch, grade_assignment, prepare_gradebook
from interp_course.course import CHECKOUT, Course
from interp_course.exit_status import GRADED, REFUSED, SOME_UNGRADED, Refusal
from interp_course.lms.exports import GRADES_EXPORTER, write_grades_by_question
from interp_course.security.inert import one_line
from interp_course.security.untrusted_files import open_folder
from interp_course.grading.nbgrader_process import nbgrader, nbgrader_env, start_nbgrader


def setup(model_source: str) -> None:
    if model_source == "auto":
        model_source = "hub" if models.hub_reachable() else "stand-ins"
    settings = models.write_settings(model_source)
    if model_source == "stand-ins":
        build_standins(Course(CHECKOUT), Path(settings["hf_home"]))
    print(f"Model source: {models.describe_source(settings)} (saved in {models.SETTINGS_FILE.name})")
    setup_grading(settings)


def build_standins(course: Course, hf_home: Path) -> None:
    """Each assignment's offline stand-ins for the models it declares: ``grader_tests/<a>/standins.py``'s
    ``build_standins(hf_home)``, where an assignment has one (its models and their geometry are content)."""
    course.make_importable()
    for assignment in course.assignments():
        if (course.grader_tests(assignment) / "standins.py").is_file():
            importlib.import_module(f"grader_tests.{assignment}.standins").build_standins(hf_home)


def setup_grading(settings: dict) -> None:
    """As root: the unprivileged grading account, and what it must reach. Always: nbgrader's guard."""
    if grader_user.is_root():
        user = grader_user.ensure_account()
        hf_home, _ = models.cache_folders([], settings)
        for folder in grader_user.grant_traversal([*grader_user.python_paths(), CHECKOUT, hf_home]):
            print(f"Let {user.pw_name} pass through {folder} (ACL u:{user.pw_name}:x)")
        smoke = subprocess.run(grader_user.command([sys.executable, "-c", "import interp_course, nbgrader, torch"]),
                               env=grader_user.environment(nbgrader_env()), cwd="/", capture_output=True, text=True)
        if smoke.returncode != 0:
            raise Refusal(f"{user.pw_name} cannot run this venv's Python: {smoke.stderr.strip()[-300:]}")
        print(f"Grading runs as the unprivileged account {user.pw_name}")
        print(sandbox_cgroups(user.pw_name))
        cache_embeddings(settings)
    print(f"Installed the nbgrader guard at {guard.install_env_guard()}")


def sandbox_cgroups(user: str) -> str:
    """As root: the parent cgroup the grading account makes each sandbox's cgroup in (see
    nbgrader_config.py's ``cgroup_parent``), capped as a whole so parallel workers leave the
    grader and the machine memory of their own; one line on what was done."""
    from interp_course.sandbox import cgroups

    try:
        folders = cgroups.prepare_delegated_parent(user, parent=cgroups.DELEGATED_PARENT)
        total = cgroups.cap_parent_memory(folders)
    except (cgroups.CgroupUnavailable, OSError) as exc:
        return (f"No cgroup for the sandboxes ({one_line(exc)}): each kernel gets per-process limits only "
                "(see the README's security model)")
    return (f"Sandbox cgroups under {cgroups.DELEGATED_PARENT} (given to {user}): memory and processes capped per "
            f"sandbox, and {total / 2**30:.1f} GiB for all sandboxes together")


def cache_embeddings(settings: dict, env: dict[str, str] | None = None) -> None:
    """As root: W_E of every model the course's assignments declare, cached read-only for all.

    In a child process with the chosen model source's environment (HF_HOME, offline), which
    huggingface_hub reads once, at import; ``env``: more of it (e.g. $INTERP_COURSE_HF_HOME)."""
    from interp_course.judging.assignment import load_assignment

    course = Course(CHECKOUT)
    for model_id in sorted({m for a in course.assignments() for m in load_assignment(course, a).models}):
        done = subprocess.run([sys.executable, "-c", "import sys; from interp_course.models import load_W_E; "
                               "load_W_E(sys.argv[1])", model_id],
                              env={**os.environ, **(env or {}), **models.model_env(settings),
                                   "HF_HUB_DISABLE_PROGRESS_BARS": "1"},
                              cwd="/", capture_output=True, text=True)
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["?"])[-1]
            print(one_line(f"W_E of {model_id} not cached ({why[:200]}); grading boots the model each run"))


def release(course: Course, assignments: list[str]) -> None:
    """Regenerate release/<a>/ from source/<a>/ (the only way release/ should change), then record
    the instructor's files in the manifest that grading checks them against."""
    grader_user.prepare_state(course)  # the gradebook's folder, which generate_assignment writes
    for assignment in assignments:
        # The instructor's own step: it writes release/, which the grading account must not.
        nbgrader(course, "generate_assignment", assignment, "--force", "--log-level=WARN", as_grader=False)
    grader_user.prepare_state(course)  # hand the gradebook root just wrote back to the grading account
    print(f"Recorded the course files in {manifest.write(course).name}")


def corpus(course: Course, assignments: list[str]) -> None:
    from interp_course import corpus as corpus_builder

    for assignment in assignments:
        for path in corpus_builder.write_all(course, assignment):
            print(path.relative_to(course.root))


def grade(course: Course, assignments: list[str], manual_grades: dict | None = None, batch: Batch = Batch()) -> int:
    """Autograde everything in submitted/, write feedback/ and grades.csv, print a table; the exit status."""
    # The first `nbgrader autograde` imports its libraries while the checks below run; it reads
    # nothing of the course before it is told to go (nbgrader_cli --when-told), and a refusal
    # ends it having done nothing.
    first_autograde = start_nbgrader(course, "autograde")
    try:
        # Checks that find the course unsafe or broken raise Refusal here, before anything is written
        # (exit status 2); prepare_gradebook refuses a gradebook that is not a database.
        guard.check_grading(course)
        grader_user.prepare_state(course)
        print(f"Grading with {models.describe_source()}")
        status = GRADED
        run = functools.partial(nbgrader, course)
        with grading_log.logging_to(course.root / "logs") as log:
            print(f"The full log of this run: {log.path.relative_to(course.root)}")
            prepare_gradebook(course, assignments, run)
            for assignment in assignments:
                if not grade_assignment(course, assignment, functools.partial(start_nbgrader, course),
                                        (manual_grades or {}).get(assignment), batch,
                                        first_autograde if first_autograde.waiting else None):
                    status = SOME_UNGRADED
            for notice in log.notices:
                print(f"Warning: {notice} (see {log.path.relative_to(course.root)})")
    finally:
        first_autograde.cancel()
    if status == SOME_UNGRADED:
        print(f"Exit status {SOME_UNGRADED}: the submissions listed under NOT GRADED were not graded; "
              "every other one was, and is in grades.csv and feedback/.")
    return status


def refresh(course: Course, assignments: list[str]) -> int:
    """After grading by hand: each assignment's feedback, grades.csv and grades_by_question.csv
    again from the gradebook as it is now, together, so the three never disagree. The steps of
    ``grade`` after autograding (as the grading account, nbgrader's lines in the log); a student
    whose page says their submission was not graded keeps it (nbgrader would write it again from
    an earlier run's notebook)."""
    guard.check_grading(course)
    grader_user.prepare_state(course)
    with grading_log.logging_to(course.root / "logs") as log:
        print(f"The full log of this run: {log.path.relative_to(course.root)}")
        for assignment in assignments:
            kept = _not_graded_pages(course, assignment)
            only = [f"--CourseDirectory.student_id_exclude={','.join(kept)}"] if kept else []
            made = nbgrader(course, "generate_feedback", assignment, "--force", "--log-level=WARN", *only, check=False)
            if made.returncode != 0:
                raise Refusal(f"nbgrader generate_feedback {assignment} failed (exit status {made.returncode}): see "
                              f"{log.path.relative_to(course.root)}; grades.csv and grades_by_question.csv are unchanged")
            print(f"Feedback for {assignment}: {course.feedback.relative_to(course.root)}/"
                  + (f" ({len(kept)} not-graded page(s) kept)" if kept else ""))
        nbgrader(course, "export", "--to", str(course.grades_csv), f"--exporter={GRADES_EXPORTER}", "--log-level=WARN")
        print(f"Grades: {course.grades_csv.name}; per-question scores: {write_grades_by_question(course).name}")
    return GRADED


def _not_graded_pages(course: Course, assignment: str) -> list[str]:
    """Students whose feedback page for ``assignment`` is ``grade``'s "not graded" page."""
    from interp_course.grading.report import feedback_page

    mark = feedback_page(assignment, "").split("</title>")[0].encode()
    found = []
    # Run as root in folders the grading account owns: never through a link, only regular files,
    # and only the first bytes (a planted /proc file or fifo must not block or feed this).
    for student in sorted(os.listdir(course.feedback)) if course.feedback.is_dir() else []:
        try:
            folder = open_folder(course.feedback, [student, assignment])
        except OSError:
            continue
        try:
            for name in os.listdir(folder):
                if name.endswith(".html") and _starts_with(folder, name, mark):
                    found.append(student)
                    break
        finally:
            os.close(folder)
    return found


def _starts_with(folder: int, name: str, mark: bytes) -> bool:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.read(fd, len(mark)) == mark
    finally:
        os.close(fd)


def demo(course: Course, assignments: list[str], batch: Batch = Batch()) -> int:
    """Release, submit each assignment's demo students, autograde, play the TA, feedback, export."""
    from interp_course import corpus as corpus_builder

    release(course, assignments)
    if course.submitted.exists():
        shutil.rmtree(course.submitted)
    manual = {}
    for assignment in assignments:
        examples = [s for s in corpus_builder.load(course, assignment).SUBMISSIONS if s.group == "demo"]
        notebook = corpus_builder.notebook_name(course, assignment)
        for example in examples:
            target = course.submitted / example.name / assignment / f"{notebook}.ipynb"
            target.parent.mkdir(parents=True)
            shutil.copy(course.corpus(assignment) / f"{example.name}.ipynb", target)
        print(f"Submitted {len(examples)} example notebooks from {course.corpus(assignment).relative_to(course.root)}/")
        # The demo plays the TA for the hand-graded cells, with the scores in the corpus.
        manual[assignment] = {s.name: s.manual for s in examples if s.manual}
    return grade(course, assignments, manual_grades=manual, batch=batch)


class _OneLineCommands(argparse.HelpFormatter):
    """Room for the longest command name (formgrader) beside its line in the top-level list."""

    def __init__(self, prog: str):
        super().__init__(prog)
        self._action_max_length = 14


def duration(text: str) -> float:
    """Seconds, from ``90``, ``90s``, ``45m`` or ``2h`` (``--time-limit``)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (say e.g. 600, 45m or 2h)")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def main(argv: list[str] | None = None) -> int:
    """Run a command; its exit status (see exit_status.py)."""
    parser = argparse.ArgumentParser(prog="python -m interp_course", description=__doc__.splitlines()[0],
                                     formatter_class=_OneLineCommands)
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("INTERP_COURSE_ROOT", CHECKOUT)),
                        help="course root (default: this checkout, or $INTERP_COURSE_ROOT)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        # One line, both the subcommand's --help and its entry in the top-level list.
        return sub.add_parser(name, help=text, description=text)

    def assignment_option(p: argparse.ArgumentParser, default: str, text: str = "an assignment (repeatable)") -> None:
        p.add_argument("--assignment", action="append", dest="assignments", metavar="NAME",
                       help=f"{text}; default: {default}")

    def batch_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="sandboxed kernels run at once on this machine (default: the cores, %(default)s)")
        p.add_argument("--scheduler", default="", metavar="tcp://HOST:PORT",
                       help="run the kernels on this Dask scheduler's workers instead")
        p.add_argument("--no-cache", action="store_true",
                       help="run every notebook again, even if its run is kept in gradebook/runs/")
        p.add_argument("--rerun-faulted", action="store_true",
                       help="run again the notebooks whose kept run's kernel faulted (died, or ran out of time)")
        p.add_argument("--student", action="append", dest="students", default=[], metavar="ID",
                       help="grade only this student's submission (repeatable; default: everyone in submitted/)")
        p.add_argument("--time-limit", type=duration, default=0, metavar="DURATION",
                       help="start no sandboxed run after this long, e.g. 45m or 2h (runs under way finish; the "
                       "notebooks not run are listed NOT GRADED, and the next grade runs only them)")

    def roster_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--roster", type=Path, required=True, help="the CSV of Canvas's Grades > Export")
        p.add_argument("--roster-column", default=canvas_collect.ROSTER_STUDENT_COLUMN,
                       help="the roster column holding nbgrader student ids (default: %(default)s)")

    p = command("setup", "Choose the model source and set up the grading account.")
    p.add_argument("--model-source", choices=["auto", "stand-ins", "hub"], required=True)
    p = command("release", "Make release/<a> from source/<a> and record the course files.")
    assignment_option(p, "every assignment with a source notebook")
    p = command("collect", "Put a Canvas bulk download of submissions into submitted/.")
    assignment_option(p, "the one released assignment", "the assignment the download is for")
    p.add_argument("--zip", type=Path, required=True, help="the zip of Canvas's \"Download Submissions\"")
    roster_options(p)
    p = command("grade", "Autograde submitted/; write feedback/ and the grade CSVs.")
    assignment_option(p, "every released assignment")
    batch_options(p)
    p = command("refresh", "After grading by hand: feedback/ and the grade CSVs again.")
    assignment_option(p, "every released assignment")
    p = command("canvas", "Write a CSV of scores for Canvas's gradebook import.")
    assignment_option(p, "the one released assignment", "the assignment to export")
    roster_options(p)
    p.add_argument("--column", help="the roster's column to fill, e.g. \"Homework 1 (12345)\" (default: the one "
                   "whose name starts with the assignment's)")
    p.add_argument("--out", type=Path, help="where to write it (default: canvas_grades.csv in the course root)")
    p = command("formgrader", "Grade by hand: formgrader on 127.0.0.1 as the grading account.")
    p.add_argument("--port", type=int, default=8899, help="the loopback port (default: %(default)s)")
    p.add_argument("--roster", type=Path, help="a Canvas roster (Grades > Export): names the gradebook's students")
    p = command("demo", "Release and grade the bundled example students.")
    assignment_option(p, "every assignment with a source notebook")
    batch_options(p)
    p = command("corpus", "Write grader_tests/<a>/submissions/ from its corpus.py.")
    assignment_option(p, "every released assignment")
    args = parser.parse_args(argv)
    try:
        if args.command == "setup":
            setup(args.model_source)
            return 0
        course = Course(args.root)
        if args.command == "formgrader":
            from interp_course import formgrader

            return formgrader.serve(course, args.port, args.roster)
        default = course.assignments() if args.command in ("release", "demo") else course.released_assignments()
        assignments = args.assignments or default
        for assignment in assignments:
            if assignment not in course.assignments():
                raise Refusal(f"{assignment} is not an assignment of the course at {course.root} (no "
                              f"source/{assignment}/*.ipynb; it has: {', '.join(course.assignments()) or 'none'})")
        if args.command in ("collect", "canvas") and len(assignments) != 1:
            which = "the download is for" if args.command == "collect" else "to export"
            raise Refusal(f"say which assignment {which}: --assignment (make {args.command} ASSIGNMENT=...); "
                          f"this course has {', '.join(assignments) or 'none released'}")
        if args.command == "canvas":
            if not args.roster.is_file():
                raise Refusal(f"no roster file at {args.roster}: export it from Canvas (Grades > Export) and "
                              "pass it: make canvas ROSTER=<roster.csv>")
            status = canvas_grades.write_canvas_grades(course, assignments[0], args.roster,
                                                       args.out or course.root / "canvas_grades.csv",
                                                       args.column, args.roster_column)
        elif args.command == "collect":
            # The instructor's own step (it writes submitted/, which the grading account only reads).
            status = canvas_collect.collect_download(course, assignments[0], args.zip, args.roster, args.roster_column)
        elif args.command == "refresh":
            status = refresh(course, assignments)
        elif args.command in ("grade", "demo"):

            if args.workers < 1:
                raise Refusal(f"--workers must be at least 1, not {args.workers}")
            batch = Batch(students=tuple(args.students), workers=args.workers, scheduler=args.scheduler,
                          reuse_runs=not args.no_cache, rerun_faulted=args.rerun_faulted, time_limit=args.time_limit)
            status = (grade if args.command == "grade" else demo)(course, assignments, batch=batch)
        else:
            status = {"release": release, "corpus": corpus}[args.command](course, assignments)
    except (Refusal, grader_user.AccountMissing) as refusal:
        print(f"{parser.prog} {args.command}: refused: {one_line(refusal)}", file=sys.stderr)
        return REFUSED
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
